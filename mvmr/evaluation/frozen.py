"""A frozen encoder on a labelled train/test pair: linear probe and k-NN on its features.

:func:`evaluate_frozen` is the one entry point for "how good are these frozen features": the training
features are extracted once; ``val_fraction`` of them is held out (stratified and seeded; unstratified
for multi-label data) to choose the linear classifier's epoch; only then are the test images read,
once, and scored by the chosen classifier and, when asked for, weighted k-NN over every training image.
:func:`run_linear` is the linear probe alone, also on augmented views re-extracted every epoch.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from torch import nn
from torch.utils.data import Dataset

from mvmr.data.loaders import DatasetSubset
from mvmr.errors import ConfigError
from mvmr.evaluation.dataset_info import check_same_classes, dataset_labels
from mvmr.evaluation.extraction import AugmentedDataset, RandomCropFlip, extract_features
from mvmr.evaluation.knn import KNNConfig, knn_result
from mvmr.evaluation.linear import LinearConfig, SelectedClassifier, evaluate_classifier, fit_with_selection
from mvmr.evaluation.results import ProtocolResult
from mvmr.evaluation.subsets import random_split, stratified_split

__all__ = ["FrozenEvaluation", "evaluate_frozen", "run_linear"]


@dataclass
class FrozenEvaluation:
    """What :func:`evaluate_frozen` measured: the ``linear`` and ``knn`` results (``knn`` None when
    not asked for), the ``selected`` classifier, and the ``test_features`` with their labels."""

    linear: ProtocolResult
    knn: ProtocolResult | None
    selected: SelectedClassifier
    test_features: tuple[torch.Tensor, torch.Tensor]

    @property
    def results(self) -> list[ProtocolResult]:
        """The protocol results, to save with :func:`~mvmr.evaluation.results.save_result`."""
        return [self.linear] + ([self.knn] if self.knn is not None else [])

    def summary(self) -> dict[str, Any]:
        """The headline numbers in one flat dict: ``linear_top1``, ``linear_top5``, ``knn_top1`` (NaN
        when not measured), ``val_top1`` (the linear probe on the hold-out of the training images that
        chose its epoch: validation data, for choosing settings; NaN without a hold-out),
        ``chosen_epoch``, ``num_train``, ``num_val``, ``num_test``, ``feature_dim``."""
        lin = self.linear.metrics
        return {
            "linear_top1": float(lin["test_top1"]),
            "linear_top5": float(lin.get("test_top5", float("nan"))),
            "val_top1": float(lin.get("val_top1", float("nan"))),
            "knn_top1": float(self.knn.metrics["test_top1"]) if self.knn is not None else float("nan"),
            "chosen_epoch": int(lin["chosen_epoch"]),
            **{key: int(lin[key]) for key in ("num_train", "num_val", "num_test", "feature_dim")},
        }


def _holdout(
    train_dataset: Dataset, test_dataset: Dataset, config: LinearConfig
) -> tuple[list[str], np.ndarray, tuple[np.ndarray, np.ndarray]]:
    """The classes (the same in both datasets), the training labels and the ``(train, val)`` indices of
    the training set: a stratified hold-out, or an unstratified one for multi-label data."""
    classes = check_same_classes(train_dataset, test_dataset)
    labels = dataset_labels(train_dataset)
    if labels.ndim == 2:
        return classes, labels, random_split(len(labels), config.val_fraction, seed=config.seed)
    return classes, labels, stratified_split(labels, config.val_fraction, seed=config.seed)


def _linear_result(
    selected: SelectedClassifier,
    test: tuple[torch.Tensor, torch.Tensor],
    *,
    config: LinearConfig,
    classes: list[str],
    split: tuple[np.ndarray, np.ndarray],
    encoder: str,
    dataset: str,
) -> ProtocolResult:
    """Score the chosen classifier on the test features (once) and record how it was chosen."""
    metrics = evaluate_classifier(selected.classifier, *test, multilabel=test[1].ndim == 2, prefix="test_")
    metrics.update(
        selected.val_metrics,
        chosen_epoch=selected.chosen_epoch,
        epochs=config.epochs,
        num_train=len(split[0]),
        num_val=len(split[1]),
        num_test=int(test[0].shape[0]),
        num_classes=len(classes),
        feature_dim=int(test[0].shape[1]),
    )
    return ProtocolResult(
        "linear",
        metrics,
        encoder=encoder,
        dataset=dataset,
        variant="augment" if config.augment else "",
        config=config.summary(),
        details={"history": selected.history, "classes": classes},
    )


def evaluate_frozen(
    extractor: nn.Module,
    train_dataset: Dataset,
    test_dataset: Dataset,
    *,
    linear: LinearConfig,
    knn: KNNConfig | None = None,
    encoder: str = "",
    dataset: str = "",
) -> FrozenEvaluation:
    """Linear probe, and weighted k-NN when ``knn`` is given, of ``extractor`` (see the module doc).

    The features are extracted as ``linear`` says. ``linear.augment`` and k-NN on multi-label data are
    a ConfigError; datasets with different classes or unlabelled items a DataError.
    """
    if linear.augment:
        raise ConfigError("augmented views are re-extracted every epoch: use run_linear, not evaluate_frozen")
    classes, labels, split = _holdout(train_dataset, test_dataset, linear)
    if knn is not None and labels.ndim == 2:
        raise ConfigError("k-NN needs single-label data (one class per image)")
    train_idx, val_idx = split
    x, y = extract_features(extractor, train_dataset, desc="train features", **linear.extraction())
    val = (x[val_idx], y[val_idx]) if len(val_idx) else None
    # The epoch is chosen before a single test image is read.
    selected = fit_with_selection(
        (x[train_idx], y[train_idx]), val, num_classes=len(classes), config=linear, multilabel=labels.ndim == 2
    )
    test = extract_features(extractor, test_dataset, desc="test features", **linear.extraction())
    about: dict[str, Any] = {"classes": classes, "encoder": encoder, "dataset": dataset}  # recorded in both results
    return FrozenEvaluation(
        linear=_linear_result(selected, test, config=linear, split=split, **about),
        knn=None if knn is None else knn_result((x, y), test, config=knn, **about),
        selected=selected,
        test_features=test,
    )


def run_linear(
    extractor: nn.Module,
    train_dataset: Dataset,
    test_dataset: Dataset,
    *,
    config: LinearConfig | None = None,
    encoder: str = "",
    dataset: str = "",
    image_size: int | None = None,
) -> ProtocolResult:
    """The linear probe of ``extractor``: :func:`evaluate_frozen` without k-NN, or with ``config.augment``
    on augmented views of the training images (crops of ``image_size``, default each image's own)."""
    config = config or LinearConfig()
    if not config.augment:
        return evaluate_frozen(
            extractor, train_dataset, test_dataset, linear=config, encoder=encoder, dataset=dataset
        ).linear
    classes, labels, split = _holdout(train_dataset, test_dataset, config)
    train_idx, val_idx = split
    common = config.extraction()
    val = (
        extract_features(extractor, DatasetSubset(train_dataset, val_idx), desc="val features", **common)
        if len(val_idx)
        else None
    )
    augmented = AugmentedDataset(DatasetSubset(train_dataset, train_idx), RandomCropFlip(image_size))

    def views(epoch: int) -> tuple[torch.Tensor, torch.Tensor]:
        """The training features of this epoch's augmented views (seeded by the epoch)."""
        torch.manual_seed(config.seed * 100_003 + epoch)
        return extract_features(extractor, augmented, desc=f"train features (epoch {epoch})", **common)

    selected = fit_with_selection(views, val, num_classes=len(classes), config=config, multilabel=labels.ndim == 2)
    test = extract_features(extractor, test_dataset, desc="test features", **common)
    return _linear_result(selected, test, config=config, classes=classes, split=split, encoder=encoder, dataset=dataset)
