"""``build_dataset``: one entry point for every dataset kind ``mvmr`` reads.

Every dataset returns ``(image, label)``: image a float32 tensor (C, H, W) in [0, 1], label an
int (-1 when unlabelled). Each exposes ``classes``, ``labels`` and ``fingerprint()``. A dataset
that is missing fails at construction with a :class:`~mvmr.errors.DataError` naming the path
it looked at and how to provide the files; an empty one fails at construction too.
"""

from __future__ import annotations

from pathlib import Path

from mvmr.data.base import ImageDataset
from mvmr.data.cifar import cifar
from mvmr.data.fashion_mnist import FASHION_MNIST_ROOT, fashion_mnist
from mvmr.data.folders import flat_folder, image_folder
from mvmr.data.hf import hf_dataset
from mvmr.data.stl10 import stl10
from mvmr.errors import DataError

__all__ = ["build_dataset", "DATASET_KINDS"]

#: The ``kind`` values :func:`build_dataset` accepts.
DATASET_KINDS: tuple[str, ...] = ("imagefolder", "folder", "stl10", "cifar10", "cifar100", "fashion_mnist", "hf")


def build_dataset(
    kind: str,
    root: str | Path | None,
    *,
    split: str,
    size: int | None = None,
    download: bool = False,
    skip_corrupt: bool = False,
    channels: int | None = None,
    labels_file: str | Path | None = None,
    name: str | None = None,
    image_column: str = "image",
    label_column: str | None = "label",
) -> ImageDataset:
    """Build a dataset by ``kind``.

    Args:
        kind: one of :data:`DATASET_KINDS`:
            ``"imagefolder"`` ``root/<split>/<class>/*.jpg`` (split "" = root itself);
            ``"folder"`` every image under ``root/<split>`` recursively, unlabelled;
            ``"stl10"`` torchvision layout ``root/stl10_binary``, splits train, test,
            unlabeled, train+unlabeled;
            ``"cifar10"``/``"cifar100"`` torchvision layout (``cifar-10-batches-py`` /
            ``cifar-100-python``), splits train, test;
            ``"fashion_mnist"`` idx .gz files, splits train, test; ``root=None`` means
            ``/usr/share/datasets/fashion-mnist`` (Debian's ``dataset-fashion-mnist``);
            ``"hf"`` a Hugging Face ``datasets`` dataset (``name``, see :mod:`mvmr.data.hf`).
        root: the dataset folder (kind hf: the dataset's name when ``name`` is not given).
        split: which part to read (see ``kind``).
        size: when set, each image is resized (shorter side) and centre-cropped to size x size.
        download: let torchvision download STL10/CIFAR/Fashion-MNIST when the files are missing
            (there is no download for the folder kinds).
        skip_corrupt: folder kinds only: replace unreadable images by the next readable one and
            count them (``dataset.num_skipped``) instead of raising a DataError naming the file.
        channels: convert images to 1 channel (luma) or 3 channels (gray repeated, for RGB
            encoders); None keeps them (RGB for files, 1 for Fashion-MNIST).
        labels_file: ``imagefolder`` only: the ground-truth file of a split folder that holds the
            images without class folders (ImageNet's ``val/``); by default a known file is looked
            for (see :func:`mvmr.data.folders.image_folder`).
        name: ``hf`` only: a Hub dataset id (``user/name``, read from the Hugging Face cache unless
            ``download``) or a folder written by ``save_to_disk``.
        image_column, label_column: ``hf`` only: the columns of the images and of the labels
            (None: unlabelled).

    Raises:
        DataError: unknown kind or split, missing, empty or corrupt data.
    """
    if kind not in DATASET_KINDS:
        raise DataError(f"unknown dataset kind {kind!r}; expected one of {', '.join(DATASET_KINDS)}")
    if size is not None and (isinstance(size, bool) or not isinstance(size, int) or size <= 0):
        raise DataError(f"size must be a positive int or None, got {size!r}")
    if channels not in (None, 1, 3):
        raise DataError(f"channels must be 1, 3 or None, got {channels!r}")
    if kind == "hf":
        name = name if name is not None else (None if root is None else str(root))
        if not name:
            raise DataError("dataset kind 'hf' needs a name: a Hub dataset id or a save_to_disk folder")
        return hf_dataset(
            name,
            split=split,
            image_column=image_column,
            label_column=label_column,
            size=size,
            channels=channels,
            download=download,
        )
    if name is not None:
        raise DataError(f"name applies to kind 'hf' only, not {kind!r}")
    if root is None:
        if kind != "fashion_mnist":
            raise DataError(f"dataset kind {kind!r} needs a root folder")
        root = FASHION_MNIST_ROOT
    root = Path(root).expanduser()
    if labels_file is not None and kind != "imagefolder":
        raise DataError(f"labels_file applies to kind 'imagefolder' only, not {kind!r}")
    if kind == "imagefolder":
        return image_folder(
            root, split=split, size=size, channels=channels, skip_corrupt=skip_corrupt, labels_file=labels_file
        )
    if kind == "folder":
        return flat_folder(root, split=split, size=size, channels=channels, skip_corrupt=skip_corrupt)
    if kind == "stl10":
        return stl10(root, split=split, size=size, channels=channels, download=download)
    if kind in ("cifar10", "cifar100"):
        return cifar(kind, root, split=split, size=size, channels=channels, download=download)
    return fashion_mnist(root, split=split, size=size, channels=channels, download=download)
