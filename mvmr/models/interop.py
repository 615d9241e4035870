"""An encoder in the layouts of timm and torchvision, so that those libraries load it in one line.

mvmr's encoders keep their library's parameter names, so an export is a check that the architecture
exists in the target library, a strict load into that library's own model, and the file it reads:
:func:`write_timm` writes timm's folder layout (``timm.create_model("local-dir:<folder>", pretrained=True)``
or ``hf-hub:<user>/<repo>`` once uploaded), :func:`write_torchvision` the state dict without ``fc``
(``torchvision.models.resnet50()`` loads it strictly after ``model.fc = torch.nn.Identity()``).
:func:`check_exportable` refuses the CIFAR-style ``small_images`` stem (in neither library) and
torchvision ResNets with other than 3 channels.
"""

from __future__ import annotations

import json
import os
from collections.abc import Sequence
from pathlib import Path

from torch import nn

from mvmr.errors import CheckpointError
from mvmr.models.mvmr_model import TORCHVISION_ENCODERS, EncoderSpec
from mvmr.models.state_io import load_state_dict_strict
from mvmr.utils.atomic import atomic_torch_save, atomic_write_text

__all__ = ["INTEROP_FORMATS", "TIMM_WEIGHTS", "check_exportable", "timm_arch", "write_timm", "write_torchvision"]

#: The libraries :func:`check_exportable` knows.
INTEROP_FORMATS: tuple[str, ...] = ("timm", "torchvision")
#: The weight file of a timm folder (timm's and the Hub's name for it).
TIMM_WEIGHTS = "model.safetensors"
#: pretrained_cfg entries that describe timm's own ImageNet weights, not an mvmr encoder
_FOREIGN_CFG_KEYS = ("tag", "license", "origin_url", "paper_ids", "hf_hub_id", "url", "notes")


def timm_arch(spec: EncoderSpec) -> str:
    """The timm model name of an encoder: the torchvision ResNets have timm twins of the same name."""
    return spec.name.removeprefix("timm:")


def check_exportable(spec: EncoderSpec | None, format: str) -> None:
    """Raise a CheckpointError naming why ``spec`` cannot be written for the library ``format``."""
    if format not in INTEROP_FORMATS:
        raise CheckpointError(f"unknown format {format!r}; expected one of {', '.join(INTEROP_FORMATS)}")
    if spec is None:
        raise CheckpointError(
            f"cannot export to {format}: the encoder was not built by mvmr.models.build_encoder, "
            f"so its architecture is unknown"
        )
    if spec.small_images:
        raise CheckpointError(
            f"cannot export {spec.name} with small_images=True to {format}: its CIFAR-style stem "
            f"(3x3 stride-1 first conv, no max-pool) has no {format} equivalent; export with "
            f"--format hf or safetensors and load it with mvmr.from_pretrained"
        )
    if format == "torchvision":
        if spec.name not in TORCHVISION_ENCODERS:
            raise CheckpointError(
                f"cannot export {spec.name} to torchvision: only {', '.join(TORCHVISION_ENCODERS)} "
                f"are torchvision models (a timm: encoder exports with --format timm)"
            )
        if spec.in_chans != 3:
            raise CheckpointError(
                f"cannot export a {spec.in_chans}-channel {spec.name} to torchvision: torchvision's "
                f"ResNets have a 3-channel conv1; use --format timm "
                f"(timm.create_model(..., in_chans={spec.in_chans})) or hf"
            )


def write_timm(
    encoder: nn.Module,
    spec: EncoderSpec,
    folder: str | os.PathLike[str],
    *,
    mean: Sequence[float],
    std: Sequence[float],
    image_size: int | None = None,
) -> list[Path]:
    """Write ``folder/model.safetensors`` and ``folder/config.json`` in timm's layout.

    The weights are first loaded strictly into ``timm.create_model(arch, num_classes=0)``. ``config.json``
    carries ``mean``/``std`` and the input size (``image_size``, ``crop_pct=1.0``) for timm's transforms.
    """
    check_exportable(spec, "timm")
    try:
        import timm
    except ImportError as exc:
        raise CheckpointError("--format timm needs the timm package: pip install 'mvmr[timm]'") from exc
    arch = timm_arch(spec)
    if not timm.is_model(arch):
        raise CheckpointError(f"cannot export {spec.name} to timm: timm {timm.__version__} has no model {arch!r}")
    model = timm.create_model(arch, pretrained=False, num_classes=0, in_chans=spec.in_chans)
    load_state_dict_strict(model, encoder.state_dict(), source=f"the {spec.name} encoder")
    out = Path(folder)
    out.mkdir(parents=True, exist_ok=True)
    data_config: dict[str, object] = {
        "mean": tuple(float(v) for v in mean),
        "std": tuple(float(v) for v in std),
        "crop_pct": 1.0,
        "interpolation": "bilinear",
    }
    if image_size is not None:
        data_config["input_size"] = (spec.in_chans, int(image_size), int(image_size))
    from timm.models import save_for_hf

    save_for_hf(model, str(out), safe_serialization=True, data_config=data_config)
    config_path = out / "config.json"
    config = json.loads(config_path.read_text(encoding="utf-8"))
    for key in _FOREIGN_CFG_KEYS:
        config.get("pretrained_cfg", {}).pop(key, None)
    atomic_write_text(config_path, json.dumps(config, indent=2) + "\n")
    return [out / TIMM_WEIGHTS, config_path]


def write_torchvision(encoder: nn.Module, spec: EncoderSpec, path: str | os.PathLike[str]) -> Path:
    """Write the encoder's state dict for ``torchvision.models.<arch>()`` (no ``fc``) to ``path``, a plain
    ``torch.save`` of tensors, after loading it strictly into torchvision's model (``fc`` = ``Identity``)."""
    check_exportable(spec, "torchvision")
    import torchvision.models as tvm

    model = getattr(tvm, spec.name)(weights=None)
    model.fc = nn.Identity()
    load_state_dict_strict(model, encoder.state_dict(), source=f"the {spec.name} encoder")
    state = {k: v.detach().cpu().clone().contiguous() for k, v in model.state_dict().items()}
    return atomic_torch_save(state, path)
