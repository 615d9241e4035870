"""Exported backbones; reading weight files is :mod:`mvmr.models.weight_files` (re-exported here).

An exported backbone (:func:`save_backbone`) holds the encoder's state dict (keys as in the bare
encoder, e.g. torchvision's ``conv1.weight``) and metadata: ``encoder`` (name for
:func:`build_encoder`), ``small_images``, ``in_chans``, ``feature_dim``, ``mean``, ``std`` (the input
normalisation), ``format_version`` and whatever the caller adds; as safetensors (the metadata is JSON
in the header entry ``"mvmr"``) or ``"pt"`` (``torch.save({"state_dict": ..., "metadata": ...})``),
written atomically and read without running code.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import asdict
from pathlib import Path
from typing import Any

import torch
from torch import nn

from mvmr.errors import CheckpointError
from mvmr.models.mvmr_model import MVMRModel, Projector, build_encoder, encoder_spec
from mvmr.models.weight_files import (
    METADATA_KEY,
    describe_mismatch,
    load_state_dict_strict,
    read_checkpoint,
    read_lightning_checkpoint,
    read_state_dict,
)
from mvmr.utils.atomic import atomic_torch_save, atomic_write_bytes

__all__ = [
    "METADATA_KEY",
    "FORMAT_VERSION",
    "read_checkpoint",
    "read_lightning_checkpoint",
    "read_state_dict",
    "load_state_dict_strict",
    "describe_mismatch",
    "save_backbone",
    "load_backbone",
    "load_backbone_model",
]

FORMAT_VERSION = 1
_FORMATS = ("safetensors", "pt")
_REQUIRED = ("encoder", "small_images", "in_chans", "feature_dim", "mean", "std")


def save_backbone(
    model_or_encoder: nn.Module,
    path: str | Path,
    *,
    format: str = "safetensors",
    metadata: Mapping[str, Any] | None = None,
) -> Path:
    """Export the encoder of an :class:`MVMRModel` (or a bare encoder) to ``path``, atomically.

    The encoder spec and normalisation come from the model; ``metadata`` adds or overrides JSON-able
    keys (a bare encoder needs ``mean``/``std`` there). Raises :class:`CheckpointError` for an unknown
    format or missing or non-JSON metadata.
    """
    if format not in _FORMATS:
        raise CheckpointError(f"unknown backbone format {format!r}; expected one of {', '.join(_FORMATS)}")
    encoder, meta = model_or_encoder, dict[str, Any]()
    if isinstance(model_or_encoder, MVMRModel):
        encoder = model_or_encoder.encoder
        meta = {"mean": list(model_or_encoder.mean_values), "std": list(model_or_encoder.std_values)}
    spec = encoder_spec(encoder)
    if spec is not None:
        meta.update(asdict(spec))
        meta["encoder"] = meta.pop("name")
    meta.update(dict(metadata or {}))
    meta["format_version"] = FORMAT_VERSION
    missing = [k for k in _REQUIRED if k not in meta]
    if missing:
        raise CheckpointError(
            f"cannot export a backbone to {path} without the metadata keys {', '.join(missing)}: "
            f"pass them in metadata= (or export an MVMRModel built by build_model)"
        )
    for key in ("mean", "std"):
        meta[key] = [float(v) for v in meta[key]]
    try:
        meta_json = json.dumps(meta, sort_keys=True)
    except (TypeError, ValueError) as exc:
        raise CheckpointError(f"backbone metadata for {path} must be JSON-serialisable: {exc}") from exc
    state = {k: v.detach().cpu().clone().contiguous() for k, v in encoder.state_dict().items()}
    if format == "safetensors":
        from safetensors.torch import save as safetensors_bytes

        return atomic_write_bytes(path, safetensors_bytes(state, metadata={METADATA_KEY: meta_json}))
    return atomic_torch_save({"state_dict": state, "metadata": json.loads(meta_json)}, path)


def load_backbone(
    path: str | Path, *, encoder: nn.Module | None = None, map_location: str | torch.device = "cpu"
) -> tuple[nn.Module, dict[str, Any]]:
    """Load an exported backbone, strictly; returns ``(encoder, metadata)`` (mean/std as tuples).

    The weights go into ``encoder``, or a module rebuilt from the metadata. Raises :class:`CheckpointError`
    for a missing or corrupt file, missing metadata, or keys/shapes that do not fit.
    """
    state, metadata = read_state_dict(path, map_location=map_location)
    metadata = {
        k: tuple(float(x) for x in v) if k in ("mean", "std") and isinstance(v, (list, tuple)) else v
        for k, v in metadata.items()
    }
    if encoder is None:
        absent = [k for k in ("encoder", "small_images", "in_chans") if k not in metadata]
        if absent:
            raise CheckpointError(
                f"{path} has no {', '.join(absent)} metadata to rebuild the encoder from; pass "
                f"encoder= (a module of the right architecture)"
            )
        try:
            encoder, _ = build_encoder(
                str(metadata["encoder"]),
                small_images=bool(metadata["small_images"]),
                in_chans=int(metadata["in_chans"]),
            )
        except ValueError as exc:
            raise CheckpointError(f"cannot rebuild the encoder recorded in {path}: {exc}") from exc
    load_state_dict_strict(encoder, state, source=f"backbone {path}")
    return encoder, metadata


def load_backbone_model(path: str | Path, *, map_location: str | torch.device = "cpu") -> MVMRModel:
    """An :class:`MVMRModel` with the exported encoder, its normalisation and no projector.

    ``model.features(x)`` then gives the backbone features of images in [0, 1].
    """
    encoder, metadata = load_backbone(path, map_location=map_location)
    if "mean" not in metadata or "std" not in metadata:
        raise CheckpointError(f"{path} has no mean/std metadata; build MVMRModel(encoder, ...) yourself")
    spec = encoder_spec(encoder)
    dim = spec.feature_dim if spec is not None else int(metadata["feature_dim"])
    return MVMRModel(encoder, Projector("", dim), mean=metadata["mean"], std=metadata["std"])
