"""Seeded, class-balanced index selections: validation hold-outs and semi-supervised label subsets.

Everything here works on label arrays (never on images), is deterministic for a given seed
(NumPy ``default_rng``), and returns sorted int64 index arrays into the dataset. Label subsets are
also read and saved in the format of the ImageNet 1%/10% subset files: one image file name per line
(``n01440764_10026.JPEG``), with its folder where base names repeat (``cat/0001.jpg``).
"""

from __future__ import annotations

import math
import os
from collections.abc import Iterable, Sequence
from pathlib import Path

import numpy as np

from mvmr.errors import ConfigError, DataError
from mvmr.utils.atomic import atomic_write_text

__all__ = [
    "stratified_split",
    "stratified_limit",
    "random_split",
    "balanced_subset",
    "read_subset_file",
    "match_subset",
    "subset_entries",
    "write_subset_file",
]


def _check_labels(labels: Sequence[int] | np.ndarray) -> np.ndarray:
    arr = np.asarray(labels)
    if arr.ndim != 1:
        raise ValueError(f"expected a 1-D array of class labels, got shape {arr.shape}")
    if arr.size and arr.min() < 0:
        raise DataError("the dataset has unlabelled items (label -1); the evaluation protocols need labels")
    return arr.astype(np.int64, copy=False)


def stratified_split(
    labels: Sequence[int] | np.ndarray, val_fraction: float, *, seed: int = 0
) -> tuple[np.ndarray, np.ndarray]:
    """Hold out ``val_fraction`` of every class (seeded): returns ``(train_indices, val_indices)``.

    Each class of at least two items gives ``round(val_fraction * count)`` items, clipped to
    ``[1, count - 1]`` when ``val_fraction > 0``, to the validation part.
    """
    if not 0.0 <= val_fraction < 1.0:
        raise ConfigError(f"val_fraction must be in [0, 1), got {val_fraction}")
    arr = _check_labels(labels)
    rng = np.random.default_rng(seed)
    is_val = np.zeros(arr.size, dtype=bool)
    for c in np.unique(arr):
        idx = np.flatnonzero(arr == c)
        idx = idx[rng.permutation(idx.size)]
        if val_fraction > 0 and idx.size >= 2:
            is_val[idx[: min(idx.size - 1, max(1, int(round(val_fraction * idx.size))))]] = True
    return np.flatnonzero(~is_val).astype(np.int64), np.flatnonzero(is_val).astype(np.int64)


def random_split(n: int, val_fraction: float, *, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Seeded unstratified hold-out of ``round(val_fraction * n)`` indices (for multi-label data): the
    :func:`stratified_split` of ``n`` items of one class."""
    return stratified_split(np.zeros(n, dtype=np.int64), val_fraction, seed=seed)


def stratified_limit(labels: Sequence[int] | np.ndarray, limit: int, *, seed: int = 0) -> np.ndarray:
    """At most ``limit`` indices, spread over the classes as evenly as the data allows (seeded)."""
    arr = _check_labels(labels)
    if limit <= 0:
        raise ConfigError(f"limit must be positive, got {limit}")
    if limit >= arr.size:
        return np.arange(arr.size, dtype=np.int64)
    rng = np.random.default_rng(seed)
    shuffled = [idx[rng.permutation(idx.size)] for idx in (np.flatnonzero(arr == c) for c in np.unique(arr))]
    # round robin over the classes: every class's first item, then every class's second, ...
    depth = np.concatenate([np.arange(idx.size) for idx in shuffled])
    return np.sort(np.concatenate(shuffled)[np.argsort(depth, kind="stable")[:limit]])


def balanced_subset(
    labels: Sequence[int] | np.ndarray, fraction: float, *, seed: int = 0, exclude: Iterable[int] | None = None
) -> np.ndarray:
    """A class-balanced labelled subset: ``max(1, round(fraction * count_c))`` images of every class c
    (seeded), like the ImageNet 1%/10% subsets; ``exclude`` removes candidates (e.g. a hold-out)."""
    if not 0.0 < fraction <= 1.0:
        raise ConfigError(f"fraction must be in (0, 1], got {fraction}")
    arr = _check_labels(labels)
    excluded = np.zeros(arr.size, dtype=bool)
    if exclude is not None:
        excluded[np.asarray(list(exclude), dtype=np.int64)] = True
    rng = np.random.default_rng(seed)
    chosen = np.zeros(arr.size, dtype=bool)
    for c in np.unique(arr):
        idx_all = np.flatnonzero(arr == c)
        want = max(1, int(math.floor(fraction * idx_all.size + 0.5)))
        idx = idx_all[~excluded[idx_all]]
        chosen[idx[rng.permutation(idx.size)][:want]] = True
    return np.flatnonzero(chosen).astype(np.int64)


def _entry(text: str) -> str:
    return "/".join(part for part in text.replace("\\", "/").split("/") if part not in ("", "."))


def read_subset_file(path: str | os.PathLike[str]) -> list[str]:
    """Image entries of a subset file (a file name or a relative path per line; blank lines, ``#`` comments
    and anything after whitespace ignored). Raises :class:`DataError` for a missing or empty file or a
    repeated entry."""
    p = Path(path)
    if not p.is_file():
        raise DataError(f"subset file not found: {p}")
    names: list[str] = []
    seen: set[str] = set()
    for lineno, raw in enumerate(p.read_text(encoding="utf-8").splitlines(), start=1):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        name = _entry(line.split()[0])
        if name in seen:
            raise DataError(f"{p}:{lineno}: image {name!r} is listed twice")
        seen.add(name)
        names.append(name)
    if not names:
        raise DataError(f"subset file {p} lists no images")
    return names


def match_subset(
    names: Sequence[str], paths: Sequence[str | os.PathLike[str]], *, source: str = "subset"
) -> np.ndarray:
    """Indices of the dataset files named by ``names`` (sorted): by base name, or by path suffix for an entry
    with folders. Raises :class:`DataError` for entries that match no file or several."""
    posix = [Path(str(p)).as_posix() for p in paths]
    by_name: dict[str, list[int]] = {}
    for i, path in enumerate(posix):
        by_name.setdefault(path.rsplit("/", 1)[-1], []).append(i)
    missing: list[str] = []
    ambiguous: list[str] = []
    chosen: list[int] = []
    for name in names:
        entry = _entry(name)
        hits = by_name.get(entry.rsplit("/", 1)[-1], [])
        if "/" in entry:
            hits = [i for i in hits if posix[i] == entry or posix[i].endswith("/" + entry)]
        if not hits:
            missing.append(name)
        elif len(hits) > 1:
            ambiguous.append(name)
        else:
            chosen.append(hits[0])
    if missing:
        shown = ", ".join(missing[:10]) + (f" (and {len(missing) - 10} more)" if len(missing) > 10 else "")
        raise DataError(
            f"{len(missing)} of the {len(names)} images of the {source} are not in the training set: {shown}"
        )
    if ambiguous:
        raise DataError(
            f"{len(ambiguous)} entries of the {source} match several training files, e.g. "
            f"{ambiguous[0]!r}: give them with their folder (e.g. class/{ambiguous[0]})"
        )
    return np.sort(np.asarray(chosen, dtype=np.int64))


def subset_entries(
    paths: Sequence[str | os.PathLike[str]], dataset_paths: Sequence[str | os.PathLike[str]]
) -> list[str]:
    """How to write ``paths`` (a subset of ``dataset_paths``) in a subset file: base names when they are unique
    in the dataset, otherwise ``<parent folder>/<name>``."""
    names = [Path(str(p)).name for p in dataset_paths]
    if len(set(names)) == len(names):
        return [Path(str(p)).name for p in paths]
    return [f"{Path(str(p)).parent.name}/{Path(str(p)).name}" for p in paths]


def write_subset_file(path: str | os.PathLike[str], entries: Sequence[str]) -> Path:
    """Write subset ``entries`` (see :func:`subset_entries`), one per line, atomically."""
    return atomic_write_text(path, "".join(f"{e}\n" for e in entries))
