"""Fashion-MNIST from its idx files (``train-images-idx3-ubyte.gz`` ...), parsed with numpy.

Looks in ``root`` itself (Debian's ``dataset-fashion-mnist`` puts the files in
``/usr/share/datasets/fashion-mnist``) and in ``root/FashionMNIST/raw`` (where torchvision
downloads them). Plain (un-gzipped) idx files are accepted too.
"""

from __future__ import annotations

import gzip
from pathlib import Path

import numpy as np

from mvmr.data.arrays import ArrayImageDataset
from mvmr.errors import DataError

__all__ = ["fashion_mnist", "read_idx", "FASHION_MNIST_ROOT", "FASHION_MNIST_CLASSES"]

FASHION_MNIST_ROOT = Path("/usr/share/datasets/fashion-mnist")
FASHION_MNIST_CLASSES = [
    "T-shirt/top",
    "Trouser",
    "Pullover",
    "Dress",
    "Coat",
    "Sandal",
    "Shirt",
    "Sneaker",
    "Bag",
    "Ankle boot",
]
_PREFIX = {"train": "train", "test": "t10k"}
_IDX_DTYPES: dict[int, np.dtype] = {
    0x08: np.dtype(np.uint8),
    0x09: np.dtype(np.int8),
    0x0B: np.dtype(">i2"),
    0x0C: np.dtype(">i4"),
    0x0D: np.dtype(">f4"),
    0x0E: np.dtype(">f8"),
}


def read_idx(path: Path) -> np.ndarray:
    """Read one idx file (gzipped when the name ends in .gz) into a numpy array."""
    try:
        opener = gzip.open if path.suffix == ".gz" else open
        with opener(path, "rb") as f:
            raw = f.read()
    except (OSError, EOFError) as exc:
        raise DataError(f"cannot read idx file {path}: {exc}") from exc
    if len(raw) < 4 or raw[0] != 0 or raw[1] != 0 or raw[2] not in _IDX_DTYPES:
        raise DataError(f"not an idx file: {path} (bad magic number)")
    dtype = np.dtype(_IDX_DTYPES[raw[2]])
    ndim = raw[3]
    header = 4 + 4 * ndim
    dims = tuple(int(d) for d in np.frombuffer(raw, dtype=">u4", count=ndim, offset=4))
    expected = int(np.prod(dims)) * dtype.itemsize
    if len(raw) - header != expected:
        raise DataError(
            f"corrupt idx file {path}: header says {dims}, which needs {expected} bytes, found {len(raw) - header}"
        )
    return np.frombuffer(raw, dtype=dtype, offset=header).reshape(dims)


def _find(root: Path, name: str) -> Path | None:
    for folder in (root, root / "FashionMNIST" / "raw"):
        for candidate in (folder / f"{name}.gz", folder / name):
            if candidate.is_file():
                return candidate
    return None


def fashion_mnist(
    root: Path = FASHION_MNIST_ROOT,
    *,
    split: str,
    size: int | None = None,
    channels: int | None = None,
    download: bool = False,
) -> ArrayImageDataset:
    """Fashion-MNIST train (60k) or test (10k): 28x28 grayscale (C=1), labels 0..9."""
    if split not in _PREFIX:
        raise DataError(f"fashion_mnist split must be 'train' or 'test', got {split!r}")
    root = Path(root)
    names = (f"{_PREFIX[split]}-images-idx3-ubyte", f"{_PREFIX[split]}-labels-idx1-ubyte")
    found = [_find(root, n) for n in names]
    if None in found and download:
        from torchvision.datasets import FashionMNIST

        try:
            FashionMNIST(str(root), train=split == "train", download=True)
        except Exception as exc:  # network errors come in many types
            raise DataError(f"downloading Fashion-MNIST into {root} failed: {exc}") from exc
        found = [_find(root, n) for n in names]
    images_path, labels_path = found
    if images_path is None or labels_path is None:
        missing = [n for n, p in zip(names, found, strict=True) if p is None]
        raise DataError(
            f"fashion_mnist not found: looked for {', '.join(m + '.gz' for m in missing)} in {root} and "
            f"{root / 'FashionMNIST' / 'raw'}. Install Debian's dataset-fashion-mnist package (files in "
            f"{FASHION_MNIST_ROOT}), pass download=True on a machine with internet, or put the idx .gz files in {root}."
        )
    images = read_idx(images_path)
    labels = read_idx(labels_path)
    if images.ndim != 3 or labels.ndim != 1 or len(images) != len(labels):
        raise DataError(
            f"Fashion-MNIST files disagree: images {images_path} have shape {images.shape}, "
            f"labels {labels_path} have shape {labels.shape}"
        )
    return ArrayImageDataset(
        [np.ascontiguousarray(images[:, None])],
        labels.astype(np.int64),
        classes=list(FASHION_MNIST_CLASSES),
        source=str(images_path.parent),
        size=size,
        channels=channels,
    )
