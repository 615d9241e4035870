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
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from mvmr.data.base import ImageDataset, hash_parts
from mvmr.data.image_utils import IMAGE_EXTENSIONS, decode_image, is_image_file
from mvmr.errors import DataError

__all__ = ["FileImageDataset", "GROUND_TRUTH_FILES", "flat_folder", "image_folder", "list_images", "read_ground_truth"]

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


def _class_folders(folder: Path) -> list[str]:
    """The sorted names of the visible sub-folders of ``folder``."""
    return sorted(d.name for d in folder.iterdir() if d.is_dir() and not d.name.startswith("."))


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
            return decode_image(path, channels=self.channels or 3)
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
        """Every file's relative path, size, modification time (ns) and label, stat'ed by a pool of threads
        (a network filesystem answers many requests at once)."""

        def stat(relative: bytes) -> tuple[int, int]:
            try:
                st = (self.root / os.fsdecode(relative)).stat()
            except OSError:
                return -1, -1
            return st.st_size, st.st_mtime_ns

        with ThreadPoolExecutor(max_workers=16) as pool:
            stats = list(pool.map(stat, self._relative, chunksize=1024))
        parts: list[bytes | str] = ["classes=" + "\n".join(self.classes)]
        for relative, label, (nbytes, mtime) in zip(self._relative, self.labels.tolist(), stats, strict=True):
            parts.append(relative + f"\t{nbytes}\t{mtime}\t{label}".encode())
        return hash_parts(parts)


#: Ground-truth files looked for beside (or inside) a flat split folder, in this order
#: (``{split}`` is the split's name): Kaggle's ImageNet solution CSV, then plain text files.
GROUND_TRUTH_FILES = (
    "LOC_{split}_solution.csv",
    "{split}_labels.txt",
    "{split}_labels.csv",
    "{split}.txt",
    "imagenet_2012_validation_synset_labels.txt",
)


def image_folder(
    root: Path,
    *,
    split: str,
    size: int | None = None,
    channels: int | None = None,
    skip_corrupt: bool = False,
    labels_file: str | Path | None = None,
) -> FileImageDataset:
    """An ImageNet-style dataset: ``root/<split>/<class>/**/<image>`` (split "" means root itself).

    Classes are the sorted sub-folder names of the split folder, all of them (an empty class
    folder keeps its index, so train and val agree on label numbers when both have the same folders).

    A split folder that holds the images themselves, like ImageNet's ``val/`` as distributed, is
    read with a ground-truth file: ``labels_file``, or the first of :data:`GROUND_TRUTH_FILES`
    found in ``root`` or in the split folder (see :func:`read_ground_truth`). Its classes are then
    the class folders of ``root/train`` (so the labels agree with the training split), or the
    labels the file names.
    """
    folder = Path(root) / split if split else Path(root)
    if not folder.is_dir():
        raise DataError(
            f"image folder not found: {folder}. Expected the ImageNet-style layout "
            f"{Path(root)}/{split + '/' if split else ''}<class>/<image>.jpg; create it, or point root/split at it."
        )
    classes = _class_folders(folder)
    if not classes:
        loose = [p for p in folder.iterdir() if is_image_file(p)]
        if loose:
            return _flat_labelled_folder(
                Path(root),
                folder,
                split,
                size=size,
                channels=channels,
                skip_corrupt=skip_corrupt,
                labels_file=labels_file,
            )
        raise DataError(f"no class folders in {folder}: expected {folder}/<class>/<image>.jpg")
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


def read_ground_truth(path: Path, images: list[Path]) -> list[str]:
    """The class name of every image in ``images`` (sorted), from a ground-truth file.

    Accepted layouts (``#`` comments and blank lines ignored):

    - Kaggle's ``LOC_val_solution.csv``: a header, then ``ImageId,PredictionString`` where the
      first token of the prediction string is the class (synset);
    - two columns, ``<image> <class>`` (space, tab or comma separated; the image by file name,
      with or without its extension);
    - one class per line, in the order of the sorted image files (e.g. TensorFlow's
      ``imagenet_2012_validation_synset_labels.txt``).
    """
    try:
        lines = [ln.strip() for ln in path.read_text(encoding="utf-8").splitlines()]
    except (OSError, UnicodeDecodeError) as err:
        raise DataError(f"cannot read the ground-truth file {path}: {err}") from err
    rows = [ln for ln in lines if ln and not ln.startswith("#")]
    if rows and rows[0].replace(" ", "").lower().startswith("imageid,predictionstring"):
        rows = rows[1:]
    split_rows = [ln.replace(",", " ").split() for ln in rows]
    if split_rows and all(len(r) == 1 for r in split_rows):
        if len(split_rows) != len(images):
            raise DataError(
                f"{path} gives {len(split_rows)} labels, one per line, but {path.parent} has "
                f"{len(images)} images; the file must list one class per image, in sorted file order"
            )
        return [r[0] for r in split_rows]
    by_name: dict[str, str] = {}
    for number, r in enumerate(split_rows, 1):
        if len(r) < 2:
            raise DataError(f"{path}, line {number}: expected '<image> <class>', got {' '.join(r)!r}")
        by_name[Path(r[0]).stem] = r[1]
    missing = [p.name for p in images if p.stem not in by_name]
    if missing:
        raise DataError(f"{path} has no label for {len(missing)} of the {len(images)} images, e.g. {missing[0]}")
    return [by_name[p.stem] for p in images]


def _flat_labelled_folder(
    root: Path,
    folder: Path,
    split: str,
    *,
    size: int | None,
    channels: int | None,
    skip_corrupt: bool,
    labels_file: str | Path | None,
) -> FileImageDataset:
    """A folder of images (no class folders) labelled by a ground-truth file."""
    if labels_file is not None:
        truth = Path(labels_file).expanduser()
        if not truth.is_file():
            raise DataError(f"ground-truth file not found: {truth}")
    else:
        candidates = [
            where / name.format(split=split or folder.name) for name in GROUND_TRUTH_FILES for where in (root, folder)
        ]
        found = [c for c in candidates if c.is_file()]
        if not found:
            raise DataError(
                f"no class folders in {folder}, and no ground-truth file for its images: expected "
                f"{folder}/<class>/<image>.jpg, or one of {', '.join(sorted({c.name for c in candidates}))} in {root} "
                f"(e.g. ImageNet's LOC_val_solution.csv), or data.labels_file. For unlabelled images use kind='folder'."
            )
        truth = found[0]
    images = list_images(folder)
    names = read_ground_truth(truth, images)
    train = root / "train"
    classes = (_class_folders(train) if train.is_dir() and train != folder else []) or sorted(set(names))
    index = {name: i for i, name in enumerate(classes)}
    unknown = sorted(set(names) - set(index))
    if unknown:
        raise DataError(f"{truth} names {len(unknown)} classes that {train} has no folder for, e.g. {unknown[0]!r}")
    return FileImageDataset(
        images,
        [index[n] for n in names],
        classes=classes,
        root=folder,
        size=size,
        channels=channels,
        skip_corrupt=skip_corrupt,
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
    paths = list_images(folder)  # FileImageDataset refuses an empty list
    return FileImageDataset(
        paths, [-1] * len(paths), classes=[], root=folder, size=size, channels=channels, skip_corrupt=skip_corrupt
    )
