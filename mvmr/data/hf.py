"""Image datasets of the Hugging Face ``datasets`` library: from the Hub, or a ``save_to_disk`` folder.

Building :class:`HFImageDataset` reads the label column only; an image is decoded when its item is
read, from the memory-mapped Arrow files (DataLoader workers share the pages). Images may be a
``datasets.Image`` column or uint8 arrays (H, W) / (H, W, C); labels a ``ClassLabel`` column (its names
become ``classes``), integers, or strings (sorted into classes). A Hub id is read from the Hugging Face
cache unless ``download=True``; a ``save_to_disk`` folder with ``datasets.load_from_disk`` (``split``
picks one dataset of a ``DatasetDict``). Needs ``pip install 'mvmr[datasets]'``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import torch
from PIL import Image

from mvmr.data.base import ImageDataset, hash_parts
from mvmr.data.image_utils import array_to_tensor, image_to_array
from mvmr.errors import DataError

__all__ = ["HFImageDataset", "hf_dataset", "open_hf_dataset"]


def _datasets() -> Any:
    try:
        import datasets
    except ImportError as exc:
        raise DataError("data.kind=hf needs the datasets package: pip install 'mvmr[datasets]'") from exc
    return datasets


def _from_disk(folder: Path, split: str) -> Any:
    datasets = _datasets()
    try:
        loaded = datasets.load_from_disk(str(folder))
    except (FileNotFoundError, ValueError) as exc:
        raise DataError(f"{folder} is not a folder written by datasets' save_to_disk: {exc}") from exc
    if isinstance(loaded, datasets.DatasetDict):
        if split not in loaded:
            raise DataError(f"split {split!r} not in {folder}; it holds {', '.join(loaded)}")
        return loaded[split]
    if split and loaded.split is not None and str(loaded.split) != split:
        raise DataError(f"{folder} holds the {loaded.split!r} split, not {split!r}")
    return loaded


def _from_hub(name: str, split: str, download: bool) -> Any:
    datasets = _datasets()
    if download:
        try:
            return datasets.load_dataset(name, split=split)
        except (OSError, ValueError) as exc:  # ConnectionError, a missing repo or split
            raise DataError(f"cannot load {name!r} split {split!r} from the Hugging Face Hub: {exc}") from exc
    from huggingface_hub import snapshot_download
    from huggingface_hub.errors import LocalEntryNotFoundError

    try:
        snapshot = snapshot_download(repo_id=name, repo_type="dataset", local_files_only=True)
    except (LocalEntryNotFoundError, OSError, ValueError) as exc:
        raise DataError(
            f"dataset {name!r} is not in the Hugging Face cache and data.download is false: set data.download=true "
            f"to download it, or save it with datasets' save_to_disk and give that folder as data.name"
        ) from exc
    try:
        return datasets.load_dataset(snapshot, split=split)
    except (OSError, ValueError) as exc:
        raise DataError(
            f"cannot read {name!r} split {split!r} from the Hugging Face cache ({snapshot}): {exc}"
        ) from exc


def open_hf_dataset(name: str, split: str, *, download: bool = False) -> Any:
    """The ``datasets.Dataset`` of ``name`` (a ``save_to_disk`` folder or a Hub id) and ``split``."""
    folder = Path(name).expanduser()
    if folder.is_dir():
        return _from_disk(folder, split)
    if name.startswith((".", "/", "~")) or folder.exists():
        raise DataError(f"dataset folder not found: {folder}")
    return _from_hub(name, split, download)


def _labels(table: Any, column: str | None, where: str) -> tuple[np.ndarray, list[str]]:
    """(int64 labels, -1 for missing, and the class names) of ``column``, read without decoding images."""
    n = len(table)
    if column is None:
        return np.full(n, -1, dtype=np.int64), []
    if column not in table.column_names:
        raise DataError(
            f"{where}: no label column {column!r}; columns: {', '.join(table.column_names)} "
            f"(set data.label_column, or null for unlabelled data)"
        )
    feature = table.features[column]
    values = table.data.column(column).to_pylist()
    names = getattr(feature, "names", None)
    if names is not None:  # ClassLabel
        return np.array([-1 if v is None else int(v) for v in values], dtype=np.int64), list(names)
    present = [v for v in values if v is not None]
    if all(isinstance(v, (int, np.integer)) and not isinstance(v, bool) for v in present):
        labels = np.array([-1 if v is None else int(v) for v in values], dtype=np.int64)
        return labels, [str(i) for i in range(int(labels.max()) + 1)] if present else []
    if all(isinstance(v, str) for v in present):
        classes = sorted(set(present))
        index = {c: i for i, c in enumerate(classes)}
        return np.array([-1 if v is None else index[v] for v in values], dtype=np.int64), classes
    raise DataError(f"{where}: label column {column!r} holds {feature}; expected class labels, integers or strings")


class HFImageDataset(ImageDataset):
    """The images (and labels) of a ``datasets.Dataset``, as ``(image, label)`` items in [0, 1].

    Args:
        table: the ``datasets.Dataset`` (memory-mapped Arrow).
        image_column: the column of images (``datasets.Image`` or uint8 arrays).
        label_column: the column of labels, None for unlabelled.
        description: the dataset's name and split, for messages and the fingerprint.
        size, channels: see :class:`~mvmr.data.base.ImageDataset`.
    """

    def __init__(
        self,
        table: Any,
        *,
        image_column: str,
        label_column: str | None,
        description: str,
        size: int | None = None,
        channels: int | None = None,
    ) -> None:
        if image_column not in table.column_names:
            raise DataError(
                f"{description}: no image column {image_column!r}; columns: "
                f"{', '.join(table.column_names)} (set data.image_column)"
            )
        labels, classes = _labels(table, label_column, description)
        super().__init__(classes=classes, labels=labels, size=size, channels=channels)
        if len(labels) == 0:
            raise DataError(f"{description} holds no images")
        self.description = description
        self.image_column = image_column
        self.label_column = label_column
        self._images = table.select_columns([image_column])  # items decode this column only
        self._table_fingerprint = str(getattr(table, "_fingerprint", "") or "")

    def _load(self, index: int) -> tuple[torch.Tensor, int]:
        value = self._images[index][self.image_column]
        if isinstance(value, Image.Image):
            array = image_to_array(value, channels=self.channels or 3)
        else:
            array = np.asarray(value)
            if array.dtype != np.uint8:
                raise DataError(
                    f"{self.description}: item {index} of column {self.image_column!r} is a "
                    f"{array.dtype} array; expected images or uint8 arrays"
                )
        return array_to_tensor(array), int(self.labels[index])

    def _content_fingerprint(self) -> str:
        """The Arrow table's own fingerprint (``datasets`` keeps one per table state), columns and length."""
        return hash_parts(
            [
                self.description,
                self._table_fingerprint,
                self.image_column,
                str(self.label_column),
                str(len(self)),
                self.labels.tobytes(),
            ]
        )


def hf_dataset(
    name: str,
    *,
    split: str,
    image_column: str = "image",
    label_column: str | None = "label",
    size: int | None = None,
    channels: int | None = None,
    download: bool = False,
) -> HFImageDataset:
    """An :class:`HFImageDataset` of ``name`` (Hub id or ``save_to_disk`` folder), ``split``."""
    table = open_hf_dataset(name, split, download=download)
    return HFImageDataset(
        table,
        image_column=image_column,
        label_column=label_column,
        description=f"Hugging Face dataset {name!r} split {split!r}",
        size=size,
        channels=channels,
    )
