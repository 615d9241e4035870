"""STL10 in torchvision's layout: ``root/stl10_binary/{train,test,unlabeled}_X.bin`` and ``*_y.bin``.

File names, URL and checksum come from ``torchvision.datasets.STL10``, and downloading goes
through torchvision. Reading does not: torchvision's class md5-hashes all 3 GB on every
construction and loads ``unlabeled_X.bin`` (2.7 GB) into memory, while this loader memory-maps
the image files (opened lazily in each DataLoader worker).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from mvmr.data.arrays import ArrayImageDataset, MemmapImages, torchvision_files
from mvmr.errors import DataError

__all__ = ["stl10", "STL10_SPLITS", "STL10_CLASSES"]

STL10_SPLITS = ("train", "test", "unlabeled", "train+unlabeled")
STL10_CLASSES = ["airplane", "bird", "car", "cat", "deer", "dog", "horse", "monkey", "ship", "truck"]
_IMAGE_SHAPE = (3, 96, 96)
# split -> the (images, labels or None) file pairs it concatenates
_FILES: dict[str, list[tuple[str, str | None]]] = {
    "train": [("train_X.bin", "train_y.bin")],
    "test": [("test_X.bin", "test_y.bin")],
    "unlabeled": [("unlabeled_X.bin", None)],
    "train+unlabeled": [("train_X.bin", "train_y.bin"), ("unlabeled_X.bin", None)],
}


def stl10(
    root: Path,
    *,
    split: str,
    size: int | None = None,
    channels: int | None = None,
    download: bool = False,
) -> ArrayImageDataset:
    """STL10 ``split`` (train, test, unlabeled, train+unlabeled); labels 0..9, -1 for unlabeled images."""
    if split not in _FILES:
        raise DataError(f"stl10 split must be one of {', '.join(STL10_SPLITS)}, got {split!r}")
    needed = [name for pair in _FILES[split] for name in pair if name is not None]
    folder = torchvision_files("STL10", Path(root), needed, download=download)
    blocks: list[MemmapImages] = []
    labels: list[np.ndarray] = []
    for images_name, labels_name in _FILES[split]:
        block = MemmapImages(folder / images_name, image_shape=_IMAGE_SHAPE, transpose_hw=True)
        if labels_name is None:
            block_labels = np.full(len(block), -1, dtype=np.int64)
        else:
            raw = np.fromfile(folder / labels_name, dtype=np.uint8).astype(np.int64)
            if len(raw) != len(block) or (len(raw) and (raw.min() < 1 or raw.max() > 10)):
                raise DataError(
                    f"corrupt STL10 labels {folder / labels_name}: expected {len(block)} labels in 1..10, "
                    f"got {len(raw)}"
                )
            block_labels = raw - 1
        blocks.append(block)
        labels.append(block_labels)
    names_file = folder / "class_names.txt"
    classes = (
        [n.strip() for n in names_file.read_text().splitlines() if n.strip()]
        if names_file.is_file()
        else list(STL10_CLASSES)
    )
    return ArrayImageDataset(
        blocks, np.concatenate(labels), classes=classes, source=str(folder), size=size, channels=channels
    )
