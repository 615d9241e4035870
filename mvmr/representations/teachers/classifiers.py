"""Image classifiers as teachers: ``torchvision:<name>`` and ``timm:<name>``.

The embedding is the pooled penultimate feature vector: the network with its final classifier
layer removed (torchvision: the last ``nn.Linear`` is replaced by an identity and kept as the
teacher's ``head``; timm: ``reset_classifier(0)``). Weights come from a local file (a state dict
saved with ``torch.save`` or safetensors), loaded with ``strict=True`` into the *unmodified*
architecture, so the file of a stock ImageNet checkpoint fits as it is.

Preprocessing is the one the weights were evaluated with:

- torchvision: the transforms of the weights enum entry (``tv_weights``, default ``"DEFAULT"``):
  resize the shorter side to ``resize_size`` (e.g. 256), centre crop ``crop_size`` (224),
  its interpolation (bilinear for the ResNets), ImageNet mean/std. Nothing is downloaded to read
  these numbers.
- timm: ``timm.data.resolve_data_config`` on the model's ``pretrained_cfg`` (input size,
  interpolation, ``crop_pct``, mean/std; pick a tagged config with ``timm:<name>.<tag>``).

Passing ``weights="DEFAULT"`` (or another enum name such as ``"IMAGENET1K_V1"``) for torchvision,
or ``weights="hub"`` for timm, runs the libraries' own download code, which uses their local
cache when the file is already there; offline it fails with a message that says where to put the
file.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from torch import nn

from mvmr.errors import ConfigError
from mvmr.representations.teachers.base import Teacher
from mvmr.representations.teachers.preprocess import ImagePreprocess
from mvmr.representations.teachers.weights import (
    WeightsUnavailableError,
    import_optional,
    load_state_dict_file,
    load_strict,
    require_weights_file,
    weights_fingerprint,
)
from mvmr.transforms.normalization import IMAGENET_MEAN, IMAGENET_STD

__all__ = ["build_torchvision_teacher", "build_timm_teacher", "replace_last_linear"]

#: ``weights=`` value that makes the timm teacher use timm's own (hub) download path.
TIMM_HUB = "hub"


def replace_last_linear(model: nn.Module) -> tuple[nn.Linear, int]:
    """Replace the last ``nn.Linear`` of ``model`` (in module order) by an identity.

    Returns the removed layer and its input dimension (the embedding size). torchvision
    classifiers all end with one linear layer applied to pooled, flattened features.
    """
    last: tuple[str, nn.Linear] | None = None
    for qualified, module in model.named_modules():
        if isinstance(module, nn.Linear):
            last = (qualified, module)
    if last is None:
        raise ConfigError(f"{type(model).__name__} has no nn.Linear classifier to remove")
    qualified, layer = last
    parent_name, _, child = qualified.rpartition(".")
    parent = model.get_submodule(parent_name) if parent_name else model
    setattr(parent, child, nn.Identity())
    return layer, int(layer.in_features)


def _common_settings(kind: str, model_name: str) -> dict[str, Any]:
    return {"kind": kind, "model": model_name}


# --------------------------------------------------------------------------- torchvision
def build_torchvision_teacher(
    model_name: str,
    *,
    spec: str,
    weights: str | Path | None = None,
    allow_random: bool = False,
    tv_weights: str = "DEFAULT",
    input_size: int | None = None,
    crop_pct: float | None = None,
    interpolation: str | None = None,
    mean: tuple[float, float, float] | None = None,
    std: tuple[float, float, float] | None = None,
    l2_normalize: bool = False,
    name: str = "teacher",
) -> Teacher:
    """Build a torchvision classifier (e.g. ``resnet18``) as a teacher.

    Args:
        model_name: a ``torchvision.models`` classification model name.
        weights: local state-dict file; or a weights enum name (``"DEFAULT"``,
            ``"IMAGENET1K_V1"``...) to use torchvision's download/cache path.
        allow_random: with ``weights=None``, use random weights (tests only).
        tv_weights: the weights enum entry whose transforms define the preprocessing.
        input_size, crop_pct, interpolation, mean, std: preprocessing overrides.
    """
    tvm = import_optional("torchvision.models", kind=spec, package="torchvision")
    try:
        builder = tvm.get_model_builder(model_name)
        enum = tvm.get_model_weights(model_name)
    except ValueError as exc:
        raise ConfigError(f"unknown torchvision model {model_name!r} in teacher spec {spec!r}: {exc}") from None
    entry_name = str(weights) if weights is not None and _is_enum_name(enum, str(weights)) else tv_weights
    try:
        entry = enum[entry_name] if entry_name != "DEFAULT" else enum.DEFAULT
    except KeyError:
        names = ", ".join(["DEFAULT", *(w.name for w in enum)])
        raise ConfigError(f"unknown torchvision weights {entry_name!r} for {model_name}; known: {names}") from None
    transform = entry.transforms()
    crop = int(transform.crop_size[0])
    resize = int(transform.resize_size[0])
    preprocess = ImagePreprocess(
        input_size=crop,
        resize_size=resize,
        interpolation=str(transform.interpolation.value),
        mean=tuple(transform.mean),  # type: ignore[arg-type]
        std=tuple(transform.std),  # type: ignore[arg-type]
    )
    preprocess = preprocess.replace(
        input_size=input_size, crop_pct=crop_pct, interpolation=interpolation, mean=mean, std=std
    )
    model = builder(weights=None)
    settings = _common_settings("torchvision", model_name)
    settings["tv_weights"] = entry.name
    if weights is None:
        if not allow_random:
            raise ConfigError(
                f"teacher {spec!r} needs weights: pass weights=<local state-dict file> (e.g. saved on a machine "
                f"with internet from torchvision.models.{type(entry).__name__}.{entry.name}.get_state_dict()), "
                f"weights='{entry.name}' to use torchvision's cache/download, or allow_random=True (tests only)"
            )
        settings["weights"] = None
        settings["random_weights"] = True
    elif _is_enum_name(enum, str(weights)):
        state = _torchvision_download(entry, spec=spec)
        load_strict(model, state, source=Path(entry.url), spec=spec)
        settings["weights"] = {"torchvision": f"{type(entry).__name__}.{entry.name}", "url": entry.url}
    else:
        file = require_weights_file(
            weights,
            spec=spec,
            hint=(
                f"On a machine with internet: torch.save(torchvision.models.{type(entry).__name__}.{entry.name}"
                f".get_state_dict(), '<file>')."
            ),
        )
        load_strict(model, load_state_dict_file(file, spec=spec), source=file, spec=spec)
        settings["weights"] = weights_fingerprint(file)
    head, dim = replace_last_linear(model)
    return Teacher(
        net=model,
        head=head,
        preprocess=preprocess,
        embed_dim=dim,
        spec=spec,
        settings=settings,
        l2_normalize=l2_normalize,
        name=name,
    )


def _is_enum_name(enum: Any, value: str) -> bool:
    return value == "DEFAULT" or value in {w.name for w in enum}


def _torchvision_download(entry: Any, *, spec: str) -> dict[str, Any]:
    """torchvision's own loading path (its hub cache first, then the URL); clear error offline."""
    import torch.hub

    target = Path(torch.hub.get_dir()) / "checkpoints" / Path(entry.url).name
    try:
        return dict(entry.get_state_dict(progress=False, check_hash=False))
    except Exception as exc:  # URLError, HTTPError, socket errors... all mean "not available here"
        raise WeightsUnavailableError(
            f"could not load torchvision weights {type(entry).__name__}.{entry.name} for teacher {spec!r}: "
            f"they are not in the local cache and downloading {entry.url} failed ({type(exc).__name__}: {exc}). "
            f"On this offline machine, copy that file to {target} or pass weights=<local file>."
        ) from exc


# --------------------------------------------------------------------------- timm
def build_timm_teacher(
    model_name: str,
    *,
    spec: str,
    weights: str | Path | None = None,
    allow_random: bool = False,
    input_size: int | None = None,
    crop_pct: float | None = None,
    interpolation: str | None = None,
    mean: tuple[float, float, float] | None = None,
    std: tuple[float, float, float] | None = None,
    l2_normalize: bool = False,
    name: str = "teacher",
    **model_kwargs: Any,
) -> Teacher:
    """Build a timm model (e.g. ``resnet50.a1_in1k``) as a teacher.

    Args:
        model_name: timm model name, optionally with a pretrained tag (``name.tag``), which
            selects the preprocessing config.
        weights: local state-dict file of the full model (classifier included), or ``"hub"``
            for timm's own download/cache path.
        allow_random: with ``weights=None``, use random weights (tests only).
        input_size, crop_pct, interpolation, mean, std: preprocessing overrides.
        model_kwargs: passed to ``timm.create_model``.
    """
    timm = import_optional("timm", kind=spec)
    from timm.data import resolve_data_config

    hub = weights is not None and str(weights) == TIMM_HUB
    try:
        if hub:
            model = _timm_download(timm, model_name, spec=spec, **model_kwargs)
        else:
            model = timm.create_model(model_name, pretrained=False, **model_kwargs)
    except RuntimeError as exc:  # timm: "Unknown model (...)"
        raise ConfigError(f"unknown timm model {model_name!r} in teacher spec {spec!r}: {exc}") from None
    settings = _common_settings("timm", model_name)
    if hub:
        settings["weights"] = {"timm_hub": model_name}
    elif weights is None:
        if not allow_random:
            raise ConfigError(
                f"teacher {spec!r} needs weights: pass weights=<local state-dict file> (e.g. saved on a machine with "
                f"internet from timm.create_model({model_name!r}, pretrained=True).state_dict()), weights='hub' to use "
                f"timm's cache/download, or allow_random=True (tests only)"
            )
        settings["weights"] = None
        settings["random_weights"] = True
    else:
        file = require_weights_file(
            weights,
            spec=spec,
            hint=f"On a machine with internet: torch.save(timm.create_model({model_name!r}, pretrained=True).state_dict(), '<file>').",
        )
        load_strict(model, load_state_dict_file(file, spec=spec), source=file, spec=spec)
        settings["weights"] = weights_fingerprint(file)
    classifier = model.get_classifier()
    head = classifier if isinstance(classifier, nn.Linear) else None
    model.reset_classifier(0)
    dim = int(getattr(model, "head_hidden_size", None) or model.num_features)
    cfg = resolve_data_config({}, model=model)
    size = cfg["input_size"]
    if size[-1] != size[-2]:
        raise ConfigError(f"timm model {model_name!r} expects a non-square input {tuple(size[1:])}, which teachers do not support")
    preprocess = ImagePreprocess.from_crop_pct(
        input_size=int(size[-1]),
        crop_pct=float(cfg.get("crop_pct") or 1.0),
        interpolation=str(cfg.get("interpolation") or "bicubic"),
        mean=tuple(cfg.get("mean") or IMAGENET_MEAN),
        std=tuple(cfg.get("std") or IMAGENET_STD),
    ).replace(input_size=input_size, crop_pct=crop_pct, interpolation=interpolation, mean=mean, std=std)
    if cfg.get("crop_mode", "center") != "center":
        settings["timm_crop_mode_ignored"] = cfg.get("crop_mode")
    return Teacher(
        net=model,
        head=head,
        preprocess=preprocess,
        embed_dim=dim,
        spec=spec,
        settings=settings,
        l2_normalize=l2_normalize,
        name=name,
    )


def _timm_download(timm: Any, model_name: str, *, spec: str, **model_kwargs: Any) -> nn.Module:
    try:
        return timm.create_model(model_name, pretrained=True, **model_kwargs)
    except RuntimeError as exc:
        if "Unknown model" in str(exc):
            raise
        cause: Exception = exc
    except Exception as exc:  # huggingface_hub / URL errors when offline
        cause = exc
    raise WeightsUnavailableError(
        f"could not load timm weights for {model_name!r} (teacher {spec!r}): not in the local Hugging Face cache and "
        f"the download failed ({type(cause).__name__}: {cause}). On this offline machine, save the weights elsewhere "
        f"(torch.save(timm.create_model({model_name!r}, pretrained=True).state_dict(), '<file>')) and pass weights=<file>."
    ) from cause
