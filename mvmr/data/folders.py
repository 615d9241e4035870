"""Datasets of image files on disk: ImageNet-style class folders, or one flat (recursive) folder.

Corrupt files are found lazily, when ``__getitem__`` decodes them, so that building a dataset
of a million images costs one directory walk and no decoding. With ``skip_corrupt=False``
(the default) an unreadable image raises :class:`~mvmr.errors.DataError` naming its path.
With ``skip_corrupt=True`` the item is replaced by the next readable one (wrapping around),
the bad path is remembered and :attr:`FileImageDataset.num_skipped` counts it. The count is
per process: each DataLoader worker counts the bad files it met.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from mvmr.data.base import ImageDataset, hash_parts
from mvmr.data.image_utils import IMAGE_EXTENSIONS, decode_image, is_image_file
from mvmr.errors import DataError

__all__ = ["FileImageDataset", "image_folder", "flat_folder", "list_images"]

# What a broken or truncated file makes PIL raise.
_DECODE_ERRORS = (OSError, ValueError, SyntaxError, EOFError, Image.DecompressionBombError)


def list_images(folder: Path) -> list[Path]:
    """All image files under ``folder`` (recursive, symlinks followed, hidden entries skipped), sorted."""
    found: list[Path] = []
    for dirpath, dirnames, filenames in os.walk(folder, followlinks=True):
        dirnames[:] = sorted(d for d in dirnames if not d.startswith("."))
        base = Path(dirpath)
        found.extend(base / name for name in sorted(filenames) if is_image_file(base / name))
    return found


class FileImageDataset(ImageDataset):
    """Images read from files, with labels given alongside (-1 when unlabelled).

    Args:
        paths: the image files, in item order.
        labels: one int per path (-1 for unlabelled).
        classes: class names (index = label), empty when unlabelled.
        root: the folder the paths live under (the fingerprint uses paths relative to it).
        size: optional resize (shorter side) + centre crop to size x size.
        channels: 1 decodes to grayscale, 3 or None to RGB.
        skip_corrupt: replace unreadable images by the next readable one instead of raising.
    """

    def __init__(
        self,
        paths: list[Path],
        labels: list[int] | np.ndarray,
        *,
        classes: list[str],
        root: Path,
        size: int | None = None,
        channels: int | None = None,
        skip_corrupt: bool = False,
    ) -> None:
        super().__init__(classes=classes, labels=np.asarray(labels, dtype=np.int64), size=size, channels=channels)
        if len(paths) != len(self.labels):
            raise DataError(f"{len(paths)} paths but {len(self.labels)} labels under {root}")
        if not paths:
            raise DataError(f"no images found under {root} (extensions: {', '.join(IMAGE_EXTENSIONS)})")
        self.root = Path(root)
        # Relative paths as one fixed-width bytes array, not a list of Path objects: DataLoader
        # workers then share the pages instead of copying them as refcounts change.
        try:
            self._relative = np.array([os.fsencode(Path(p).relative_to(self.root)) for p in paths], dtype=np.bytes_)
        except ValueError as exc:
            raise DataError(f"image paths must lie under the dataset root {root}: {exc}") from exc
        self.skip_corrupt = skip_corrupt
        self.skipped: set[Path] = set()
        self._bad: set[int] = set()

    def path(self, index: int) -> Path:
        """The file of item ``index``."""
        return self.root / os.fsdecode(self._relative[index])

    @property
    def paths(self) -> list[Path]:
        """Every item's file, in item order (built on each call)."""
        return [self.root / os.fsdecode(r) for r in self._relative]

    @property
    def num_skipped(self) -> int:
        """How many distinct unreadable images this process has skipped so far."""
        return len(self._bad)

    def _decode(self, index: int) -> torch.Tensor:
        path = self.path(index)
        try:
            return decode_image(path, channels=self.channels or 3, draft_size=self.size)
        except _DECODE_ERRORS as exc:
            raise DataError(f"cannot read image {path}: {exc}") from exc

    def _load(self, index: int) -> tuple[torch.Tensor, int]:
        if not self.skip_corrupt:
            return self._decode(index), int(self.labels[index])
        n = len(self)
        for step in range(n):
            i = (index + step) % n
            if i in self._bad:
                continue
            try:
                return self._decode(i), int(self.labels[i])
            except DataError:
                self._bad.add(i)
                self.skipped.add(self.path(i))
        raise DataError(f"none of the {n} images under {self.root} can be read")

    def _content_fingerprint(self) -> str:
        parts: list[str] = ["classes=" + "\n".join(self.classes)]
        for relative, label in zip(self._relative, self.labels.tolist()):
            try:
                nbytes = (self.root / os.fsdecode(relative)).stat().st_size
            except OSError:
                nbytes = -1
            parts.append(relative + f"\t{nbytes}\t{label}".encode())
        return hash_parts(parts)


def image_folder(
    root: Path,
    *,
    split: str,
    size: int | None = None,
    channels: int | None = None,
    skip_corrupt: bool = False,
) -> FileImageDataset:
    """An ImageNet-style dataset: ``root/<split>/<class>/**/<image>`` (split "" means root itself).

    Classes are the sorted sub-folder names of the split folder, all of them (an empty class
    folder keeps its index, so train and val agree on label numbers when both have the same folders).
    """
    folder = Path(root) / split if split else Path(root)
    if not folder.is_dir():
        raise DataError(
            f"image folder not found: {folder}. Expected the ImageNet-style layout "
            f"{Path(root)}/{split + '/' if split else ''}<class>/<image>.jpg; create it, or point root/split at it."
        )
    classes = sorted(d.name for d in folder.iterdir() if d.is_dir() and not d.name.startswith("."))
    if not classes:
        loose = any(is_image_file(p) for p in folder.iterdir())
        hint = " It holds images directly: use kind='folder' for unlabelled images." if loose else ""
        raise DataError(f"no class folders in {folder}: expected {folder}/<class>/<image>.jpg.{hint}")
    paths: list[Path] = []
    labels: list[int] = []
    for label, name in enumerate(classes):
        found = list_images(folder / name)
        paths.extend(found)
        labels.extend([label] * len(found))
    if not paths:
        raise DataError(f"no images found in the {len(classes)} class folders of {folder}")
    return FileImageDataset(
        paths, labels, classes=classes, root=folder, size=size, channels=channels, skip_corrupt=skip_corrupt
    )


def flat_folder(
    root: Path,
    *,
    split: str = "",
    size: int | None = None,
    channels: int | None = None,
    skip_corrupt: bool = False,
) -> FileImageDataset:
    """Every image under ``root/<split>`` (recursive), unlabelled (label -1, no classes)."""
    folder = Path(root) / split if split else Path(root)
    if not folder.is_dir():
        raise DataError(f"image folder not found: {folder}. Create it and put the (unlabelled) images in it.")
    paths = list_images(folder)
    if not paths:
        raise DataError(f"no images found under {folder} (extensions: {', '.join(IMAGE_EXTENSIONS)})")
    return FileImageDataset(
        paths, [-1] * len(paths), classes=[], root=folder, size=size, channels=channels, skip_corrupt=skip_corrupt
    )
