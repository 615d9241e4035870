"""Row indices for the memory-mapped stores (the feature cache, its stored views, precomputed teacher
embeddings): checked once, here, and grouped so that each row is read once, in disk order."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch

__all__ = ["RowIndex", "row_index"]


@dataclass(frozen=True)
class RowIndex:
    """``unique`` rows (sorted) to read, and ``inverse`` to put them back in the order asked."""

    unique: np.ndarray
    inverse: np.ndarray
    scalar: bool  # one int was asked: the caller returns (D,) instead of (1, D)


def row_index(indices: torch.Tensor | np.ndarray | Sequence[int] | int, rows: int, *, what: str) -> RowIndex:
    """``indices`` (an int, a sequence, an array or a tensor; unordered and repeated are fine) checked
    against ``rows`` rows: a TypeError for non-integers, an IndexError naming the first bad index and
    ``what`` is indexed (e.g. ``"a feature cache of 100 items"``)."""
    scalar = isinstance(indices, (int, np.integer)) or (isinstance(indices, torch.Tensor) and indices.ndim == 0)
    if isinstance(indices, torch.Tensor):
        idx = indices.detach().to("cpu").reshape(-1).numpy()
    else:
        idx = np.asarray(indices).reshape(-1)
    if idx.size and not np.issubdtype(idx.dtype, np.integer):
        raise TypeError(f"indices into {what} must be integers, got dtype {idx.dtype}")
    idx = idx.astype(np.int64, copy=False)
    if idx.size and (idx.min() < 0 or idx.max() >= rows):
        bad = int(idx[(idx < 0) | (idx >= rows)][0])
        raise IndexError(f"index {bad} out of range for {what}")
    unique, inverse = np.unique(idx, return_inverse=True)
    return RowIndex(unique=unique, inverse=inverse.reshape(-1), scalar=scalar)
