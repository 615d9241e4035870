"""``mvmr export``: a checkpoint's encoder in the format of the library that will use it.

- ``safetensors``: ``backbone.safetensors``, ``backbone.pt`` and ``config.yaml`` (mvmr's own
  backbone files, see :func:`mvmr.training.export.export_checkpoint`);
- ``timm``: timm's folder (``model.safetensors`` + ``config.json``), see :mod:`mvmr.models.interop`;
- ``torchvision``: ``<arch>.pth``, a state dict for ``torchvision.models.<arch>()`` without ``fc``;
- ``hf``: the Hugging Face Hub folder (``config.json`` + ``model.safetensors``), loaded by
  :func:`mvmr.from_pretrained`, see :mod:`mvmr.models.hub`.

The timm, torchvision and hf folders also get a ``README.md`` model card (:mod:`.model_card`)
with the run's config, method, data, epochs and every evaluation result of the run folder, so
that ``huggingface_hub.upload_folder`` publishes them as they are.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from mvmr.errors import CheckpointError, DataError
from mvmr.evaluation.results import ProtocolResult, load_results
from mvmr.models.interop import TIMM_WEIGHTS, check_exportable, timm_arch, write_timm, write_torchvision
from mvmr.training.export import TrainedModel, export_checkpoint, read_trained_model
from mvmr.workflows.model_card import model_card

__all__ = ["EXPORT_FORMATS", "Export", "export_run", "run_folder_of"]

#: The formats of ``mvmr export --format``; the first is the default.
EXPORT_FORMATS: tuple[str, ...] = ("safetensors", "timm", "torchvision", "hf")


@dataclass(frozen=True)
class Export:
    """What an export wrote, and the Python lines that load it."""

    paths: list[Path]
    usage: str


def run_folder_of(checkpoint: str | os.PathLike[str]) -> Path:
    """The run folder of a checkpoint: ``RUN/checkpoints/x.ckpt`` -> ``RUN``, else the checkpoint's folder."""
    parent = Path(checkpoint).resolve().parent
    return parent.parent if parent.name == "checkpoints" else parent


def _run_results(run_dir: Path) -> list[ProtocolResult]:
    """The run's evaluation results; none without a results/ folder (the card says so)."""
    try:
        return load_results(run_dir)
    except DataError:
        return []


def _normalisation(trained: TrainedModel) -> str:
    return f"mean={list(trained.model.mean_values)}, std={list(trained.model.std_values)}"


def _usage(format: str, trained: TrainedModel, out: Path | None) -> str:
    """The lines that load an export from the folder ``out``, or (None) as the card shows them: from the Hub."""
    spec = trained.model.spec
    if format == "timm":
        chans = f", in_chans={spec.in_chans}" if spec.in_chans != 3 else ""
        source = f"local-dir:{out}" if out is not None else "hf-hub:<user>/<repo>"
        weights = out / TIMM_WEIGHTS if out is not None else TIMM_WEIGHTS
        return (
            f"import timm\n"
            f'model = timm.create_model("{source}", pretrained=True{chans})\n'
            f"config = timm.data.resolve_data_config({{}}, model=model)  # {_normalisation(trained)}\n"
            f"# or the weight file alone:\n"
            f'model = timm.create_model("{timm_arch(spec)}", pretrained=True, num_classes=0{chans},\n'
            f'                          pretrained_cfg_overlay=dict(file="{weights}"))'
        )
    if format == "torchvision":
        weights = out / f"{spec.name}.pth" if out is not None else f"{spec.name}.pth"
        return (
            f"import torch, torchvision\n"
            f"model = torchvision.models.{spec.name}()\n"
            f"model.fc = torch.nn.Identity()  # the export has no fc: it is an encoder, not a classifier\n"
            f'model.load_state_dict(torch.load("{weights}", weights_only=True), strict=True)\n'
            f"# inputs: images in [0, 1] normalised with {_normalisation(trained)}"
        )
    lines = [
        "import mvmr",
        f'model = mvmr.from_pretrained("{out if out is not None else "<user>/<repo>"}")',
        f"features = model(images)  # images in [0, 1], (B, {spec.in_chans}, H, W) -> (B, {spec.feature_dim})",
    ]
    if out is not None:
        lines.append(f'# publish: huggingface_hub.upload_folder(repo_id="<user>/<repo>", folder_path="{out}")')
    return "\n".join(lines)


def export_run(
    checkpoint: str | os.PathLike[str], out: str | os.PathLike[str], *, format: str = "safetensors"
) -> Export:
    """Export the encoder of an ``mvmr pretrain`` checkpoint into ``out`` in ``format``.

    Raises:
        CheckpointError: unknown format, a file that is not an mvmr checkpoint, or an encoder
            with no equivalent in the target library (the message says why).
    """
    if format not in EXPORT_FORMATS:
        raise CheckpointError(f"--format: expected one of {', '.join(EXPORT_FORMATS)}, got {format!r}")
    out = Path(out)
    if format == "safetensors":
        paths = export_checkpoint(checkpoint, out)
        return Export(
            paths,
            f"from mvmr.models import load_backbone_model\n"
            f'model = load_backbone_model("{paths[0]}")  # model.features(images in [0, 1])',
        )
    trained = read_trained_model(checkpoint)
    model, spec = trained.model, trained.model.spec
    if format in ("timm", "torchvision"):
        check_exportable(spec, format)  # before anything is written
    usage = _usage(format, trained, out)
    card = model_card(
        trained.config,
        epochs=trained.epochs,
        steps=trained.steps,
        results=_run_results(run_folder_of(checkpoint)),
        usage=_usage(format, trained, None),
        library_name="timm" if format == "timm" else "mvmr",
    )
    if format == "timm":
        paths = write_timm(
            model.encoder,
            spec,
            out,
            mean=model.mean_values,
            std=model.std_values,
            image_size=trained.config.data.image_size,
        )
    elif format == "torchvision":
        paths = [write_torchvision(model.encoder, spec, out / f"{spec.name}.pth")]
    else:
        try:  # needs huggingface_hub: imported when asked for
            from mvmr.models.hub import save_pretrained_encoder
        except ImportError as exc:
            raise CheckpointError(f"--format hf needs huggingface_hub: pip install 'mvmr[hub]' ({exc})") from exc
        return Export(save_pretrained_encoder(model, out, model_card=card), usage)
    out.mkdir(parents=True, exist_ok=True)
    (out / "README.md").write_text(card, encoding="utf-8")
    return Export([*paths, out / "README.md"], usage)
