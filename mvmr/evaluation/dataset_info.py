"""What the evaluation protocols need to know about a labelled dataset, read without decoding images.

Every helper looks through subset-like wrappers (anything with ``.dataset``, e.g.
:class:`mvmr.data.DatasetSubset` or :class:`torch.utils.data.Subset`).
"""

from __future__ import annotations

import numpy as np
import torch
from torch.utils.data import Dataset

from mvmr.errors import DataError

__all__ = ["dataset_classes", "dataset_labels", "dataset_paths", "check_same_classes"]


def dataset_classes(dataset: Dataset) -> list[str]:
    """The dataset's ``classes`` list (looking through subsets); empty when it has none."""
    while getattr(dataset, "classes", None) is None and getattr(dataset, "dataset", None) is not None:
        dataset = dataset.dataset  # type: ignore[attr-defined]
    return list(getattr(dataset, "classes", None) or [])


def _subset_indices(dataset: Dataset) -> np.ndarray | None:
    """Indices into ``dataset.dataset`` for subset-like wrappers (all of them for same-length wrappers
    such as :class:`~mvmr.evaluation.extraction.AugmentedDataset`); None for a plain dataset."""
    inner = getattr(dataset, "dataset", None)
    if inner is None:
        return None
    indices = getattr(dataset, "indices", None)
    if indices is not None:
        return np.asarray(indices, dtype=np.int64)
    if getattr(dataset, "labels", None) is None and len(dataset) == len(inner):  # type: ignore[arg-type]
        return np.arange(len(inner), dtype=np.int64)
    return None


def dataset_labels(dataset: Dataset) -> np.ndarray:
    """Every item's label: int64 (N,), or (N, C) for multi-label data (e.g. VOC), read from ``labels`` /
    ``targets`` / ``samples`` where the dataset has them, else by iterating it."""
    indices = _subset_indices(dataset)
    if indices is not None:
        return dataset_labels(dataset.dataset)[indices]  # type: ignore[attr-defined]
    for attr in ("labels", "targets"):
        value = getattr(dataset, attr, None)
        if value is not None and not callable(value):
            arr = value.numpy() if isinstance(value, torch.Tensor) else np.asarray(value)
            if arr.shape[0] == len(dataset):  # type: ignore[arg-type]
                return arr
    samples = getattr(dataset, "samples", None)
    if samples is not None:
        return np.asarray([int(s[1]) for s in samples], dtype=np.int64)
    values = [dataset[i][1] for i in range(len(dataset))]  # type: ignore[arg-type]
    if values and isinstance(values[0], torch.Tensor) and values[0].ndim > 0:
        return torch.stack(values).numpy()
    return np.asarray([int(v) for v in values], dtype=np.int64)


def dataset_paths(dataset: Dataset) -> list[str] | None:
    """The file path of every item (through subsets), or None when the dataset has no files."""
    indices = _subset_indices(dataset)
    if indices is not None:
        inner = dataset_paths(dataset.dataset)  # type: ignore[attr-defined]
        return None if inner is None else [inner[i] for i in indices]
    paths = getattr(dataset, "paths", None)
    if paths is None:
        samples = getattr(dataset, "samples", None) or getattr(dataset, "imgs", None)
        if samples is None:
            return None
        paths = [s[0] for s in samples]
    return [str(p) for p in paths]


def check_same_classes(train: Dataset, test: Dataset, *, names: tuple[str, str] = ("train", "test")) -> list[str]:
    """The classes of both datasets; :class:`DataError` (naming the difference) unless they are the same
    classes in the same order."""
    a, b = dataset_classes(train), dataset_classes(test)
    if not a:
        raise DataError(f"the {names[0]} dataset has no classes: the evaluation protocols need labelled data")
    if a == b:
        return a
    only_a = sorted(set(a) - set(b))
    only_b = sorted(set(b) - set(a))
    if only_a or only_b:
        parts = [
            f"only in {name}: {', '.join(only)}" for name, only in zip(names, (only_a, only_b), strict=True) if only
        ]
        raise DataError(
            f"the {names[0]} and {names[1]} datasets have different classes ({len(a)} vs {len(b)}); " + "; ".join(parts)
        )
    first = next(i for i, (x, y) in enumerate(zip(a, b, strict=True)) if x != y)
    raise DataError(
        f"the {names[0]} and {names[1]} datasets list the same classes in a different order "
        f"(position {first}: {a[first]!r} vs {b[first]!r}), so their labels disagree"
    )
