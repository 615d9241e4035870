"""Linear evaluation: one linear layer on the frozen encoder's pooled features (paper sec. 6.1, 7).

Defaults follow the paper: cross-entropy, Adam, lr 1e-4, batch 256, 100 epochs. The test set is
touched once: :func:`fit_with_selection` (no place for test data in its signature) trains on the
training features and picks the epoch (and learning rate) on a held-out part of the *training* set,
then :func:`evaluate_classifier` scores the chosen weights on the test features. The protocol on
datasets is :mod:`mvmr.evaluation.frozen`.
"""

from __future__ import annotations

import copy
import math
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from mvmr.errors import ConfigError
from mvmr.evaluation.extraction import ExtractionSettings, resolve_device
from mvmr.evaluation.metrics import classification_metrics, mean_average_precision

__all__ = [
    "LinearConfig",
    "LinearClassifier",
    "SelectedClassifier",
    "FeatureSource",
    "fit_with_selection",
    "evaluate_classifier",
    "predict_scores",
    "linear_on_features",
    "check_training",
]

#: Training features: fixed ``(features, labels)`` tensors, or a function ``epoch -> (features, labels)``
#: (epochs count from 1) for the augmented slow path.
FeatureSource = tuple[torch.Tensor, torch.Tensor] | Callable[[int], tuple[torch.Tensor, torch.Tensor]]


@dataclass
class LinearConfig(ExtractionSettings):
    """Settings of the linear probe (paper defaults, checked when built). ``augment``: train on augmented
    views; ``standardize``: standardise the features with training statistics (:class:`LinearClassifier`);
    ``lrs``: several learning rates, one classifier each, the best on the hold-out wins (``lr`` is then unused)."""

    epochs: int = 100
    lr: float = 1e-4
    lrs: tuple[float, ...] = ()
    batch_size: int = 256
    weight_decay: float = 0.0
    val_fraction: float = 0.1
    seed: int = 0
    augment: bool = False
    standardize: bool = True

    def __post_init__(self) -> None:
        check_training(self)
        if self.weight_decay < 0:
            raise ConfigError(f"weight_decay must be >= 0, got {self.weight_decay}")
        self.lrs = tuple(float(lr) for lr in self.lrs)
        if any(not lr > 0 for lr in self.lrs):
            raise ConfigError(f"lrs must all be > 0, got {self.lrs}")

    def summary(self) -> dict[str, Any]:
        """The settings that matter for the numbers (stored with the results)."""
        keep = ("epochs", "lr", "lrs", "batch_size", "weight_decay", "val_fraction", "seed", "augment", "standardize")
        return {k: v for k, v in asdict(self).items() if k in keep}


def check_training(config: Any) -> None:
    """The checks of every protocol that trains (``epochs``, ``lr``, ``batch_size``, ``val_fraction``)."""
    if config.epochs < 1:
        raise ConfigError(f"epochs must be >= 1, got {config.epochs}")
    if not config.lr > 0:
        raise ConfigError(f"lr must be > 0, got {config.lr}")
    if config.batch_size < 1:
        raise ConfigError(f"batch_size must be >= 1, got {config.batch_size}")
    if not 0.0 <= config.val_fraction < 1.0:
        raise ConfigError(f"val_fraction must be in [0, 1), got {config.val_fraction}")


class LinearClassifier(nn.Module):
    """One linear layer after a frozen per-feature standardisation ``(x - mean) / std`` (training statistics).

    Being affine, the standardisation folds into the layer (:meth:`folded`): it only conditions the
    optimisation, as features of different encoders come in very different scales.
    """

    mean: torch.Tensor  # buffers (in_dim,)
    std: torch.Tensor

    def __init__(
        self, in_dim: int, num_classes: int, *, mean: torch.Tensor | None = None, std: torch.Tensor | None = None
    ) -> None:
        super().__init__()
        self.linear = nn.Linear(in_dim, num_classes)
        self.register_buffer("mean", torch.zeros(in_dim) if mean is None else mean.detach().float().clone())
        self.register_buffer("std", torch.ones(in_dim) if std is None else std.detach().float().clone())

    def standardize(self, features: torch.Tensor) -> torch.Tensor:
        return (features - self.mean) / self.std

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        return self.linear(self.standardize(features))

    def folded(self) -> nn.Linear:
        """The equivalent plain ``nn.Linear`` on raw features."""
        out = nn.Linear(self.linear.in_features, self.linear.out_features)
        with torch.no_grad():
            out.weight.copy_(self.linear.weight / self.std)
            out.bias.copy_(self.linear.bias - (self.linear.weight * (self.mean / self.std)).sum(dim=1))
        return out


@dataclass
class SelectedClassifier:
    """The classifier with the weights of the chosen epoch, and how it was chosen."""

    classifier: LinearClassifier
    chosen_epoch: int
    val_metrics: dict[str, float]
    history: list[dict[str, float]] = field(default_factory=list)


def _masked_bce(logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """Binary cross-entropy over the entries with target 0/1 (entries with -1 are ignored)."""
    mask = targets >= 0
    if not bool(mask.any()):
        return logits.sum() * 0.0
    return F.binary_cross_entropy_with_logits(logits[mask], targets[mask].float())


@torch.no_grad()
def predict_scores(classifier: nn.Module, features: torch.Tensor, *, chunk: int = 65536) -> torch.Tensor:
    """The classifier's scores of ``features`` on the CPU, computed in chunks on the classifier's device."""
    dev = next(classifier.parameters()).device
    outs = [classifier(part.to(dev)).float().cpu() for part in features.split(chunk)]
    return torch.cat(outs)


def evaluate_classifier(
    classifier: nn.Module, features: torch.Tensor, labels: torch.Tensor, *, multilabel: bool = False, prefix: str = ""
) -> dict[str, float]:
    """Score a trained classifier: ``{prefix}top1``/``{prefix}top5`` or (multi-label) ``{prefix}map``, in percent."""
    was_training = classifier.training
    classifier.eval()
    try:
        scores = predict_scores(classifier, features)
    finally:
        classifier.train(was_training)
    if multilabel:
        mean_ap, _ = mean_average_precision(scores, labels)
        return {f"{prefix}map": mean_ap}
    return classification_metrics(scores, labels.long(), prefix=prefix)


def fit_with_selection(
    train: FeatureSource,
    val: tuple[torch.Tensor, torch.Tensor] | None,
    *,
    num_classes: int,
    config: LinearConfig,
    multilabel: bool = False,
) -> SelectedClassifier:
    """Train a linear classifier on ``train`` (:data:`FeatureSource`) and choose the epoch on ``val``.

    ``val`` is held-out *training* data: the epoch with the highest val top-1 (val mAP when
    ``multilabel``: (N, C) targets 1/0/-1, binary cross-entropy) wins, the earliest on ties; None or
    empty keeps the last epoch. With ``config.lrs``, the learning rate is chosen the same way
    (``val_metrics["chosen_lr"]``): one classifier per lr, trained in lockstep on the same batches, so
    each equals its single-lr fit exactly. There is deliberately no test argument.
    """
    val = val if val is not None and val[0].shape[0] > 0 else None
    key = "val_map" if multilabel else "val_top1"
    if config.lrs and val is None:
        raise ConfigError("choosing the learning rate (lrs) needs held-out training data (val_fraction > 0)")
    dev = resolve_device(config.device)
    # Epoch 1's training features (also the standardisation statistics); fixed ones stay on the device.
    first = tuple(t.to(dev) for t in (train(1) if callable(train) else train))
    feature_dim = int(first[0].shape[1])
    mean = std = None
    if config.standardize:
        x_first = first[0].float()
        mean, std = x_first.mean(dim=0), x_first.std(dim=0, unbiased=False).clamp_min(1e-6)
    heads = []
    for lr in config.lrs or (config.lr,):
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(config.seed)
            classifier = LinearClassifier(feature_dim, num_classes, mean=mean, std=std).to(dev)
        optimizer = torch.optim.Adam(classifier.parameters(), lr=lr, weight_decay=config.weight_decay)
        heads.append(_Head(classifier, optimizer, best_epoch=config.epochs))
    generator = torch.Generator().manual_seed(config.seed)
    for epoch in range(1, config.epochs + 1):
        x, y = first if epoch == 1 or not callable(train) else tuple(t.to(dev) for t in train(epoch))
        if x.shape[0] != y.shape[0]:
            raise ValueError(f"{x.shape[0]} training features but {y.shape[0]} labels")
        order = torch.randperm(x.shape[0], generator=generator).to(dev)
        totals = [torch.zeros((), device=dev) for _ in heads]
        for head in heads:
            head.classifier.train()
        for start in range(0, x.shape[0], config.batch_size):
            idx = order[start : start + config.batch_size]
            zb, yb = heads[0].classifier.standardize(x[idx]), y[idx]  # the heads share the statistics
            losses = [
                _masked_bce(h.classifier.linear(zb), yb)
                if multilabel
                else F.cross_entropy(h.classifier.linear(zb), yb.long())
                for h in heads
            ]
            for head in heads:
                head.optimizer.zero_grad(set_to_none=True)
            torch.stack(losses).sum().backward()  # the heads share no parameter: each gets its own gradient
            for head, loss, total in zip(heads, losses, totals, strict=True):
                head.optimizer.step()
                total += loss.detach() * idx.numel()
        for head, total in zip(heads, totals, strict=True):
            record = {"epoch": epoch, "train_loss": float(total) / max(int(x.shape[0]), 1)}
            if val is not None:
                metrics = evaluate_classifier(head.classifier, *val, multilabel=multilabel, prefix="val_")
                record.update(metrics)
                if metrics[key] > head.best_metrics.get(key, -math.inf):
                    head.best_epoch, head.best_metrics = epoch, metrics
                    head.best_state = copy.deepcopy(head.classifier.state_dict())
            head.history.append(record)
    best = max(range(len(heads)), key=lambda i: (heads[i].best_metrics.get(key, -math.inf), -i))  # first lr on ties
    head = heads[best]
    if head.best_state is not None:
        head.classifier.load_state_dict(head.best_state)
    head.classifier.eval()
    if config.lrs:
        head.best_metrics["chosen_lr"] = config.lrs[best]
    return SelectedClassifier(
        classifier=head.classifier, chosen_epoch=head.best_epoch, val_metrics=head.best_metrics, history=head.history
    )


@dataclass
class _Head:
    """One classifier of :func:`fit_with_selection` (one per learning rate) and its best epoch so far."""

    classifier: LinearClassifier
    optimizer: torch.optim.Optimizer
    best_epoch: int
    best_state: dict[str, torch.Tensor] | None = None
    best_metrics: dict[str, float] = field(default_factory=dict)
    history: list[dict[str, float]] = field(default_factory=list)


def linear_on_features(
    train: FeatureSource,
    val: tuple[torch.Tensor, torch.Tensor] | None,
    test: tuple[torch.Tensor, torch.Tensor],
    *,
    num_classes: int,
    config: LinearConfig,
    multilabel: bool = False,
) -> tuple[dict[str, float], SelectedClassifier]:
    """Select on (train, val) with :func:`fit_with_selection`, then score the test features once: returns
    ``(metrics, selected)``, metrics holding ``test_*``, ``val_*`` and ``chosen_epoch``."""
    selected = fit_with_selection(train, val, num_classes=num_classes, config=config, multilabel=multilabel)
    test_metrics = evaluate_classifier(selected.classifier, *test, multilabel=multilabel, prefix="test_")
    return {**test_metrics, **selected.val_metrics, "chosen_epoch": selected.chosen_epoch}, selected
