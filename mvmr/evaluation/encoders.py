"""Turn what the user points at into a :class:`~mvmr.evaluation.extractor.FeatureExtractor`.

:func:`resolve_encoder` takes exactly one source: an exported backbone (:func:`mvmr.models.save_backbone`)
or a Lightning ``.ckpt`` (:func:`load_lightning_encoder`); a seeded random initialisation
(``random:resnet18``, the baseline row of a results table); a torchvision or timm model with *local*
weights, its classification head removed (nothing is downloaded); or a hand-crafted representation.
All loading is strict: another architecture's checkpoint fails with a :class:`~mvmr.errors.CheckpointError`.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch

from mvmr.errors import CheckpointError, ConfigError
from mvmr.evaluation.extractor import FeatureExtractor
from mvmr.models import build_encoder, load_backbone, load_state_dict_strict, read_lightning_checkpoint, read_state_dict
from mvmr.transforms.normalization import IMAGENET_MEAN, IMAGENET_STD, default_mean_std

__all__ = [
    "parse_encoder_spec",
    "resolve_encoder",
    "load_lightning_encoder",
    "find_encoder_prefix",
    "infer_resnet_arch",
]

_SOURCES = ("random", "torchvision", "timm")


def parse_encoder_spec(spec: str) -> tuple[str, str]:
    """Split ``"random:resnet18"`` into ``("random", "resnet18")``; sources: ``random``, ``torchvision``, ``timm``."""
    source, sep, name = spec.partition(":")
    if not sep or source not in _SOURCES or not name:
        hint = f" (did you mean random:{spec} or torchvision:{spec} --weights FILE?)" if not sep else ""
        raise ConfigError(f"unknown encoder {spec!r}{hint}; expected random:<name>, torchvision:<name> or timm:<name>")
    return source, name


def _random_encoder(name: str, *, small_images: bool, in_chans: int, seed: int) -> FeatureExtractor:
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        module, dim = build_encoder(name, small_images=small_images, in_chans=in_chans)
    mean, std = default_mean_std(in_chans)
    metadata = {"encoder": name, "small_images": small_images, "in_chans": in_chans, "seed": seed}
    return FeatureExtractor(
        module, mean=mean, std=std, description=f"random:{name}", feature_dim=dim, metadata=metadata
    )


def _read_weights(path: str | os.PathLike[str]) -> dict[str, torch.Tensor]:
    """The state dict of a weight file, without the ``module.`` prefix of a DataParallel checkpoint."""
    state, _ = read_state_dict(path)
    if state and all(k.startswith("module.") for k in state):
        return {k[len("module.") :]: v for k, v in state.items()}
    return dict(state)


def _torchvision_encoder(name: str, weights: str | os.PathLike[str] | None) -> FeatureExtractor:
    import torchvision.models as tvm

    from mvmr.representations.teachers.classifiers import replace_last_linear

    try:
        builder = tvm.get_model_builder(name)
    except ValueError:
        raise ConfigError(
            f"unknown torchvision model {name!r}; e.g. resnet18, resnet50, vit_b_16, convnext_tiny "
            "(see torchvision.models.list_models())"
        ) from None
    if weights is None:
        needed = "its ImageNet weight file"
        try:
            url = tvm.get_model_weights(name).DEFAULT.url
            needed = f"{Path(url).name} (from {url}; torch caches it under ~/.cache/torch/hub/checkpoints/)"
        except (ValueError, AttributeError):
            pass
        raise ConfigError(
            f"torchvision:{name} needs local weights: pass --weights FILE, e.g. {needed}. "
            "mvmr never downloads weights; use random:<name> for a random initialisation"
        )
    model = builder(weights=None)
    load_state_dict_strict(model, _read_weights(weights), source=f"weights file {weights}")
    replace_last_linear(model)
    return FeatureExtractor(
        model,
        mean=IMAGENET_MEAN,
        std=IMAGENET_STD,
        description=f"torchvision:{name}",
        metadata={"encoder": f"torchvision:{name}", "weights": str(weights)},
    )


def _timm_encoder(name: str, weights: str | os.PathLike[str] | None) -> FeatureExtractor:
    try:
        import timm
    except ImportError as exc:
        raise ConfigError(f"timm:{name} needs the timm package: pip install timm (or mvmr[teachers])") from exc
    try:
        model: Any = timm.create_model(name, pretrained=False)  # reset_classifier, num_features
    except RuntimeError as exc:
        raise ConfigError(f"unknown timm model {name!r}: {exc}") from exc
    cfg = dict(getattr(model, "pretrained_cfg", None) or {})
    if weights is None:
        where = []
        if cfg.get("hf_hub_id"):
            where.append(f"model.safetensors of https://huggingface.co/{cfg['hf_hub_id']}")
        if cfg.get("url"):
            where.append(f"{Path(str(cfg['url'])).name} from {cfg['url']}")
        needed = " or ".join(where) or "the model's pretrained weight file"
        raise ConfigError(
            f"timm:{name} needs local weights: pass --weights FILE, e.g. {needed}. "
            "mvmr never downloads weights; use random:timm:<name> for a random initialisation"
        )
    state = _read_weights(weights)
    if set(model.state_dict()) - set(state):  # a headless weight file (num_classes=0): use the headless model
        headless = timm.create_model(name, pretrained=False, num_classes=0)
        if not (set(headless.state_dict()) - set(state)):
            model = headless
    load_state_dict_strict(model, state, source=f"weights file {weights}")
    model.reset_classifier(0)
    return FeatureExtractor(
        model,
        mean=tuple(cfg.get("mean", IMAGENET_MEAN)),
        std=tuple(cfg.get("std", IMAGENET_STD)),
        description=f"timm:{name}",
        feature_dim=int(getattr(model, "num_features", 0)) or None,
        metadata={"encoder": f"timm:{name}", "weights": str(weights)},
    )


def _representation_extractor(name: str) -> FeatureExtractor:
    from mvmr import representations

    rep = representations.build(name)
    return FeatureExtractor(
        rep,
        mean=None,
        std=None,
        description=f"representation:{name}",
        trainable=False,
        metadata={"representation": name},
    )


def _backbone_extractor(path: Path) -> FeatureExtractor:
    encoder, meta = load_backbone(path)
    if "mean" not in meta or "std" not in meta:
        raise CheckpointError(
            f"{path} has no mean/std metadata (the input normalisation); re-export it with save_backbone"
        )
    feature_dim = int(meta["feature_dim"]) if "feature_dim" in meta else None
    return FeatureExtractor(
        encoder,
        mean=meta["mean"],
        std=meta["std"],
        description=f"checkpoint:{path}",
        feature_dim=feature_dim,
        metadata=dict(meta),
    )


def find_encoder_prefix(state: Mapping[str, Any], *, prefix: str | None = None) -> str:
    """The key prefix of the encoder weights in a training checkpoint's state dict (``prefix`` when given).

    ``model.encoder.`` is preferred, teacher/EMA copies are skipped; several candidates are an error.
    """
    if prefix is not None:
        if not any(k.startswith(prefix) for k in state):
            raise CheckpointError(f"no state_dict key starts with {prefix!r}")
        return prefix
    found = dict.fromkeys(match.group(1) for key in state if (match := re.match(r"^((?:[^.]+\.)*?encoder\.)", key)))
    candidates = [p for p in found if not re.search(r"(teacher|ema|momentum|target)", p)]
    if "model.encoder." in candidates:
        return "model.encoder."
    if len(candidates) == 1:
        return candidates[0]
    if not candidates:
        raise CheckpointError(
            f"no encoder weights (keys '...encoder.*') in the checkpoint; its keys start: {', '.join(list(state)[:5])}"
        )
    raise CheckpointError(
        f"several encoders in the checkpoint ({', '.join(sorted(candidates))}); choose one with --encoder-prefix"
    )


def infer_resnet_arch(state: Mapping[str, torch.Tensor]) -> tuple[str, bool, int] | None:
    """``(name, small_images, in_chans)`` of a torchvision ResNet encoder state dict, or None."""
    conv1 = state.get("conv1.weight")
    if conv1 is None or conv1.ndim != 4 or "layer4.0.conv1.weight" not in state:
        return None
    blocks3 = len({k.split(".")[1] for k in state if k.startswith("layer3.")})
    bottleneck = "layer1.0.conv3.weight" in state
    name = {(True, 6): "resnet50", (False, 2): "resnet18", (False, 6): "resnet34"}.get((bottleneck, blocks3))
    return None if name is None else (name, conv1.shape[-1] == 3, int(conv1.shape[1]))


def _find_value(tree: Any, keys: tuple[str, ...], types: tuple[type, ...]) -> Any:
    """Depth-first search of nested dicts for the first ``key`` in ``keys`` whose value has ``types``."""
    if isinstance(tree, Mapping):
        for key in keys:
            if key in tree and isinstance(tree[key], types) and not isinstance(tree[key], Mapping):
                return tree[key]
        for value in tree.values():
            found = _find_value(value, keys, types)
            if found is not None:
                return found
    return None


def _vector(value: Any) -> tuple[float, ...] | None:
    """A tensor or a list of numbers as a tuple of floats; None for anything else."""
    if isinstance(value, torch.Tensor):
        return tuple(float(v) for v in value.flatten())
    if isinstance(value, (list, tuple)) and value and all(isinstance(v, (int, float)) for v in value):
        return tuple(float(v) for v in value)
    return None


def load_lightning_encoder(
    path: str | os.PathLike[str], *, arch: str | None = None, encoder_prefix: str | None = None
) -> FeatureExtractor:
    """The encoder of a Lightning training checkpoint (``.ckpt``) as a feature extractor.

    Architecture: ``arch``, else inferred from torchvision ResNet weights, else the hyper-parameters.
    Normalisation: the ``mean``/``std`` buffers next to the encoder, else the hyper-parameters, else
    the defaults for the channel count.
    """
    p = Path(path)
    ckpt = read_lightning_checkpoint(p)
    state: Mapping[str, torch.Tensor] = ckpt["state_dict"]
    hparams = ckpt.get("hyper_parameters") or {}
    prefix = find_encoder_prefix(state, prefix=encoder_prefix)
    enc_state = {k[len(prefix) :]: v for k, v in state.items() if k.startswith(prefix)}
    parent = prefix[: -len("encoder.")]
    inferred = infer_resnet_arch(enc_state)
    if arch is None and inferred is not None:  # a torchvision ResNet's weights say which one it is
        name, small, in_chans = inferred
    else:  # mvmr's own checkpoints store the resolved config: hyper_parameters["model"]["encoder"]
        model_hp = hparams.get("model") if isinstance(hparams.get("model"), Mapping) else {}
        name = (
            arch
            or _find_value(model_hp, ("encoder",), (str,))
            or _find_value(hparams, ("encoder", "arch", "backbone", "encoder_name"), (str,))
        )
        small = _find_value(model_hp, ("small_images",), (bool,))
        if small is None:
            small = _find_value(hparams, ("small_images",), (bool,))
        in_chans = _find_value(hparams, ("in_chans", "channels"), (int,))
        mean_buffer = state.get(parent + "mean")
        if in_chans is None and isinstance(mean_buffer, torch.Tensor):
            in_chans = int(mean_buffer.numel())
        if inferred is not None:
            small = inferred[1] if small is None else small
            in_chans = inferred[2] if in_chans is None else in_chans
    if not name:
        raise CheckpointError(
            f"cannot tell the encoder architecture of {p}: pass --arch (e.g. resnet50 or timm:<name>)"
        )
    name, small, in_chans = str(name), bool(small), int(in_chans or 3)
    try:
        module, dim = build_encoder(name, small_images=small, in_chans=in_chans)
    except ConfigError as exc:
        raise CheckpointError(f"cannot build the encoder {name!r} recorded for {p}: {exc}") from exc
    load_state_dict_strict(module, enc_state, source=f"encoder weights '{prefix}*' of {p}")
    mean = _vector(state.get(parent + "mean")) or _vector(_find_value(hparams, ("mean",), (list, tuple)))
    std = _vector(state.get(parent + "std")) or _vector(_find_value(hparams, ("std",), (list, tuple)))
    if mean is None or std is None:
        mean, std = default_mean_std(in_chans)
    metadata = {
        "encoder": name,
        "small_images": small,
        "in_chans": in_chans,
        "epoch": ckpt.get("epoch"),
        "global_step": ckpt.get("global_step"),
        "prefix": prefix,
    }
    return FeatureExtractor(
        module, mean=mean, std=std, description=f"checkpoint:{p}", feature_dim=dim, metadata=metadata
    )


def resolve_encoder(
    *,
    checkpoint: str | os.PathLike[str] | None = None,
    encoder: str | None = None,
    weights: str | os.PathLike[str] | None = None,
    representation: str | None = None,
    arch: str | None = None,
    encoder_prefix: str | None = None,
    small_images: bool = False,
    in_chans: int = 3,
    seed: int = 0,
) -> FeatureExtractor:
    """Build the feature extractor to evaluate from exactly one of ``checkpoint`` (exported backbone or
    Lightning ``.ckpt``), ``encoder`` (``random:``/``torchvision:``/``timm:<name>``) or ``representation``.

    ``weights`` is the local weight file of a ``torchvision:``/``timm:`` encoder; ``arch`` and
    ``encoder_prefix`` say what a ``.ckpt`` does not; ``small_images``, ``in_chans`` and ``seed`` build a
    ``random:`` encoder. Raises :class:`ConfigError` for bad arguments or missing local weights and
    :class:`CheckpointError` for unreadable or unfitting weights.
    """
    given = [
        n for n, v in (("--checkpoint", checkpoint), ("--encoder", encoder), ("--representation", representation)) if v
    ]
    if len(given) != 1:
        got = f" (got {', '.join(given)})" if given else ""
        raise ConfigError(
            "give exactly one of --checkpoint PATH, --encoder random:|torchvision:|timm:<name>, "
            f"--representation NAME{got}"
        )
    if arch is not None and not (checkpoint and str(checkpoint).endswith(".ckpt")):
        raise ConfigError("--arch only applies to a Lightning .ckpt checkpoint")
    if weights is not None and not (encoder and encoder.split(":", 1)[0] in ("torchvision", "timm")):
        raise ConfigError("--weights only applies to --encoder torchvision:<name> or timm:<name>")
    if representation:
        return _representation_extractor(representation)
    if checkpoint:
        path = Path(checkpoint)
        if path.suffix == ".ckpt":
            return load_lightning_encoder(path, arch=arch, encoder_prefix=encoder_prefix)
        return _backbone_extractor(path)
    source, name = parse_encoder_spec(str(encoder))
    if source == "random":
        return _random_encoder(name, small_images=small_images, in_chans=in_chans, seed=seed)
    if source == "torchvision":
        return _torchvision_encoder(name, weights)
    return _timm_encoder(name, weights)
