"""CIFAR-10 / CIFAR-100 in torchvision's layout (``cifar-10-batches-py``, ``cifar-100-python``).

The batch files are Python pickles of numpy arrays. They are read with an unpickler that only
accepts what numpy needs to rebuild an array, so a tampered file cannot run code. torchvision
is only used to download (its URL and checksum); loading does not go through torchvision's
classes, which re-hash every file on each construction.
"""

from __future__ import annotations

import io
import pickle
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from mvmr.data.arrays import ArrayImageDataset
from mvmr.errors import DataError

__all__ = ["cifar", "CIFAR10_CLASSES"]

CIFAR10_CLASSES = ["airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck"]


@dataclass(frozen=True)
class _Layout:
    folder: str
    train: tuple[str, ...]
    test: tuple[str, ...]
    meta: str
    label_key: bytes
    names_key: bytes
    archive: str
    torchvision_class: str


_LAYOUTS = {
    "cifar10": _Layout(
        folder="cifar-10-batches-py",
        train=tuple(f"data_batch_{i}" for i in range(1, 6)),
        test=("test_batch",),
        meta="batches.meta",
        label_key=b"labels",
        names_key=b"label_names",
        archive="cifar-10-python.tar.gz",
        torchvision_class="CIFAR10",
    ),
    "cifar100": _Layout(
        folder="cifar-100-python",
        train=("train",),
        test=("test",),
        meta="meta",
        label_key=b"fine_labels",
        names_key=b"fine_label_names",
        archive="cifar-100-python.tar.gz",
        torchvision_class="CIFAR100",
    ),
}

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


def _download(kind: str, root: Path) -> None:
    from torchvision.datasets import utils as tv_utils
    import torchvision.datasets as tv_datasets

    cls = getattr(tv_datasets, _LAYOUTS[kind].torchvision_class)
    try:
        tv_utils.download_and_extract_archive(cls.url, str(root), filename=cls.filename, md5=cls.tgz_md5)
    except Exception as exc:  # network errors come in many types
        raise DataError(f"downloading {kind} into {root} failed: {exc}") from exc


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
    layout = _LAYOUTS[kind]
    if split not in ("train", "test"):
        raise DataError(f"{kind} split must be 'train' or 'test', got {split!r}")
    folder = Path(root) / layout.folder
    names = layout.train if split == "train" else layout.test
    missing = [n for n in names if not (folder / n).is_file()]
    if missing and download:
        _download(kind, Path(root))
        missing = [n for n in names if not (folder / n).is_file()]
    if missing:
        raise DataError(
            f"{kind} not found: looked for {', '.join(str(folder / n) for n in missing)}. "
            f"Pass download=True on a machine with internet, or put the extracted {layout.folder} "
            f"folder (from {layout.archive}) under {Path(root)}."
        )
    images: list[np.ndarray] = []
    labels: list[int] = []
    for name in names:
        path = folder / name
        batch = _read_pickle(path)
        try:
            data = np.asarray(batch[b"data"], dtype=np.uint8)
            batch_labels = [int(v) for v in batch[layout.label_key]]
        except KeyError as exc:
            raise DataError(f"CIFAR batch {path} has no key {exc.args[0]!r}") from exc
        if data.ndim != 2 or data.shape[1] != 3 * 32 * 32 or data.shape[0] != len(batch_labels):
            raise DataError(
                f"CIFAR batch {path}: expected data of shape (N, 3072) and N labels, "
                f"got {data.shape} and {len(batch_labels)} labels"
            )
        images.append(data.reshape(-1, 3, 32, 32))
        labels.extend(batch_labels)
    meta_path = folder / layout.meta
    if meta_path.is_file():
        meta = _read_pickle(meta_path)
        classes = [n.decode() if isinstance(n, bytes) else str(n) for n in meta.get(layout.names_key, [])]
    else:
        classes = list(CIFAR10_CLASSES) if kind == "cifar10" else []
    if not classes:
        classes = [str(i) for i in range(max(labels) + 1)]
    block = np.concatenate(images) if len(images) > 1 else images[0]
    return ArrayImageDataset([block], labels, classes=classes, source=str(folder), size=size, channels=channels)
