"""Stored augmented views: K views of each image drawn once, so that a teacher embeds each view once
and the student trains on the very same pixels (consistent teaching at the price of a read).

FKD (Shen & Xing, ECCV 2022) stores a teacher's outputs for random crops with the crop's coordinates;
"a good teacher is patient and consistent" (Beyer et al., CVPR 2022) shows that the student must see
the view the teacher saw. Here:

- :class:`AugmentedViewBank` is the dataset of the ``N * K`` views, item ``i * K + k`` being view
  ``k`` of image ``i``: ``(view, parameters)``, the parameters drawn from a generator seeded by
  ``(seed, i, k)`` and returned as the float64 vector of
  :data:`~mvmr.transforms.PARAMETER_COLUMNS`. The feature cache stores both: the teacher's embedding
  of every view, and every view's parameters (``view_columns`` tells the cache to);
- :class:`StoredViews` gives the student ``(x_clean, x_aug, index, view_row, label)``: ``x_aug`` is one
  stored view of the image, drawn per epoch, re-created from the parameters read back from the cache,
  and ``view_row`` is the cache row of the teacher's embedding of exactly those pixels.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import numpy as np
import torch
from torch.utils.data import Dataset

from mvmr.data.base import hash_parts
from mvmr.data.image_utils import resize_center_crop, to_float
from mvmr.data.views import TwoViews
from mvmr.errors import DataError
from mvmr.transforms.augmentation import (
    PARAMETER_COLUMNS,
    PaperAugmentation,
    parameters_to_vector,
    vector_to_parameters,
)

__all__ = ["AugmentedViewBank", "StoredViews"]

#: ``rows -> (len(rows), len(PARAMETER_COLUMNS))`` float64: the stored parameters of those views
ParameterReader = Callable[[np.ndarray], np.ndarray]


def _seeded(*parts: object) -> torch.Generator:
    generator = torch.Generator()
    generator.manual_seed(int(hash_parts([str(p) for p in parts])[:15], 16))
    return generator


def _check_common(augmentation: Any, count: int, seed: int) -> None:
    if not isinstance(augmentation, PaperAugmentation):
        raise DataError(f"stored views need a PaperAugmentation (its parameters are stored), got {augmentation!r}")
    if isinstance(count, bool) or not isinstance(count, int) or count < 1:
        raise DataError(f"the number of stored views per image must be a positive int, got {count!r}")
    if isinstance(seed, bool) or not isinstance(seed, int):
        raise DataError(f"stored views need an int seed, got {seed!r}")


class AugmentedViewBank(Dataset[tuple[torch.Tensor, torch.Tensor]]):
    """The ``count`` stored augmented views of every image of ``dataset`` (see the module doc).

    Args:
        dataset: ``(image, label)`` items at full resolution, the ones the training views are cut from.
        size: the side of a view (the student's input size).
        augmentation: the :class:`~mvmr.transforms.PaperAugmentation` that draws and makes the views.
        count: K, views per image.
        seed: the views' seed (the same views for the same seed, data and augmentation).
    """

    #: tells :func:`mvmr.cache.build_cache` that items are ``(image, parameters)`` and to store the parameters
    view_columns: tuple[str, ...] = PARAMETER_COLUMNS

    def __init__(self, dataset: Dataset, *, size: int, augmentation: PaperAugmentation, count: int, seed: int) -> None:
        _check_common(augmentation, count, seed)
        if tuple(augmentation.size) != (size, size):
            raise DataError(f"the augmentation makes {augmentation.size} views, expected {size}x{size}")
        self.dataset, self.size, self.augmentation, self.count, self.seed = dataset, size, augmentation, count, seed

    def __len__(self) -> int:
        return len(self.dataset) * self.count  # type: ignore[arg-type]

    def row(self, index: int, view: int) -> int:
        """The row of view ``view`` of image ``index``."""
        return index * self.count + view

    def fingerprint(self) -> str:
        """The images' fingerprint with everything that decides the views: size, K, seed, augmentation."""
        parent = self.dataset.fingerprint() if hasattr(self.dataset, "fingerprint") else type(self.dataset).__name__
        return hash_parts(
            [
                "augmented-view-bank",
                parent,
                f"size={self.size}",
                f"count={self.count}",
                f"seed={self.seed}",
                json.dumps(self.augmentation.config(), sort_keys=True),
            ]
        )

    def view_settings(self) -> dict[str, Any]:
        """What decides the views (recorded in the cache's manifest, so a stale cache names what changed)."""
        return {"count": self.count, "seed": self.seed, "size": self.size, "augmentation": self.augmentation.config()}

    def parameters(self, row: int, height: int, width: int) -> dict[str, Any]:
        """The drawn parameters of view ``row`` of an image of ``height`` x ``width``."""
        index, view = divmod(int(row), self.count)
        return self.augmentation.draw(height, width, _seeded("stored-view", self.seed, index, view))

    def __getitem__(self, row: int) -> tuple[torch.Tensor, torch.Tensor]:
        if not 0 <= row < len(self):
            raise IndexError(f"view {row} out of range for {len(self)} stored views")
        image = to_float(self.dataset[row // self.count][0])
        params = self.parameters(row, image.shape[1], image.shape[2])
        view = self.augmentation.apply(image, params).to(torch.float32)
        return view, torch.from_numpy(parameters_to_vector(params))

    def __repr__(self) -> str:
        return f"AugmentedViewBank(count={self.count}, size={self.size}, seed={self.seed}, n={len(self)})"


class StoredViews(TwoViews):
    """``(x_clean, x_aug, index, view_row, label)``, ``x_aug`` re-created from stored parameters.

    ``x_clean`` is :class:`~mvmr.data.TwoViews`' clean view; each epoch every image gets one of its
    ``count`` stored views, chosen by a generator seeded by ``(seed, epoch, index)``; ``parameters``
    reads that view's parameters (row ``index * count + k`` of the cache that stored them, opened
    lazily so that it can be built after this dataset). Same arguments as :class:`AugmentedViewBank`,
    plus ``parameters``.
    """

    def __init__(
        self,
        dataset: Dataset,
        *,
        size: int,
        augmentation: PaperAugmentation,
        count: int,
        seed: int,
        parameters: ParameterReader,
    ) -> None:
        _check_common(augmentation, count, seed)
        super().__init__(dataset, size=size, augmentation=augmentation, seed=seed)
        self.count, self.parameters = count, parameters

    def view_of(self, index: int) -> int:
        """The stored view (0..K-1) that image ``index`` gets in this epoch."""
        return int(torch.randint(self.count, (), generator=_seeded("stored-view-pick", self.seed, self.epoch, index)))

    def __getitem__(self, index: int) -> tuple[torch.Tensor, torch.Tensor, int, int, int]:  # type: ignore[override]
        image, label = self.dataset[index]
        image = to_float(image)
        x_clean = resize_center_crop(image, self.size)
        if x_clean.data_ptr() == image.data_ptr():
            x_clean = x_clean.clone()
        row = int(index) * self.count + self.view_of(int(index))
        vector = np.asarray(self.parameters(np.array([row], dtype=np.int64)))[0]
        x_aug = self.augmentation.apply(image, vector_to_parameters(vector)).to(torch.float32)  # type: ignore[union-attr]
        return x_clean, x_aug, int(index), row, int(label)

    def __repr__(self) -> str:
        return f"StoredViews(count={self.count}, size={self.size}, seed={self.seed}, dataset={self.dataset!r})"
