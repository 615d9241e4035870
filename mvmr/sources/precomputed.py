"""Embeddings computed elsewhere (``embeddings:<file.npy>``), read by dataset index."""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
from torch import Tensor

from mvmr.sources.base import FeatureSource

__all__ = ["PrecomputedSource"]


class PrecomputedSource(FeatureSource):
    """One representation read from a :class:`~mvmr.representations.teachers.PrecomputedEmbeddings` file
    (row ``i`` embeds image ``i`` of its dataset); ``rows`` maps each training index of a subset of
    that dataset to its row (None: the index is the row)."""

    def __init__(self, embeddings: Any, *, rows: np.ndarray | None = None) -> None:
        self.embeddings = embeddings
        self.rows = None if rows is None else torch.as_tensor(np.asarray(rows, dtype=np.int64))

    @property
    def names(self) -> list[str]:
        return list(self.embeddings.names)

    def dims(self, channels: int, height: int, width: int) -> dict[str, int]:
        return {name: int(self.embeddings.dim) for name in self.names}

    def __call__(self, images: Tensor, index: Tensor) -> dict[str, Tensor]:
        if self.rows is not None:
            index = self.rows[index.detach().cpu()]
        return self.embeddings.get(index, device=images.device)
