"""A minimal linear probe: extract frozen features, fit a logistic regression in torch.

Used by ``mvmr demo``; the full evaluation protocols live in :mod:`mvmr.evaluation`.

>>> feats, labels = extract_features(model, train_loader)
>>> clf = train_linear(feats, labels)
>>> accuracy(clf, *extract_features(model, test_loader))
"""

from __future__ import annotations

from typing import Any, Callable, Iterable

import torch
import torch.nn.functional as F
from torch import Tensor, nn

__all__ = ["extract_features", "LinearClassifier", "train_linear", "accuracy"]


@torch.no_grad()
def extract_features(
    encoder: nn.Module | Callable[[Tensor], Tensor],
    loader: Iterable[Any],
    *,
    device: str | torch.device = "cpu",
) -> tuple[Tensor, Tensor]:
    """``(features (N, F) float32 on CPU, labels (N,) int64)`` of every ``(image, label, ...)`` batch.

    ``encoder`` is a model with ``features(x)`` (an :class:`~mvmr.models.MVMRModel`: the pooled
    encoder output, not the projector's) or any callable from images to (B, ...) features,
    which are flattened. Modules are put in eval mode for the extraction and restored after.
    """
    fn = encoder.features if hasattr(encoder, "features") else encoder
    was_training = encoder.training if isinstance(encoder, nn.Module) else None
    if isinstance(encoder, nn.Module):
        encoder.eval()
    feats, labels = [], []
    try:
        for batch in loader:
            images, y = batch[0], batch[1]
            feats.append(fn(images.to(device)).flatten(1).float().cpu())
            labels.append(torch.as_tensor(y).long().cpu())
    finally:
        if was_training:
            encoder.train()
    if not feats:
        raise ValueError("extract_features: the loader gave no batch")
    return torch.cat(feats), torch.cat(labels)


class LinearClassifier(nn.Module):
    """Standardisation (train mean/std, stored) followed by a linear layer."""

    def __init__(self, mean: Tensor, std: Tensor, num_classes: int) -> None:
        super().__init__()
        self.register_buffer("mean", mean)
        self.register_buffer("std", std)
        self.linear = nn.Linear(mean.numel(), num_classes)

    def forward(self, x: Tensor) -> Tensor:
        return self.linear((x - self.mean) / self.std)


def train_linear(
    features: Tensor,
    labels: Tensor,
    *,
    num_classes: int | None = None,
    weight_decay: float = 1e-4,
    max_iter: int = 300,
    seed: int = 0,
) -> LinearClassifier:
    """Multinomial logistic regression with an L2 penalty, fitted by full-batch L-BFGS.

    Features are standardised with the training mean and std (kept in the classifier).
    Unlabelled rows (label < 0) are ignored. Deterministic for a given ``seed``.
    """
    keep = labels >= 0
    x, y = features[keep].float(), labels[keep].long()
    if len(y) < 2:
        raise ValueError(f"train_linear needs at least 2 labelled samples, got {len(y)}")
    num_classes = int(num_classes if num_classes is not None else int(y.max()) + 1)
    mean = x.mean(dim=0)
    std = x.std(dim=0).clamp_min(1e-6)
    generator = torch.Generator().manual_seed(seed)
    clf = LinearClassifier(mean, std, num_classes)
    with torch.no_grad():
        clf.linear.weight.normal_(0.0, 0.01, generator=generator)
        clf.linear.bias.zero_()
    xs = (x - mean) / std
    optimizer = torch.optim.LBFGS(clf.linear.parameters(), lr=1.0, max_iter=max_iter, history_size=20,
                                  line_search_fn="strong_wolfe", tolerance_grad=1e-6, tolerance_change=1e-9)

    def closure() -> Tensor:
        optimizer.zero_grad()
        loss = F.cross_entropy(clf.linear(xs), y) + 0.5 * weight_decay * clf.linear.weight.pow(2).sum()
        loss.backward()
        return loss

    optimizer.step(closure)
    return clf.eval()


@torch.no_grad()
def accuracy(classifier: nn.Module, features: Tensor, labels: Tensor) -> float:
    """Top-1 accuracy over the labelled rows."""
    keep = labels >= 0
    if not bool(keep.any()):
        raise ValueError("accuracy: no labelled sample")
    pred = classifier(features[keep].float()).argmax(dim=1)
    return float((pred == labels[keep]).float().mean())
