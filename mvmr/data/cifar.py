"""CIFAR-10 / CIFAR-100 in torchvision's layout (``cifar-10-batches-py``, ``cifar-100-python``).

The batch files are Python pickles of numpy arrays. They are read with an unpickler that only
accepts what numpy needs to rebuild an array, so a tampered file cannot run code. torchvision
only gives the file names and downloads; loading does not go through torchvision's classes,
which re-hash every file on each construction.
"""

from __future__ import annotations

import io
import pickle
from pathlib import Path
from typing import Any

import numpy as np

from mvmr.data.arrays import ArrayImageDataset, torchvision_files
from mvmr.errors import DataError

__all__ = ["cifar", "CIFAR10_CLASSES"]

CIFAR10_CLASSES = ["airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck"]


_ALLOWED_GLOBALS = {
    ("numpy", "ndarray"),
    ("numpy", "dtype"),
    ("numpy.core.multiarray", "_reconstruct"),
    ("numpy._core.multiarray", "_reconstruct"),
    ("numpy.core.multiarray", "scalar"),
    ("numpy._core.multiarray", "scalar"),
    ("numpy.core.numeric", "_frombuffer"),
    ("numpy._core.numeric", "_frombuffer"),
    ("_codecs", "encode"),
}


class _ArrayUnpickler(pickle.Unpickler):
    """Unpickles plain containers and numpy arrays, nothing else."""

    def find_class(self, module: str, name: str) -> Any:
        if (module, name) not in _ALLOWED_GLOBALS:
            raise pickle.UnpicklingError(f"refusing to load {module}.{name}")
        return super().find_class(module, name)


def _read_pickle(path: Path) -> dict:
    try:
        data = _ArrayUnpickler(io.BytesIO(path.read_bytes()), encoding="bytes").load()
    except (OSError, pickle.UnpicklingError, EOFError, ValueError, TypeError, AttributeError) as exc:
        raise DataError(f"cannot read CIFAR batch {path}: {exc}") from exc
    if not isinstance(data, dict):
        raise DataError(f"cannot read CIFAR batch {path}: expected a dict, got {type(data).__name__}")
    return data


def cifar(
    kind: str,
    root: Path,
    *,
    split: str,
    size: int | None = None,
    channels: int | None = None,
    download: bool = False,
) -> ArrayImageDataset:
    """CIFAR-10 (``kind="cifar10"``) or CIFAR-100 (``"cifar100"``, fine labels); split train or test."""
    if split not in ("train", "test"):
        raise DataError(f"{kind} split must be 'train' or 'test', got {split!r}")
    import torchvision.datasets as tv_datasets

    tv_class = tv_datasets.CIFAR10 if kind == "cifar10" else tv_datasets.CIFAR100
    names = [name for name, _ in (tv_class.train_list if split == "train" else tv_class.test_list)]
    folder = torchvision_files(tv_class.__name__, Path(root), names, download=download)
    images: list[np.ndarray] = []
    labels: list[int] = []
    for name in names:
        path = folder / name
        batch = _read_pickle(path)
        try:
            data = np.asarray(batch[b"data"], dtype=np.uint8)
            batch_labels = [int(v) for v in batch[b"labels" if kind == "cifar10" else b"fine_labels"]]
        except KeyError as exc:
            raise DataError(f"CIFAR batch {path} has no key {exc.args[0]!r}") from exc
        if data.ndim != 2 or data.shape[1] != 3 * 32 * 32 or data.shape[0] != len(batch_labels):
            raise DataError(
                f"CIFAR batch {path}: expected data of shape (N, 3072) and N labels, "
                f"got {data.shape} and {len(batch_labels)} labels"
            )
        images.append(data.reshape(-1, 3, 32, 32))
        labels.extend(batch_labels)
    meta_path = folder / tv_class.meta["filename"]
    if meta_path.is_file():
        meta = _read_pickle(meta_path)
        classes = [n.decode() if isinstance(n, bytes) else str(n) for n in meta.get(tv_class.meta["key"].encode(), [])]
    else:
        classes = list(CIFAR10_CLASSES) if kind == "cifar10" else []
    if not classes:
        classes = [str(i) for i in range(max(labels) + 1)]
    block = np.concatenate(images) if len(images) > 1 else images[0]
    return ArrayImageDataset([block], labels, classes=classes, source=str(folder), size=size, channels=channels)
