"""PASCAL VOC2007 multi-label linear classification (transfer, paper sec. 6.1.3, Table 3).

Reads the standard ``VOCdevkit`` layout::

    VOCdevkit/VOC2007/JPEGImages/<id>.jpg
    VOCdevkit/VOC2007/Annotations/<id>.xml
    VOCdevkit/VOC2007/ImageSets/Main/{trainval,test}.txt

An image with only "difficult" objects of a class is ignored for that class (target -1), as in the
devkit. A linear layer is trained on the frozen ``trainval`` features with masked binary cross-entropy,
its epoch chosen on a hold-out of ``trainval``, and scored once on ``test`` (mAP over the 20 classes).
"""

from __future__ import annotations

import os
import xml.etree.ElementTree as ET
from pathlib import Path

import numpy as np
import torch
from torch import nn
from torch.utils.data import Dataset

from mvmr.errors import DataError
from mvmr.evaluation.frozen import evaluate_frozen
from mvmr.evaluation.linear import LinearConfig, predict_scores
from mvmr.evaluation.metrics import mean_average_precision
from mvmr.evaluation.results import ProtocolResult

__all__ = ["VOC_CLASSES", "find_voc2007", "parse_annotation", "VOC2007Classification", "run_voc07"]

#: The 20 VOC classes, in the devkit's order (= label index).
VOC_CLASSES: tuple[str, ...] = (
    "aeroplane",
    "bicycle",
    "bird",
    "boat",
    "bottle",
    "bus",
    "car",
    "cat",
    "chair",
    "cow",
    "diningtable",
    "dog",
    "horse",
    "motorbike",
    "person",
    "pottedplant",
    "sheep",
    "sofa",
    "train",
    "tvmonitor",
)


def find_voc2007(root: str | os.PathLike[str]) -> Path:
    """The ``VOC2007`` folder under ``root`` (``root`` may be it, ``VOCdevkit``, or their parent)."""
    base = Path(root)
    for candidate in (base, base / "VOC2007", base / "VOCdevkit" / "VOC2007"):
        if (candidate / "Annotations").is_dir() and (candidate / "ImageSets" / "Main").is_dir():
            return candidate
    raise DataError(
        f"no VOC2007 tree under {base}: expected VOCdevkit/VOC2007/{{JPEGImages,Annotations,"
        "ImageSets/Main} (the layout of the official VOCtrainval/VOCtest tar files)"
    )


def parse_annotation(path: str | os.PathLike[str]) -> np.ndarray:
    """Targets (20,) int8 of one XML annotation: 1 present, -1 only difficult instances, 0 absent."""
    p = Path(path)
    try:
        root = ET.parse(p).getroot()
    except (OSError, ET.ParseError) as exc:
        raise DataError(f"cannot read VOC annotation {p}: {exc}") from exc
    target = np.zeros(len(VOC_CLASSES), dtype=np.int8)
    for obj in root.iter("object"):
        name = obj.findtext("name", default="").strip()
        if name not in VOC_CLASSES:
            raise DataError(f"{p}: unknown VOC class {name!r}")
        c = VOC_CLASSES.index(name)
        if obj.findtext("difficult", default="0").strip() != "1":
            target[c] = 1
        elif target[c] == 0:
            target[c] = -1
    return target


class VOC2007Classification(Dataset):
    """VOC2007 images with multi-label targets: items ``(image, target)``, image float (3, size, size) in
    [0, 1] (resized, centre-cropped), target (20,) of 1 / 0 / -1. ``labels`` holds the (N, 20) targets."""

    def __init__(self, root: str | os.PathLike[str], *, split: str = "trainval", size: int = 224) -> None:
        self.voc = find_voc2007(root)
        ids_file = self.voc / "ImageSets" / "Main" / f"{split}.txt"
        if not ids_file.is_file():
            raise DataError(f"VOC2007 split file not found: {ids_file}")
        self.ids = [line.split()[0] for line in ids_file.read_text().splitlines() if line.strip()]
        if not self.ids:
            raise DataError(f"{ids_file} lists no images")
        self.classes = list(VOC_CLASSES)
        self.size = int(size)
        self.paths = [self.voc / "JPEGImages" / f"{i}.jpg" for i in self.ids]
        missing = [str(p) for p in self.paths if not p.is_file()]
        if missing:
            raise DataError(f"{len(missing)} images of {ids_file} are missing, e.g. {missing[0]}")
        self.labels = np.stack([parse_annotation(self.voc / "Annotations" / f"{i}.xml") for i in self.ids])

    def __len__(self) -> int:
        return len(self.ids)

    def __getitem__(self, index: int) -> tuple[torch.Tensor, torch.Tensor]:
        from mvmr.data.image_utils import decode_image, resize_center_crop, to_float

        path = self.paths[index]
        try:
            image = decode_image(path, channels=3)
        except OSError as exc:
            raise DataError(f"cannot read image {path}: {exc}") from exc
        return to_float(resize_center_crop(image, self.size)), torch.from_numpy(self.labels[index].astype(np.int64))


def run_voc07(
    extractor: nn.Module,
    root: str | os.PathLike[str],
    *,
    config: LinearConfig | None = None,
    size: int = 224,
    train_split: str = "trainval",
    test_split: str = "test",
    encoder: str = "",
    interpolation: str = "none",
) -> ProtocolResult:
    """Linear multi-label classification on VOC2007: train on ``trainval``, mAP on ``test`` (once).

    ``interpolation`` of the test AP: ``"none"`` (= scikit-learn) or ``"11point"`` (the VOC2007 devkit's).
    """
    config = config or LinearConfig()
    trainval = VOC2007Classification(root, split=train_split, size=size)
    test = VOC2007Classification(root, split=test_split, size=size)
    evaluation = evaluate_frozen(extractor, trainval, test, linear=config)
    test_x, test_y = evaluation.test_features
    scores = predict_scores(evaluation.selected.classifier, test_x)
    test_map, per_class = mean_average_precision(scores, test_y, interpolation=interpolation)
    per_class_ap = {c: (None if a != a else 100.0 * a) for c, a in zip(VOC_CLASSES, per_class, strict=True)}
    return ProtocolResult(
        protocol="voc07",
        metrics={**evaluation.linear.metrics, "test_map": test_map},
        encoder=encoder,
        dataset=f"voc2007:{trainval.voc}",
        config={**config.summary(), "image_size": size, "ap": interpolation},
        details={"per_class_ap": per_class_ap, "history": evaluation.selected.history},
    )
