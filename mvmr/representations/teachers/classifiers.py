"""Image classifiers as teachers: ``torchvision:<name>`` and ``timm:<name>``.

The embedding is the pooled penultimate feature vector: the network without its final classifier
(kept as the teacher's ``head``). A local weight file (``torch.save`` state dict or safetensors) is
loaded with ``strict=True`` into the *unmodified* architecture, so a stock ImageNet checkpoint fits.
Preprocessing is the one the weights were evaluated with: the transforms of the torchvision weights
enum entry (``tv_weights``, nothing downloaded to read them), or timm's ``resolve_data_config`` on the
model's ``pretrained_cfg`` (pick a tagged config with ``timm:<name>.<tag>``). A weights enum name
(torchvision) or ``"hub"`` (timm) instead of a file runs the libraries' own download code.
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
    load_weights_file,
    random_weights,
)
from mvmr.transforms.normalization import IMAGENET_MEAN, IMAGENET_STD

__all__ = ["build_torchvision_teacher", "build_timm_teacher", "replace_last_linear"]

#: ``weights=`` value that makes the timm teacher use timm's own (hub) download path.
TIMM_HUB = "hub"


def replace_last_linear(model: nn.Module) -> tuple[nn.Linear, int]:
    """Replace the last ``nn.Linear`` of ``model`` (in module order) by an identity; returns the removed layer
    and its input dimension (the embedding size)."""
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


def build_torchvision_teacher(
    model_name: str,
    *,
    spec: str,
    weights: str | Path | None = None,
    allow_random: bool = False,
    tv_weights: str = "DEFAULT",
    input_size: int | None = None,
) -> Teacher:
    """A ``torchvision.models`` classifier (e.g. ``resnet18``) as a teacher.

    ``weights`` is a local state-dict file, or a weights enum name (``"DEFAULT"``, ``"IMAGENET1K_V1"``...)
    that uses torchvision's download/cache path; ``tv_weights`` is the enum entry whose transforms define
    the preprocessing. ``allow_random``: random weights when ``weights`` is None (tests only).
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
    preprocess = ImagePreprocess(
        input_size=int(transform.crop_size[0]),
        resize_size=int(transform.resize_size[0]),
        interpolation=str(transform.interpolation.value),
        mean=tuple(transform.mean),
        std=tuple(transform.std),
    ).replace(input_size=input_size)
    model = builder(weights=None)
    enum_entry = f"{type(entry).__name__}.{entry.name}"
    settings: dict[str, Any] = {"kind": "torchvision", "model": model_name, "tv_weights": entry.name}
    if weights is None:
        settings.update(
            random_weights(
                spec,
                allow_random,
                "weights=<local state-dict file> (e.g. saved on a machine "
                f"with internet from torchvision.models.{enum_entry}.get_state_dict()), "
                f"weights='{entry.name}' to use torchvision's cache/download",
            )
        )
    elif _is_enum_name(enum, str(weights)):
        from mvmr.models.weight_files import load_state_dict_strict

        load_state_dict_strict(
            model, _torchvision_download(entry, spec=spec), source=f"weights file {Path(entry.url)} (teacher {spec!r})"
        )
        settings["weights"] = {"torchvision": enum_entry, "url": entry.url}
    else:
        hint = f"On a machine with internet: torch.save(torchvision.models.{enum_entry}.get_state_dict(), '<file>')."
        settings["weights"] = load_weights_file(model, weights, spec=spec, hint=hint)
    head, dim = replace_last_linear(model)
    return Teacher(net=model, head=head, preprocess=preprocess, embed_dim=dim, spec=spec, settings=settings)


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
            f"could not load torchvision weights {type(entry).__name__}.{entry.name} for "
            f"teacher {spec!r}: they are not in the local cache and downloading {entry.url} "
            f"failed ({type(exc).__name__}: {exc}). On this offline machine, copy that file "
            f"to {target} or pass weights=<local file>."
        ) from exc


def build_timm_teacher(
    model_name: str,
    *,
    spec: str,
    weights: str | Path | None = None,
    allow_random: bool = False,
    input_size: int | None = None,
    **model_kwargs: Any,
) -> Teacher:
    """A timm model (e.g. ``resnet50.a1_in1k``: the tag selects the preprocessing config) as a teacher.

    ``weights`` is a local state-dict file of the full model (classifier included), or ``"hub"`` for
    timm's own download/cache path. ``allow_random``: random weights when ``weights`` is None (tests
    only). ``model_kwargs`` go to ``timm.create_model``.
    """
    timm = import_optional("timm", kind=spec)
    from timm.data import resolve_data_config

    hub = weights is not None and str(weights) == TIMM_HUB
    try:
        if hub:
            model: Any = _timm_download(timm, model_name, spec=spec, **model_kwargs)  # a timm model
        else:
            model = timm.create_model(model_name, pretrained=False, **model_kwargs)
    except RuntimeError as exc:  # timm: "Unknown model (...)"
        raise ConfigError(f"unknown timm model {model_name!r} in teacher spec {spec!r}: {exc}") from None
    settings: dict[str, Any] = {"kind": "timm", "model": model_name}
    recipe = f"timm.create_model({model_name!r}, pretrained=True).state_dict()"
    if hub:
        settings["weights"] = {"timm_hub": model_name}
    elif weights is None:
        settings.update(
            random_weights(
                spec,
                allow_random,
                "weights=<local state-dict file> (e.g. saved on a machine "
                f"with internet from {recipe}), weights='hub' to use timm's cache/download",
            )
        )
    else:
        hint = f"On a machine with internet: torch.save({recipe}, '<file>')."
        settings["weights"] = load_weights_file(model, weights, spec=spec, hint=hint)
    classifier = model.get_classifier()
    head = classifier if isinstance(classifier, nn.Linear) else None
    model.reset_classifier(0)
    dim = int(getattr(model, "head_hidden_size", None) or model.num_features)
    cfg = resolve_data_config({}, model=model)
    size = cfg["input_size"]
    if size[-1] != size[-2]:
        raise ConfigError(
            f"timm model {model_name!r} expects a non-square input {tuple(size[1:])}, which teachers do not support"
        )
    preprocess = ImagePreprocess.from_crop_pct(
        input_size=int(size[-1]),
        crop_pct=float(cfg.get("crop_pct") or 1.0),
        interpolation=str(cfg.get("interpolation") or "bicubic"),
        mean=tuple(cfg.get("mean") or IMAGENET_MEAN),
        std=tuple(cfg.get("std") or IMAGENET_STD),
    ).replace(input_size=input_size)
    if cfg.get("crop_mode", "center") != "center":
        settings["timm_crop_mode_ignored"] = cfg.get("crop_mode")
    return Teacher(net=model, head=head, preprocess=preprocess, embed_dim=dim, spec=spec, settings=settings)


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
        f"(torch.save(timm.create_model({model_name!r}, pretrained=True).state_dict(), '<file>')) "
        "and pass weights=<file>."
    ) from cause
