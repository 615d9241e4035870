"""The dataset interface every ``mvmr`` dataset follows."""

from __future__ import annotations

import copy
import hashlib
from collections.abc import Iterable

import numpy as np
import torch
from torch.utils.data import Dataset

from mvmr.data.image_utils import adapt_channels, resize_center_crop, to_float
from mvmr.errors import DataError

__all__ = ["ImageDataset", "hash_parts"]


def hash_parts(parts: Iterable[bytes | str]) -> str:
    """A short, stable hex digest of a sequence of strings/bytes (sha256, first 16 bytes)."""
    digest = hashlib.sha256()
    for part in parts:
        data = part.encode("utf-8") if isinstance(part, str) else part
        digest.update(len(data).to_bytes(8, "little"))
        digest.update(data)
    return digest.hexdigest()[:32]


class ImageDataset(Dataset[tuple[torch.Tensor, int]]):
    """Base class: items are ``(image, label)``, image a float32 tensor (C, H, W) in [0, 1].

    Subclasses implement :meth:`_load` (the raw uint8 image of one index) and
    :meth:`_content_fingerprint`. The base class applies the optional channel conversion
    and the optional resize + centre crop, then converts to float.

    Attributes:
        classes: class names, index = label; empty when the dataset has no labels.
        labels: int64 array of every item's label (-1 when unlabelled), readable without
            decoding any image (used for stratified splits).
        size: when set, images are resized (shorter side) and centre-cropped to size x size.
        channels: when set, images are converted to this many channels (1 or 3).
    """

    classes: list[str]
    labels: np.ndarray

    def __init__(self, *, classes: list[str], labels: np.ndarray, size: int | None, channels: int | None) -> None:
        if size is not None and (not isinstance(size, int) or size <= 0):
            raise DataError(f"size must be a positive int or None, got {size!r}")
        if channels not in (None, 1, 3):
            raise DataError(f"channels must be 1, 3 or None, got {channels!r}")
        self.classes = list(classes)
        self.labels = np.asarray(labels, dtype=np.int64)
        self.size = size
        self.channels = channels
        self._memo: dict[str, str] = {}  # shared by the copies of with_size: the content is fingerprinted once

    def __len__(self) -> int:
        return int(self.labels.shape[0])

    def _load(self, index: int) -> tuple[torch.Tensor, int]:
        """The uint8 image (C, H, W) and label of ``index`` (0 <= index < len)."""
        raise NotImplementedError

    def _content_fingerprint(self) -> str:
        """A cheap, stable digest of what the dataset holds (file list, array shapes...)."""
        raise NotImplementedError

    @property
    def num_skipped(self) -> int:
        """How many unreadable images were skipped so far (always 0 for array datasets)."""
        return 0

    def __getitem__(self, index: int) -> tuple[torch.Tensor, int]:
        index, n = int(index), len(self)
        if not -n <= index < n:
            raise IndexError(f"index {index} out of range for a dataset of {n} images")
        image, label = self._load(index % n)
        image = to_float(adapt_channels(image, self.channels))
        if self.size is not None:  # in float, as the training views resize their full image
            image = resize_center_crop(image, self.size)
        return image, int(label)

    def with_size(self, size: int | None) -> ImageDataset:
        """The same dataset with its images resized (shorter side) and centre-cropped to ``size``
        (None: as decoded). A shallow copy: files, arrays, labels and the content fingerprint are
        shared, so the training views can decode the full image once while the feature cache and
        the probe read the clean, centre-cropped one."""
        if size is not None and (isinstance(size, bool) or not isinstance(size, int) or size <= 0):
            raise DataError(f"size must be a positive int or None, got {size!r}")
        other = copy.copy(self)
        other.size = size
        return other

    def fingerprint(self) -> str:
        """A stable hash of the content plus ``size`` and ``channels``, for the feature cache to refuse a cache
        built from other data. Never decodes an image; the content part is computed once per process."""
        content = self._memo.get("content")
        if content is None:
            content = self._memo["content"] = self._content_fingerprint()
        return hash_parts([type(self).__name__, content, f"size={self.size}", f"channels={self.channels}"])

    def __repr__(self) -> str:
        return (
            f"{type(self).__name__}(n={len(self)}, classes={len(self.classes)}, "
            f"size={self.size}, channels={self.channels})"
        )
