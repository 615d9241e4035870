"""Shared helpers of the teacher builders: optional imports, local weight files, fingerprints.

Nothing here downloads: where a library can download weights itself (open_clip tags, torchvision
weight enums, the timm hub), the builders call it and turn its failure into :class:`WeightsUnavailableError`.
"""

from __future__ import annotations

import hashlib
import importlib
from pathlib import Path
from types import ModuleType
from typing import Any

from torch import nn

from mvmr.errors import CheckpointError, ConfigError

__all__ = [
    "TEACHERS_EXTRA",
    "RANDOM_WEIGHTS",
    "WeightsUnavailableError",
    "import_optional",
    "random_weights",
    "require_weights_file",
    "weights_fingerprint",
    "load_weights_file",
]

#: The pip extra that installs every teacher backend.
TEACHERS_EXTRA = "pip install mvmr[teachers]"

#: What a teacher built with ``allow_random=True`` and no weights records in its settings.
RANDOM_WEIGHTS: dict[str, Any] = {"weights": None, "random_weights": True}

_SAMPLE_BYTES = 4 * 2**20


class WeightsUnavailableError(CheckpointError):
    """A teacher's weights are neither a local file nor downloadable (offline machine)."""


def import_optional(module: str, *, kind: str, package: str | None = None) -> ModuleType:
    """Import ``module`` or raise an ImportError naming the pip extra that provides it."""
    try:
        return importlib.import_module(module)
    except ImportError as exc:
        pkg = package or module
        raise ImportError(
            f"the {kind!r} teacher needs the package {pkg!r}, which is not installed: {TEACHERS_EXTRA} "
            f"(or pip install {pkg}); import error: {exc}"
        ) from exc


def random_weights(spec: str, allow_random: bool, how: str) -> dict[str, Any]:
    """:data:`RANDOM_WEIGHTS` when ``allow_random``, else a ConfigError saying ``how`` to pass weights."""
    if not allow_random:
        raise ConfigError(f"teacher {spec!r} needs weights: pass {how}, or allow_random=True (tests only)")
    return dict(RANDOM_WEIGHTS)


def require_weights_file(path: str | Path, *, spec: str, hint: str = "") -> Path:
    """``path`` as a Path if it is an existing file, else a WeightsUnavailableError naming it and ``hint``
    (how to obtain the file)."""
    file = Path(path).expanduser()
    if file.is_file():
        return file
    where = "it is a directory, not a file" if file.is_dir() else "no such file"
    more = f" {hint}" if hint else ""
    raise WeightsUnavailableError(
        f"weights file for teacher {spec!r} not found: {file.resolve()} ({where}). This "
        "machine may be offline, so weights are never downloaded at run time: put the "
        f"weight file at that path, or pass weights=<path of the file>.{more}"
    )


def weights_fingerprint(path: str | Path) -> dict[str, Any]:
    """Identify a weight file cheaply (for cache manifests): its name, byte size and a SHA-256 of the size plus
    the first and last 4 MiB (the whole file below 8 MiB). Not the folder: a moved file is the same teacher."""
    file = Path(path)
    size = file.stat().st_size
    digest = hashlib.sha256(str(size).encode())
    with open(file, "rb") as f:
        if size <= 2 * _SAMPLE_BYTES:
            digest.update(f.read())
            method = "sha256"
        else:
            digest.update(f.read(_SAMPLE_BYTES))
            f.seek(size - _SAMPLE_BYTES)
            digest.update(f.read(_SAMPLE_BYTES))
            method = "sha256(size, first and last 4 MiB)"
    return {"file": file.name, "bytes": size, "hash": digest.hexdigest()[:32], "hash_method": method}


def load_weights_file(model: nn.Module, path: str | Path, *, spec: str, hint: str = "") -> dict[str, Any]:
    """Load the state dict in file ``path`` (:func:`mvmr.models.read_state_dict`) into ``model`` with
    ``strict=True``; returns the file's fingerprint. Unreadable or mismatching weights raise a CheckpointError."""
    from mvmr.models.weight_files import load_state_dict_strict, read_state_dict

    file = require_weights_file(path, spec=spec, hint=hint)
    try:
        state = read_state_dict(file)[0]
    except CheckpointError as exc:
        raise CheckpointError(f"cannot read the weights of teacher {spec!r}: {exc}") from exc
    load_state_dict_strict(model, state, source=f"weights file {file} (teacher {spec!r})")
    return weights_fingerprint(file)
