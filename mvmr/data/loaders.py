"""Reproducible DataLoaders and the train/validation split that the trainer and evaluations use.

Validation data is always held out from a TRAIN split (:func:`split_train_val`), never taken from
the test set.
"""

from __future__ import annotations

import random
from collections.abc import Callable
from typing import Any

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset

from mvmr.data.base import hash_parts
from mvmr.errors import ConfigError, DataError

__all__ = ["DatasetSubset", "random_subset", "make_loader", "seed_worker", "split_train_val", "dataset_labels"]


def dataset_labels(dataset: Dataset) -> np.ndarray | None:
    """The int64 label of every item, read without decoding images, or None when unknown."""
    labels = getattr(dataset, "labels", None)
    if labels is None:
        return None
    return np.asarray(labels, dtype=np.int64)


class DatasetSubset(Dataset):
    """The items ``indices`` of ``dataset``, keeping ``classes``, ``labels`` and ``fingerprint()``.

    Like :class:`torch.utils.data.Subset`, but the result still looks like an ``mvmr`` dataset
    (the feature cache and the evaluations need the labels and a fingerprint).
    """

    def __init__(self, dataset: Dataset, indices: np.ndarray | list[int]) -> None:
        self.dataset = dataset
        self.indices = np.asarray(indices, dtype=np.int64)
        n = len(dataset)  # type: ignore[arg-type]
        if len(self.indices) and (self.indices.min() < 0 or self.indices.max() >= n):
            raise DataError(f"subset indices must lie in [0, {n}), got {self.indices.min()}..{self.indices.max()}")
        self.classes: list[str] = list(getattr(dataset, "classes", []))
        parent = dataset_labels(dataset)
        self.labels: np.ndarray | None = parent[self.indices] if parent is not None else None

    def __len__(self) -> int:
        return len(self.indices)

    def __getitem__(self, index: int) -> Any:
        return self.dataset[int(self.indices[index])]

    @property
    def num_skipped(self) -> int:
        """Unreadable images the underlying dataset skipped so far (in this process)."""
        return int(getattr(self.dataset, "num_skipped", 0))

    def fingerprint(self) -> str:
        """The parent's fingerprint combined with the chosen indices."""
        parent = self.dataset.fingerprint() if hasattr(self.dataset, "fingerprint") else type(self.dataset).__name__
        return hash_parts(["subset", parent, self.indices.tobytes()])

    def __repr__(self) -> str:
        return f"DatasetSubset(n={len(self)} of {self.dataset!r})"


def random_subset(dataset: Dataset, size: int | None, seed: int) -> Dataset:
    """``size`` items of ``dataset`` drawn at random (seeded: the same seed, the same items), in dataset
    order; ``dataset`` itself when ``size`` is None or not smaller than the dataset."""
    n = len(dataset)  # type: ignore[arg-type]
    if size is None or size >= n:
        return dataset
    return DatasetSubset(dataset, np.sort(np.random.default_rng(seed).choice(n, size=size, replace=False)))


def split_train_val(dataset: Dataset, val_fraction: float, seed: int = 0) -> tuple[DatasetSubset, DatasetSubset]:
    """Split ``dataset`` (a TRAIN split) into train and validation subsets, reproducibly.

    Stratified by label when the dataset exposes ``labels``: each class (and the unlabelled
    items, label -1, as a group of their own) contributes ``round(n * val_fraction)`` items to
    validation, at most ``n - 1`` so that training sees every class. Without labels the split
    is a plain random one. Both subsets list their indices in increasing order.

    Raises:
        ConfigError: ``val_fraction`` is not in (0, 1).
        DataError: the split would leave the validation or training subset empty.
    """
    if isinstance(val_fraction, bool) or not isinstance(val_fraction, (int, float)) or not 0 < val_fraction < 1:
        raise ConfigError(f"val_fraction must be a number in (0, 1), got {val_fraction!r}")
    n = len(dataset)  # type: ignore[arg-type]
    labels = dataset_labels(dataset)
    if labels is None:
        labels = np.full(n, -1, dtype=np.int64)
    if len(labels) != n:
        raise DataError(f"dataset has {n} items but {len(labels)} labels")
    rng = np.random.default_rng(seed)
    val_parts: list[np.ndarray] = []
    for value in np.unique(labels):
        members = np.flatnonzero(labels == value)
        count = min(int(round(len(members) * val_fraction)), len(members) - 1)
        if count > 0:
            val_parts.append(rng.permutation(members)[:count])
    val = np.sort(np.concatenate(val_parts)) if val_parts else np.empty(0, dtype=np.int64)
    if len(val) == 0 or len(val) == n:
        raise DataError(f"val_fraction={val_fraction} leaves an empty subset of a dataset of {n} items")
    train = np.setdiff1d(np.arange(n, dtype=np.int64), val, assume_unique=True)
    return DatasetSubset(dataset, train), DatasetSubset(dataset, val)


def seed_worker(worker_id: int) -> None:
    """DataLoader ``worker_init_fn``: seed Python's and numpy's RNGs from the worker's torch seed.

    torch already seeds each worker with ``base_seed + worker_id`` (``base_seed`` drawn from
    the loader's generator), so this makes ``random`` and ``numpy.random`` follow it.
    """
    seed = torch.initial_seed() % 2**32
    random.seed(seed)
    np.random.seed(seed)


def make_loader(
    dataset: Dataset,
    batch_size: int,
    *,
    shuffle: bool,
    drop_last: bool = False,
    num_workers: int = 0,
    seed: int = 0,
    pin_memory: bool = False,
    persistent_workers: bool = False,
    collate_fn: Callable[[list[Any]], Any] | None = None,
) -> DataLoader:
    """A DataLoader whose order and worker seeds depend only on ``seed``.

    The shuffling order comes from a ``torch.Generator`` seeded with ``seed``, which also
    draws each epoch's worker base seed; :func:`seed_worker` extends that to ``random`` and
    ``numpy``. With ``num_workers=0`` the augmentations draw from the global torch RNG, which
    the caller seeds (e.g. ``lightning.seed_everything``), or use ``TwoViews(seed=...)``.

    Raises:
        ConfigError: ``batch_size`` or ``num_workers`` is invalid.
        DataError: ``drop_last=True`` with fewer items than one batch (no batch at all).
    """
    if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size <= 0:
        raise ConfigError(f"batch_size must be a positive int, got {batch_size!r}")
    if isinstance(num_workers, bool) or not isinstance(num_workers, int) or num_workers < 0:
        raise ConfigError(f"num_workers must be an int >= 0, got {num_workers!r}")
    n = len(dataset)  # type: ignore[arg-type]
    if drop_last and n < batch_size:
        raise DataError(f"dataset of {n} items gives no batch of batch_size={batch_size} with drop_last=True")
    generator = torch.Generator()
    generator.manual_seed(int(seed))
    return DataLoader(
        dataset,
        batch_size=batch_size,
        shuffle=shuffle,
        drop_last=drop_last,
        num_workers=num_workers,
        generator=generator,
        worker_init_fn=seed_worker if num_workers > 0 else None,
        pin_memory=pin_memory,
        persistent_workers=persistent_workers and num_workers > 0,
        collate_fn=collate_fn,
    )
