"""Datasets whose images are uint8 arrays: in memory (CIFAR, Fashion-MNIST) or memory-mapped (STL10)."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch

from mvmr.data.base import ImageDataset, hash_parts
from mvmr.errors import DataError

__all__ = ["MemmapImages", "ArrayImageDataset", "torchvision_files"]


def torchvision_files(dataset: str, root: Path, names: Sequence[str], *, download: bool) -> Path:
    """The folder of torchvision's ``dataset`` (e.g. ``"CIFAR10"``) under ``root``, holding every file of
    ``names``; with ``download`` torchvision fetches its archive (URL and checksum) when a file is missing."""
    import torchvision.datasets as tv_datasets
    from torchvision.datasets.utils import download_and_extract_archive

    tv_class = getattr(tv_datasets, dataset)
    folder = Path(root) / tv_class.base_folder
    missing = [n for n in names if not (folder / n).is_file()]
    if missing and download:
        try:
            download_and_extract_archive(tv_class.url, str(root), filename=tv_class.filename, md5=tv_class.tgz_md5)
        except Exception as exc:  # network errors come in many types
            raise DataError(f"downloading {dataset} into {root} failed: {exc}") from exc
        missing = [n for n in names if not (folder / n).is_file()]
    if missing:
        raise DataError(
            f"{dataset.lower()} not found: looked for {', '.join(str(folder / n) for n in missing)}. "
            f"Pass download=True on a machine with internet, or put the extracted {tv_class.base_folder} "
            f"folder (from {tv_class.filename}) under {Path(root)}."
        )
    return folder


class MemmapImages:
    """uint8 images stored back to back in a raw binary file, memory-mapped on first use.

    The map is opened lazily in each process (it is not pickled), so DataLoader workers
    never copy the file. ``transpose_hw=True`` reads images stored column-major (STL10).

    Args:
        path: the binary file.
        image_shape: (C, H, W) of one image as stored.
        transpose_hw: swap H and W of each image when reading.
    """

    def __init__(self, path: Path, *, image_shape: tuple[int, int, int], transpose_hw: bool = False) -> None:
        self.path = Path(path)
        self.image_shape = tuple(image_shape)
        self.transpose_hw = transpose_hw
        per_image = int(np.prod(self.image_shape))
        nbytes = self.path.stat().st_size
        if nbytes == 0 or nbytes % per_image:
            raise DataError(
                f"corrupt image file {self.path}: {nbytes} bytes is not a whole number of "
                f"{'x'.join(map(str, self.image_shape))} uint8 images"
            )
        self.count = nbytes // per_image
        c, h, w = self.image_shape
        self.shape: tuple[int, ...] = (self.count, c, w, h) if transpose_hw else (self.count, c, h, w)
        self._array: np.ndarray | None = None

    def __len__(self) -> int:
        return self.count

    def __getitem__(self, index: int) -> np.ndarray:
        if self._array is None:
            self._array = np.memmap(self.path, dtype=np.uint8, mode="r", shape=(self.count, *self.image_shape))
        image = self._array[index]
        return image.transpose(0, 2, 1) if self.transpose_hw else image

    def __getstate__(self) -> dict:
        state = self.__dict__.copy()
        state["_array"] = None
        return state


class ArrayImageDataset(ImageDataset):
    """Images from one or more uint8 blocks of shape (N, C, H, W), concatenated in order.

    Args:
        blocks: the image blocks (numpy arrays or :class:`MemmapImages`).
        labels: one int per image over all blocks (-1 for unlabelled).
        classes: class names (index = label), empty when unlabelled.
        source: where the arrays came from, for messages (a path).
        size: optional resize (shorter side) + centre crop to size x size.
        channels: optional conversion to 1 or 3 channels (None keeps the stored channels).
    """

    def __init__(
        self,
        blocks: Sequence[np.ndarray | MemmapImages],
        labels: np.ndarray | list[int],
        *,
        classes: list[str],
        source: str,
        size: int | None = None,
        channels: int | None = None,
    ) -> None:
        super().__init__(classes=classes, labels=np.asarray(labels, dtype=np.int64), size=size, channels=channels)
        self.blocks = list(blocks)
        self.source = source
        for block in self.blocks:
            if len(block.shape) != 4:
                raise DataError(f"image arrays from {source} must be (N, C, H, W), got shape {tuple(block.shape)}")
        self._ends = np.cumsum([len(b) for b in self.blocks], dtype=np.int64)
        total = int(self._ends[-1]) if len(self._ends) else 0
        if total == 0:
            raise DataError(f"no images in {source}")
        if total != len(self.labels):
            raise DataError(f"{source}: {total} images but {len(self.labels)} labels")

    def _load(self, index: int) -> tuple[torch.Tensor, int]:
        b = int(np.searchsorted(self._ends, index, side="right"))
        start = int(self._ends[b - 1]) if b else 0
        # a copy: the blocks may be read-only (memory maps, frombuffer), which torch dislikes
        image = np.array(self.blocks[b][index - start], dtype=np.uint8, order="C", copy=True)
        return torch.from_numpy(image), int(self.labels[index])

    def _content_fingerprint(self) -> str:
        parts: list[bytes | str] = ["classes=" + "\n".join(self.classes), self.labels.tobytes()]
        for block in self.blocks:
            n = len(block)
            parts.append(f"shape={tuple(block.shape)}")
            for i in sorted({0, n // 2, n - 1}):
                parts.append(np.ascontiguousarray(block[i]).tobytes())
        return hash_parts(parts)
