"""Weight files: reading them (the one ``torch.load`` of mvmr) and loading them strictly.

:func:`read_checkpoint` is the one place where mvmr opens a torch checkpoint (Lightning ``.ckpt``,
``torch.save`` export or weight file), always with ``torch.load(weights_only=True)`` so a file cannot
run code; every failure is a :class:`~mvmr.errors.CheckpointError` naming the file. This module
imports no model code, so that the models can read weights without an import cycle.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch
from torch import nn

from mvmr.errors import CheckpointError

__all__ = [
    "METADATA_KEY",
    "read_checkpoint",
    "read_lightning_checkpoint",
    "read_state_dict",
    "describe_mismatch",
    "load_state_dict_strict",
]

#: The key of the JSON metadata in a safetensors header / of the metadata dict in a .pt export.
METADATA_KEY = "mvmr"
_SHOWN = 5  # how many keys an error message lists per kind


def read_checkpoint(path: str | os.PathLike[str], *, map_location: str | torch.device = "cpu") -> Any:
    """What ``torch.save`` wrote to ``path``, read with ``torch.load(weights_only=True)``; a missing, corrupt
    or foreign file, or one that pickles other objects than tensors and containers, is a CheckpointError."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"checkpoint not found: {path}")
    try:
        return torch.load(path, map_location=map_location, weights_only=True)
    except Exception as exc:  # torch raises many types for corrupt or foreign files
        raise CheckpointError(
            f"cannot read checkpoint {path} with torch.load(weights_only=True) "
            f"(corrupt, not a torch file, or it pickles custom objects): {exc}"
        ) from exc


def read_lightning_checkpoint(path: str | os.PathLike[str]) -> dict[str, Any]:
    """A Lightning checkpoint (``.ckpt``): a dict with at least a ``state_dict`` mapping."""
    ckpt = read_checkpoint(path)
    if not isinstance(ckpt, Mapping) or not isinstance(ckpt.get("state_dict"), Mapping):
        raise CheckpointError(f"{path} is not a Lightning checkpoint (no 'state_dict' entry)")
    return dict(ckpt)


def read_state_dict(
    path: str | os.PathLike[str], *, map_location: str | torch.device = "cpu"
) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    """Read a weight file into ``(state_dict, metadata)``; CheckpointError when it holds no state dict.

    Safetensors files (metadata from the ``"mvmr"`` JSON header entry) and ``torch.save`` files of a
    state dict or a dict with ``"state_dict"`` or ``"model"`` (and ``"metadata"``), told apart by content.
    """
    path = Path(path)
    try:
        with open(path, "rb") as f:
            head = f.read(9)
    except OSError as exc:
        raise CheckpointError(f"checkpoint not found or unreadable: {path}: {exc}") from exc
    if head[8:9] == b"{":  # safetensors: an 8-byte little-endian header length, then a JSON object
        return _read_safetensors(path, map_location)
    obj = read_checkpoint(path, map_location=map_location)
    metadata: dict[str, Any] = {}
    wrapper = next(
        (k for k in ("state_dict", "model") if isinstance(obj, Mapping) and isinstance(obj.get(k), Mapping)), None
    )
    if wrapper is not None:
        raw_meta = obj.get("metadata", obj.get(METADATA_KEY, {}))
        metadata = dict(raw_meta) if isinstance(raw_meta, Mapping) else {}
        obj = obj[wrapper]
    if not isinstance(obj, Mapping) or not all(isinstance(v, torch.Tensor) for v in obj.values()):
        raise CheckpointError(f"checkpoint {path} does not hold a state dict (a mapping of names to tensors)")
    return dict(obj), metadata


def _read_safetensors(path: Path, map_location: str | torch.device) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    from safetensors import safe_open

    try:
        with safe_open(str(path), framework="pt", device=str(map_location)) as f:
            header = f.metadata() or {}
            state = {key: f.get_tensor(key) for key in f.keys()}
    except Exception as exc:  # safetensors raises its own error types
        raise CheckpointError(f"cannot read checkpoint {path} (corrupt safetensors file): {exc}") from exc
    try:
        return state, json.loads(header[METADATA_KEY]) if METADATA_KEY in header else {}
    except json.JSONDecodeError as exc:
        raise CheckpointError(f"checkpoint {path}: its '{METADATA_KEY}' metadata is not valid JSON: {exc}") from exc


def _common_prefix_hint(missing: list[str], unexpected: list[str]) -> str:
    """Spot the usual cause of a total mismatch: every key in the file carries an extra prefix."""
    first = unexpected[0] if unexpected else ""
    key = next((k for k in missing if first.endswith("." + k)), None)
    if key is None:
        return ""
    prefix = first[: len(first) - len(key)]
    if set(missing) <= {k[len(prefix) :] for k in unexpected if k.startswith(prefix)}:
        return f" (the file's keys carry the prefix {prefix!r}: strip it before loading)"
    return ""


def describe_mismatch(module: nn.Module, state_dict: Mapping[str, torch.Tensor]) -> str | None:
    """None when ``state_dict`` fits ``module`` exactly (keys and shapes), else a readable reason."""
    own = module.state_dict()
    missing = [k for k in own if k not in state_dict]
    unexpected = [k for k in state_dict if k not in own]
    shapes = [
        f"{k}: file {tuple(state_dict[k].shape)} vs model {tuple(v.shape)}"
        for k, v in own.items()
        if k in state_dict and tuple(v.shape) != tuple(state_dict[k].shape)
    ]
    if not (missing or unexpected or shapes):
        return None

    def listing(label: str, items: list[str]) -> str:
        more = f", ... ({len(items) - _SHOWN} more)" if len(items) > _SHOWN else ""
        return f"{label} ({len(items)}): {', '.join(items[:_SHOWN])}{more}"

    parts = [
        listing(label, items)
        for label, items in (("missing keys", missing), ("unexpected keys", unexpected), ("shape mismatches", shapes))
        if items
    ]
    return "; ".join(parts) + _common_prefix_hint(missing, unexpected)


def load_state_dict_strict(module: nn.Module, state_dict: Mapping[str, torch.Tensor], *, source: str) -> None:
    """Load ``state_dict`` into ``module`` strictly; a CheckpointError names ``source`` and the keys that differ."""
    problem = describe_mismatch(module, state_dict)
    if problem is not None:
        raise CheckpointError(f"{source} does not fit the {type(module).__name__} model: {problem}")
    try:
        module.load_state_dict(state_dict, strict=True)
    except RuntimeError as exc:
        raise CheckpointError(f"{source} does not fit the {type(module).__name__} model: {exc}") from exc
