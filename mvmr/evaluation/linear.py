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
from dataclasses import asdict, dataclass, field, replace
from typing import Any, Callable, Union

import torch
import torch.nn.functional as F
from torch import nn

from mvmr.errors import ConfigError
from mvmr.evaluation.extraction import ExtractionSettings, resolve_device
from mvmr.evaluation.metrics import classification_metrics, mean_average_precision

__all__ = ["LinearConfig", "LinearClassifier", "SelectedClassifier", "FeatureSource", "fit_with_selection",
           "evaluate_classifier", "predict_scores", "linear_on_features", "check_training"]

#: Training features: fixed ``(features, labels)`` tensors, or a function ``epoch -> (features, labels)``
#: (epochs count from 1) for the augmented slow path.
FeatureSource = Union[tuple[torch.Tensor, torch.Tensor], Callable[[int], tuple[torch.Tensor, torch.Tensor]]]


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

    def __init__(self, in_dim: int, num_classes: int, *, mean: torch.Tensor | None = None,
                 std: torch.Tensor | None = None) -> None:
        super().__init__()
        self.linear = nn.Linear(in_dim, num_classes)
        self.register_buffer("mean", torch.zeros(in_dim) if mean is None else mean.detach().float().clone())
        self.register_buffer("std", torch.ones(in_dim) if std is None else std.detach().float().clone())

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        return self.linear((features - self.mean) / self.std)

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


def evaluate_classifier(classifier: nn.Module, features: torch.Tensor, labels: torch.Tensor, *,
                        multilabel: bool = False, prefix: str = "") -> dict[str, float]:
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


def fit_with_selection(train: FeatureSource, val: tuple[torch.Tensor, torch.Tensor] | None, *, num_classes: int,
                       config: LinearConfig, multilabel: bool = False) -> SelectedClassifier:
    """Train a linear classifier on ``train`` (:data:`FeatureSource`) and choose the epoch on ``val``.

    ``val`` is held-out *training* data: the epoch with the highest val top-1 (val mAP when
    ``multilabel``: (N, C) targets 1/0/-1, binary cross-entropy) wins, the earliest on ties; None or
    empty keeps the last epoch. With ``config.lrs``, the learning rate is chosen the same way
    (``val_metrics["chosen_lr"]``). There is deliberately no test argument.
    """
    val = val if val is not None and val[0].shape[0] > 0 else None
    key = "val_map" if multilabel else "val_top1"
    if config.lrs:
        if val is None:
            raise ConfigError("choosing the learning rate (lrs) needs held-out training data (val_fraction > 0)")
        fits = [fit_with_selection(train, val, num_classes=num_classes, config=replace(config, lr=lr, lrs=()),
                                   multilabel=multilabel) for lr in config.lrs]
        best = max(range(len(fits)), key=lambda i: (fits[i].val_metrics[key], -i))  # the first lr wins ties
        fits[best].val_metrics["chosen_lr"] = config.lrs[best]
        return fits[best]
    dev = resolve_device(config.device)
    # Epoch 1's training features (also the standardisation statistics); fixed ones stay on the device.
    first = tuple(t.to(dev) for t in (train(1) if callable(train) else train))
    feature_dim = int(first[0].shape[1])
    mean = std = None
    if config.standardize:
        x_first = first[0].float()
        mean, std = x_first.mean(dim=0), x_first.std(dim=0, unbiased=False).clamp_min(1e-6)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(config.seed)
        classifier = LinearClassifier(feature_dim, num_classes, mean=mean, std=std)
    classifier.to(dev)
    optimizer = torch.optim.Adam(classifier.parameters(), lr=config.lr, weight_decay=config.weight_decay)
    generator = torch.Generator().manual_seed(config.seed)
    best_epoch, best_state = config.epochs, None
    best_metrics: dict[str, float] = {}
    history: list[dict[str, float]] = []
    for epoch in range(1, config.epochs + 1):
        x, y = first if epoch == 1 or not callable(train) else tuple(t.to(dev) for t in train(epoch))
        if x.shape[0] != y.shape[0]:
            raise ValueError(f"{x.shape[0]} training features but {y.shape[0]} labels")
        classifier.train()
        order = torch.randperm(x.shape[0], generator=generator).to(dev)
        total = torch.zeros((), device=dev)
        for start in range(0, x.shape[0], config.batch_size):
            idx = order[start : start + config.batch_size]
            logits = classifier(x[idx])
            loss = _masked_bce(logits, y[idx]) if multilabel else F.cross_entropy(logits, y[idx].long())
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            total += loss.detach() * idx.numel()
        record = {"epoch": epoch, "train_loss": float(total) / max(int(x.shape[0]), 1)}
        if val is not None:
            metrics = evaluate_classifier(classifier, *val, multilabel=multilabel, prefix="val_")
            record.update(metrics)
            if metrics[key] > best_metrics.get(key, -math.inf):
                best_epoch, best_metrics = epoch, metrics
                best_state = copy.deepcopy(classifier.state_dict())
        history.append(record)
    if best_state is not None:
        classifier.load_state_dict(best_state)
    classifier.eval()
    return SelectedClassifier(classifier=classifier, chosen_epoch=best_epoch, val_metrics=best_metrics, history=history)


def linear_on_features(train: FeatureSource, val: tuple[torch.Tensor, torch.Tensor] | None,
                       test: tuple[torch.Tensor, torch.Tensor], *, num_classes: int, config: LinearConfig,
                       multilabel: bool = False) -> tuple[dict[str, float], SelectedClassifier]:
    """Select on (train, val) with :func:`fit_with_selection`, then score the test features once: returns
    ``(metrics, selected)``, metrics holding ``test_*``, ``val_*`` and ``chosen_epoch``."""
    selected = fit_with_selection(train, val, num_classes=num_classes, config=config, multilabel=multilabel)
    test_metrics = evaluate_classifier(selected.classifier, *test, multilabel=multilabel, prefix="test_")
    return {**test_metrics, **selected.val_metrics, "chosen_epoch": selected.chosen_epoch}, selected
