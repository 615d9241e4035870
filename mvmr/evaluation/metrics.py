"""Classification metrics: top-k accuracy and (uninterpolated or VOC 11-point) average precision.

:func:`average_precision` gives exactly ``sklearn.metrics.average_precision_score`` (one operating
point per distinct score), without depending on scikit-learn at evaluation time.
"""

from __future__ import annotations

import torch

__all__ = ["topk_accuracy", "classification_metrics", "average_precision", "mean_average_precision"]


def topk_accuracy(logits: torch.Tensor, labels: torch.Tensor, k: int) -> float:
    """Fraction (0..1) of rows whose label is among the ``k`` highest scores."""
    if logits.ndim != 2 or labels.ndim != 1 or logits.shape[0] != labels.shape[0]:
        raise ValueError(f"expected logits (N, C) and labels (N,), got {tuple(logits.shape)} and {tuple(labels.shape)}")
    if logits.shape[0] == 0:
        raise ValueError("no samples to score")
    k = min(k, logits.shape[1])
    top = logits.topk(k, dim=1).indices
    return float((top == labels.view(-1, 1).to(top.device)).any(dim=1).float().mean())


def classification_metrics(logits: torch.Tensor, labels: torch.Tensor, *, prefix: str = "") -> dict[str, float]:
    """``{prefix}top1`` and, with at least 5 classes, ``{prefix}top5``, in percent."""
    out = {f"{prefix}top1": 100.0 * topk_accuracy(logits, labels, 1)}
    if logits.shape[1] >= 5:
        out[f"{prefix}top5"] = 100.0 * topk_accuracy(logits, labels, 5)
    return out


def average_precision(scores: torch.Tensor, targets: torch.Tensor, *, interpolation: str = "none") -> float:
    """Average precision of one class: (N,) ``scores`` against (N,) ``targets`` (1 positive, 0 negative,
    -1 ignored, e.g. VOC "difficult"); NaN when no non-ignored item is positive.

    ``interpolation``: ``"none"`` is the area under the step precision-recall curve,
    ``sum_n (R_n - R_{n-1}) P_n`` over the distinct score thresholds (= scikit-learn's
    ``average_precision_score``); ``"11point"`` is the VOC2007 devkit's 11-point interpolated AP.
    """
    if scores.ndim != 1 or scores.shape != targets.shape:
        raise ValueError(
            f"expected scores and targets of equal shape (N,), got {tuple(scores.shape)} and {tuple(targets.shape)}"
        )
    if interpolation not in ("none", "11point"):
        raise ValueError(f"interpolation must be 'none' or '11point', got {interpolation!r}")
    keep = targets >= 0
    s = scores[keep].double().cpu()
    t = (targets[keep] > 0).double().cpu()
    n_pos = float(t.sum())
    if n_pos == 0:
        return float("nan")
    order = torch.argsort(s, descending=True, stable=True)
    s, t = s[order], t[order]
    tp = torch.cumsum(t, 0)
    fp = torch.cumsum(1.0 - t, 0)
    # One operating point per distinct score: the last position of every run of equal scores.
    last = torch.ones_like(s, dtype=torch.bool)
    last[:-1] = s[1:] != s[:-1]
    tp, fp = tp[last], fp[last]
    precision = tp / (tp + fp)
    recall = tp / n_pos
    if interpolation == "11point":
        thresholds = torch.linspace(0, 1, 11, dtype=torch.float64)
        reached = recall[None, :] >= thresholds[:, None] - 1e-12  # (11, points)
        return sum(torch.where(reached, precision[None, :], 0.0).amax(dim=1).tolist()) / 11.0
    prev = torch.cat([torch.zeros(1, dtype=torch.float64), recall[:-1]])
    return float(((recall - prev) * precision).sum())


def mean_average_precision(
    scores: torch.Tensor, targets: torch.Tensor, *, interpolation: str = "none"
) -> tuple[float, list[float]]:
    """Mean over classes of :func:`average_precision` (in percent) and the per-class APs (0..1).

    ``scores`` and ``targets`` are (N, C). Classes without any positive (AP = NaN) are left
    out of the mean; NaN when no class has a positive.
    """
    if scores.ndim != 2 or scores.shape != targets.shape:
        raise ValueError(
            f"expected scores and targets of equal shape (N, C), got {tuple(scores.shape)} and {tuple(targets.shape)}"
        )
    per_class = [average_precision(s, t, interpolation=interpolation) for s, t in zip(scores.T, targets.T, strict=True)]
    valid = [a for a in per_class if a == a]
    return (100.0 * sum(valid) / len(valid) if valid else float("nan")), per_class
