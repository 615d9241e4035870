"""Seeded, class-balanced index selections: validation hold-outs and semi-supervised label subsets.

Everything here works on label arrays (never on images), is deterministic for a given seed
(NumPy ``default_rng``), and returns sorted int64 index arrays into the dataset.

The semi-supervised subsets can also be read from (and are saved as) the format of the
standard ImageNet 1%/10% subset files: one image file name per line, e.g.
``n01440764_10026.JPEG``, matched against the dataset's files by base name. Where base names
repeat across class folders (CIFAR's ``0001.jpg``), entries carry the folder: ``cat/0001.jpg``.
"""

from __future__ import annotations

import math
import os
from pathlib import Path
from typing import Iterable, Sequence

import numpy as np

from mvmr.errors import ConfigError, DataError
from mvmr.utils.atomic import atomic_write_text

__all__ = ["stratified_split", "stratified_limit", "random_split", "balanced_subset", "read_subset_file",
           "match_subset", "subset_entries", "write_subset_file"]


def _check_labels(labels: Sequence[int] | np.ndarray) -> np.ndarray:
    arr = np.asarray(labels)
    if arr.ndim != 1:
        raise ValueError(f"expected a 1-D array of class labels, got shape {arr.shape}")
    if arr.size and arr.min() < 0:
        raise DataError("the dataset has unlabelled items (label -1); the evaluation protocols need labels")
    return arr.astype(np.int64, copy=False)


def stratified_split(labels: Sequence[int] | np.ndarray, val_fraction: float, *,
                     seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Hold out ``val_fraction`` of every class (seeded): returns ``(train_indices, val_indices)``.

    Each class with at least two items gives ``round(val_fraction * count)`` items (at least
    one when ``val_fraction > 0``, at most ``count - 1``) to the validation part. A class with
    a single item stays entirely in the training part. ``val_fraction = 0`` gives no validation.
    """
    if not 0.0 <= val_fraction < 1.0:
        raise ConfigError(f"val_fraction must be in [0, 1), got {val_fraction}")
    arr = _check_labels(labels)
    rng = np.random.default_rng(seed)
    train: list[np.ndarray] = []
    val: list[np.ndarray] = []
    for c in np.unique(arr):
        idx = np.flatnonzero(arr == c)
        idx = idx[rng.permutation(idx.size)]
        n_val = 0
        if val_fraction > 0 and idx.size >= 2:
            n_val = min(idx.size - 1, max(1, int(round(val_fraction * idx.size))))
        val.append(idx[:n_val])
        train.append(idx[n_val:])
    empty = np.empty(0, dtype=np.int64)
    return (np.sort(np.concatenate(train)) if train else empty, np.sort(np.concatenate(val)) if val else empty)


def random_split(n: int, val_fraction: float, *, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Seeded unstratified hold-out of ``round(val_fraction * n)`` indices (for multi-label data): the
    :func:`stratified_split` of ``n`` items of one class."""
    return stratified_split(np.zeros(n, dtype=np.int64), val_fraction, seed=seed)


def stratified_limit(labels: Sequence[int] | np.ndarray, limit: int, *, seed: int = 0) -> np.ndarray:
    """At most ``limit`` indices, spread over the classes as evenly as the data allows (seeded).

    Used for quick runs (``--limit-train``/``--limit-test``). Returns all indices when
    ``limit >= len(labels)``.
    """
    arr = _check_labels(labels)
    if limit <= 0:
        raise ConfigError(f"limit must be positive, got {limit}")
    if limit >= arr.size:
        return np.arange(arr.size, dtype=np.int64)
    rng = np.random.default_rng(seed)
    per_class = {int(c): np.flatnonzero(arr == c) for c in np.unique(arr)}
    per_class = {c: idx[rng.permutation(idx.size)] for c, idx in per_class.items()}
    chosen: list[int] = []
    depth = 0
    while len(chosen) < limit:
        for c in sorted(per_class):
            if depth < per_class[c].size and len(chosen) < limit:
                chosen.append(int(per_class[c][depth]))
        depth += 1
    return np.sort(np.asarray(chosen, dtype=np.int64))


def balanced_subset(labels: Sequence[int] | np.ndarray, fraction: float, *, seed: int = 0,
                    exclude: Iterable[int] | None = None) -> np.ndarray:
    """A class-balanced labelled subset: ``fraction`` of the images of every class (seeded).

    Each class contributes ``max(1, round(fraction * count_c))`` images, where ``count_c`` is the
    class size in the whole labelled set (like the ImageNet 1%/10% subsets: ~13 / ~128 images
    per class). ``exclude`` removes candidates (e.g. a validation hold-out); a class then gives
    at most the images it has left.
    """
    if not 0.0 < fraction <= 1.0:
        raise ConfigError(f"fraction must be in (0, 1], got {fraction}")
    arr = _check_labels(labels)
    excluded = np.zeros(arr.size, dtype=bool)
    if exclude is not None:
        excluded[np.asarray(list(exclude), dtype=np.int64)] = True
    rng = np.random.default_rng(seed)
    chosen: list[np.ndarray] = []
    for c in np.unique(arr):
        idx_all = np.flatnonzero(arr == c)
        want = max(1, int(math.floor(fraction * idx_all.size + 0.5)))
        idx = idx_all[~excluded[idx_all]]
        idx = idx[rng.permutation(idx.size)]
        chosen.append(idx[:want])
    return np.sort(np.concatenate(chosen)) if chosen else np.empty(0, dtype=np.int64)


def _entry(text: str) -> str:
    return "/".join(part for part in text.replace("\\", "/").split("/") if part not in ("", "."))


def read_subset_file(path: str | os.PathLike[str]) -> list[str]:
    """Image entries of a subset file, one per line; blank lines and ``#`` comments skipped.

    An entry is a file name (``n01440764_10026.JPEG``, the ImageNet 1%/10% format) or a
    relative path (``cat/0042.jpg``) for datasets whose file names repeat across folders;
    anything after whitespace on a line (e.g. a label) is ignored. Raises :class:`DataError`
    for a missing or empty file or a repeated entry.
    """
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


def match_subset(names: Sequence[str], paths: Sequence[str | os.PathLike[str]], *, source: str = "subset") -> np.ndarray:
    """Indices of the dataset files named by ``names`` (sorted).

    A plain file name matches by base name; an entry with folders (``cat/0042.jpg``) matches the
    files whose path ends with it. Raises :class:`DataError` naming (up to 10) entries that
    match no file, and entries that match several files (ambiguous).
    """
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
        raise DataError(f"{len(missing)} of the {len(names)} images of the {source} are not in the training set: "
                        f"{shown}")
    if ambiguous:
        raise DataError(f"{len(ambiguous)} entries of the {source} match several training files, e.g. "
                        f"{ambiguous[0]!r}: give them with their folder (e.g. class/{ambiguous[0]})")
    return np.sort(np.asarray(chosen, dtype=np.int64))


def subset_entries(paths: Sequence[str | os.PathLike[str]], dataset_paths: Sequence[str | os.PathLike[str]]) -> list[str]:
    """How to write ``paths`` (a subset of ``dataset_paths``) in a subset file.

    Base names when they are unique in the dataset (the ImageNet format); otherwise
    ``<parent folder>/<name>`` (e.g. CIFAR's ``cat/0042.jpg``).
    """
    names = [Path(str(p)).name for p in dataset_paths]
    if len(set(names)) == len(names):
        return [Path(str(p)).name for p in paths]
    return [f"{Path(str(p)).parent.name}/{Path(str(p)).name}" for p in paths]


def write_subset_file(path: str | os.PathLike[str], entries: Sequence[str]) -> Path:
    """Write subset ``entries`` (see :func:`subset_entries`), one per line, atomically."""
    return atomic_write_text(path, "".join(f"{e}\n" for e in entries))
