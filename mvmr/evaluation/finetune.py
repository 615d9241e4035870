"""Semi-supervised evaluation: fine-tune encoder + linear head on 1% or 10% of the labels (paper sec. 6.1).

Defaults follow the paper: cross-entropy, Adam, lr 1e-4, batch 128, 100 epochs, labelled images
augmented with a random resized crop and a horizontal flip. The labelled subset is drawn
class-balanced with a seed or read from a file in the ImageNet 1%/10% subset format, and saved in
that format next to the results. Model selection costs no labels beyond the budget: the last epoch
(the paper's fixed schedule) by default, or with ``val_fraction > 0`` the best epoch on that
fraction of the labelled subset itself. The test set is scored once, with the chosen weights.
"""

from __future__ import annotations

import copy
import math
import os
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.data import DataLoader, Dataset

from mvmr.data.loaders import DatasetSubset
from mvmr.errors import ConfigError, DataError
from mvmr.evaluation.dataset_info import check_same_classes, dataset_labels, dataset_paths
from mvmr.evaluation.extraction import (
    AugmentedDataset,
    ExtractionSettings,
    RandomCropFlip,
    collate_labelled,
    extract_features,
    resolve_device,
)
from mvmr.evaluation.linear import check_training
from mvmr.evaluation.metrics import classification_metrics
from mvmr.evaluation.results import ProtocolResult
from mvmr.evaluation.subsets import (
    balanced_subset,
    match_subset,
    read_subset_file,
    stratified_split,
    subset_entries,
    write_subset_file,
)

__all__ = ["FinetuneConfig", "choose_labelled_subset", "run_finetune", "fraction_variant"]


@dataclass
class FinetuneConfig(ExtractionSettings):
    """Settings of semi-supervised fine-tuning (paper defaults, checked when built); the validation and
    test logits are computed as :class:`~mvmr.evaluation.extraction.ExtractionSettings` says."""

    fraction: float | None = 0.01
    subset_file: str | None = None
    epochs: int = 100
    lr: float = 1e-4
    batch_size: int = 128
    weight_decay: float = 0.0
    val_fraction: float = 0.0  # of the labelled subset; 0: the paper's fixed schedule (last epoch)
    seed: int = 0
    augment: bool = True
    crop_scale: tuple[float, float] = (0.08, 1.0)

    def __post_init__(self) -> None:
        if self.subset_file is None and self.fraction is None:
            raise ConfigError("give a label fraction (e.g. 0.01 or 0.1) or a subset file")
        if self.subset_file is not None and self.fraction is not None:
            raise ConfigError("give either a label fraction or a subset file, not both")
        if self.fraction is not None and not 0.0 < self.fraction <= 1.0:
            raise ConfigError(f"fraction must be in (0, 1], got {self.fraction}")
        check_training(self)
        lo, hi = self.crop_scale
        if not 0.0 < lo <= hi <= 1.0:
            raise ConfigError(f"crop_scale must satisfy 0 < min <= max <= 1, got {self.crop_scale}")

    def summary(self) -> dict[str, Any]:
        keep = (
            "fraction",
            "subset_file",
            "epochs",
            "lr",
            "batch_size",
            "weight_decay",
            "val_fraction",
            "seed",
            "augment",
        )
        return {k: v for k, v in asdict(self).items() if k in keep}


def fraction_variant(fraction: float | None, subset_file: str | None = None) -> str:
    """Result variant name: ``1pct``, ``10pct``, ``0.5pct`` or ``subset-<file stem>``."""
    if subset_file is not None:
        return "subset-" + Path(subset_file).stem
    assert fraction is not None
    pct = 100.0 * fraction
    return (f"{pct:.0f}" if abs(pct - round(pct)) < 1e-9 else f"{pct:g}") + "pct"


def choose_labelled_subset(train_dataset: Dataset, config: FinetuneConfig) -> tuple[np.ndarray, np.ndarray]:
    """The labelled subset (``config.subset_file``, or drawn class-balanced with ``config.fraction``), split into
    ``(train_indices, val_indices)``: disjoint, together exactly the label budget (``val_fraction`` stratified)."""
    labels = dataset_labels(train_dataset)
    if labels.ndim != 1:
        raise DataError("fine-tuning needs single-label data (one class per image)")
    if config.subset_file is not None:
        paths = dataset_paths(train_dataset)
        if paths is None:
            raise DataError("this dataset has no image files, so a subset file cannot be matched; use --fraction")
        labelled = match_subset(read_subset_file(config.subset_file), paths, source=f"subset file {config.subset_file}")
    else:
        labelled = balanced_subset(labels, float(config.fraction), seed=config.seed)  # type: ignore[arg-type]
    labelled = np.sort(labelled)
    train, val = stratified_split(labels[labelled], config.val_fraction, seed=config.seed + 1)
    return labelled[train], labelled[val]


def run_finetune(
    extractor: nn.Module,
    train_dataset: Dataset,
    test_dataset: Dataset,
    *,
    config: FinetuneConfig | None = None,
    out_dir: str | os.PathLike[str] | None = None,
    encoder: str = "",
    dataset: str = "",
    image_size: int | None = None,
) -> ProtocolResult:
    """Fine-tune a copy of ``extractor`` plus a linear head on a labelled subset; score the test set once.

    The subset is saved to ``out_dir/subsets/finetune-<variant>-seed<seed>.txt`` when the dataset has
    files. ``image_size`` is the crop size of the augmentation (default: each image's own size).
    """
    config = config or FinetuneConfig()
    if not getattr(extractor, "trainable", True) or not any(True for _ in extractor.parameters()):
        what = getattr(extractor, "description", "this extractor")
        raise ConfigError(f"fine-tuning needs a trainable encoder; {what} has no trainable weights")
    classes = check_same_classes(train_dataset, test_dataset)
    trained, val = choose_labelled_subset(train_dataset, config)
    labelled = np.sort(np.concatenate([trained, val]))  # every label used: the saved subset
    variant = fraction_variant(config.fraction, config.subset_file)
    artifacts: dict[str, str] = {}
    paths = dataset_paths(train_dataset)
    if out_dir is not None and paths is not None:
        saved = write_subset_file(
            Path(out_dir) / "subsets" / f"finetune-{variant}-seed{config.seed}.txt",
            subset_entries([paths[i] for i in labelled], paths),
        )
        artifacts["subset"] = str(saved)

    dev = resolve_device(config.device)
    labelled_ds: Dataset = DatasetSubset(train_dataset, trained)
    if config.augment:
        labelled_ds = AugmentedDataset(labelled_ds, RandomCropFlip(image_size, scale=config.crop_scale))

    model_extractor = copy.deepcopy(extractor).requires_grad_(True)
    feature_dim = getattr(model_extractor, "feature_dim", None)
    if not feature_dim:
        with torch.no_grad():
            model_extractor.eval()
            feature_dim = int(model_extractor(train_dataset[int(trained[0])][0].unsqueeze(0)).shape[1])
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(config.seed)
        model = nn.Sequential(model_extractor, nn.Linear(int(feature_dim), len(classes)))  # images -> logits
    model.to(dev)
    optimizer = torch.optim.Adam(model.parameters(), lr=config.lr, weight_decay=config.weight_decay)
    generator = torch.Generator().manual_seed(config.seed)
    n = len(trained)
    # a last batch of one image would break batch norm's training statistics
    has_batchnorm = any(isinstance(m, nn.modules.batchnorm._BatchNorm) for m in model.modules())
    loader = DataLoader(
        labelled_ds,
        batch_size=config.batch_size,
        shuffle=True,
        generator=generator,
        num_workers=config.num_workers,
        collate_fn=collate_labelled,
        pin_memory=dev.type == "cuda",
        drop_last=has_batchnorm and n % config.batch_size == 1 and n > 1,
    )
    val_ds = DatasetSubset(train_dataset, val) if val.size else None
    best_epoch, best_state = config.epochs, None
    best_val: dict[str, float] = {}
    history: list[dict[str, float]] = []
    torch.manual_seed(config.seed)
    for epoch in range(1, config.epochs + 1):
        model.train()
        total, seen = 0.0, 0
        for images, targets in loader:
            images, targets = images.to(dev, non_blocking=True), targets.to(dev, non_blocking=True)
            loss = F.cross_entropy(model(images), targets)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            total += float(loss.detach()) * targets.numel()
            seen += targets.numel()
        record: dict[str, float] = {"epoch": epoch, "train_loss": total / max(seen, 1)}
        if val_ds is not None:
            logits, val_labels = extract_features(model, val_ds, desc=f"val (epoch {epoch})", **config.extraction())
            metrics = classification_metrics(logits, val_labels, prefix="val_")
            record.update(metrics)
            if metrics["val_top1"] > best_val.get("val_top1", -math.inf):
                best_epoch, best_val = epoch, metrics
                best_state = {k: v.detach().to("cpu", copy=True) for k, v in model.state_dict().items()}
        history.append(record)
    if best_state is not None:
        model.load_state_dict(best_state)
    test_logits, test_labels = extract_features(model, test_dataset, desc="test", **config.extraction())
    metrics = {**classification_metrics(test_logits, test_labels, prefix="test_"), **best_val}
    metrics.update(
        chosen_epoch=best_epoch,
        epochs=config.epochs,
        num_labels_used=len(labelled),
        num_labelled=len(labelled),
        num_trained=int(n),
        num_val=int(val.size),
        num_test=len(test_dataset),  # type: ignore[arg-type]
        num_classes=len(classes),
    )
    details = {
        "labelled_indices": labelled.tolist(),
        "val_indices_count": int(val.size),
        "history": history,
        "classes": classes,
    }
    return ProtocolResult(
        protocol="finetune",
        variant=variant,
        metrics=metrics,
        encoder=encoder,
        dataset=dataset,
        config=config.summary(),
        artifacts=artifacts,
        details=details,
    )
