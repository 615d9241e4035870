"""The data of a pretraining run, as the trainer and the method see it."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from mvmr.transforms import PaperAugmentation

__all__ = ["PretrainData"]


@dataclass
class PretrainData:
    """A run's clean images at image size (``base``), the method's training items (``views``), the
    training indices into ``base`` and the online probe's held-out labelled validation indices."""

    base: Any
    views: Any
    train_indices: np.ndarray
    val_indices: np.ndarray
    num_classes: int | None
    channels: int
    full: Any = None  #: the images at full resolution, which the augmented views are cut from
    augmentation: PaperAugmentation | None = None  #: the augmentation of the augmented views
