"""Tiny models and configs for the training tests (also imported by the DDP test's subprocess)."""

from __future__ import annotations

import csv
from collections.abc import Sequence
from pathlib import Path

import lightning as L
import torch
from torch import nn

from mvmr.config import Config, load_config

FEATURE_DIM = 16
#: deterministic, cheap representations (augmented_pixels is random; scatnet is slow)
DETERMINISTIC_REPS = "[{name: pixels}, {name: hog, kwargs: {cell: 4}}, {name: local_std}]"
CHEAP_REPS = "[{name: pixels}, {name: hog, kwargs: {cell: 4}}, {name: local_std}, {name: augmented_pixels}]"


def run_metrics(run_dir: Path) -> list[dict[str, str]]:
    """Every row of a run's CSV logs (all versions, oldest first)."""
    rows = []
    for path in sorted(run_dir.glob("csv/version_*/metrics.csv")):
        with path.open(newline="") as f:
            rows.extend(csv.DictReader(f))
    return rows


class CrashAt(L.Callback):
    """A crash (``RuntimeError("simulated crash")``) as optimiser step ``at`` is about to start."""

    def __init__(self, at: int) -> None:
        self.at = at

    def on_train_batch_start(
        self, trainer: L.Trainer, pl_module: L.LightningModule, batch: object, batch_idx: int
    ) -> None:
        if trainer.global_step == self.at:
            raise RuntimeError("simulated crash")


def tiny_model(seed: int = 0, *, projector_bn: bool = True) -> nn.Module:
    """A two-conv GroupNorm encoder (16 features) + projector, as an MVMRModel.

    GroupNorm, not BatchNorm, in the encoder: its output does not depend on the other images of
    the batch, so a batch split over processes gives the same result as one process (PyTorch's
    SyncBatchNorm, which would make BatchNorm agree, runs on GPUs only). ``projector_bn=False``
    gives a projector without BatchNorm for the same reason.
    """
    from mvmr.models import IMAGENET_MEAN, IMAGENET_STD, MVMRModel, Projector

    torch.manual_seed(seed)
    encoder = nn.Sequential(
        nn.Conv2d(3, 8, 3, stride=2, padding=1),
        nn.GroupNorm(4, 8),
        nn.ReLU(),
        nn.Conv2d(8, FEATURE_DIM, 3, stride=2, padding=1),
        nn.GroupNorm(4, FEATURE_DIM),
        nn.ReLU(),
        nn.AdaptiveAvgPool2d(1),
        nn.Flatten(),
    )
    if projector_bn:
        projector: nn.Module = Projector("32-32", FEATURE_DIM)
    else:
        projector = nn.Sequential(nn.Linear(FEATURE_DIM, 32), nn.ReLU(), nn.Linear(32, 32))
    return MVMRModel(encoder, projector, mean=IMAGENET_MEAN, std=IMAGENET_STD)


def tiny_config(root: Path, out: Path, overrides: Sequence[str] = ()) -> Config:
    """CIFAR-10 JPEGs at 16 px, 40 images, batch 8, two epochs on the CPU."""
    base = [
        "data.kind=imagefolder",
        f"data.root={root}",
        "data.split=test",
        "data.image_size=16",
        "data.subset=40",
        "data.batch_size=8",
        "data.num_workers=0",
        "data.val_fraction=0.2",
        f"representations.items={CHEAP_REPS}",
        "model.encoder=resnet18",
        "model.projector=32-32",
        "trainer.accelerator=cpu",
        "trainer.devices=1",
        "trainer.max_epochs=2",
        "trainer.log_every_n_steps=1",
        "trainer.progress_bar=false",
        "optim.lr=1e-3",
        f"output_dir={out}",
    ]
    return load_config(None, [*base, *overrides])


def save_hf_images(images_root: Path, out: Path, per_class: int = 4) -> Path:
    """Save real JPEGs of an ImageFolder split (``per_class`` of each class) with ``datasets``' save_to_disk:
    a DatasetDict with a ``train`` split of columns ``picture`` (images) and ``category`` (ClassLabel)."""
    from datasets import ClassLabel, Dataset, DatasetDict, Features, Image

    classes = sorted(p.name for p in images_root.iterdir() if p.is_dir())
    paths, labels = [], []
    for label, name in enumerate(classes):
        for path in sorted((images_root / name).glob("*.jpg"))[:per_class]:
            paths.append(str(path))
            labels.append(label)
    features = Features({"picture": Image(), "category": ClassLabel(names=classes)})
    table = Dataset.from_dict({"picture": paths, "category": labels}, features=features)  # embeds the JPEG bytes
    DatasetDict({"train": table}).save_to_disk(str(out))
    return out
