"""Regression of a fixed target with the cosine, the objective of SimReg (Navaneet et al., BMVC 2021).

A student's prediction p_i of a target t_i (a teacher's embedding, or a hand-crafted representation
of the same image) is pulled towards it, sample by sample, with

    L = (1/B) sum_i [2 - 2 cos(p_i, t_i)] = (1/B) sum_i || p_i/||p_i|| - t_i/||t_i|| ||^2,

so the prediction matches the target's direction; its scale is free. Unlike distance correlation,
which constrains only the distances within a batch, this pins every sample to its own target.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from mvmr.losses.distance_correlation import NonFiniteInputError

__all__ = ["CosineRegressionLoss", "cosine_regression_loss"]


def cosine_regression_loss(prediction: Tensor, target: Tensor, *, eps: float = 1e-8) -> tuple[Tensor, Tensor]:
    """``(mean of 2 - 2 cos(p_i, t_i), mean cosine)`` of a prediction (B, D) and its target (B, D).

    The target gets no gradient (it is a fixed representation). The loss is computed in float32 (float64
    stays float64), also under autocast. A zero vector has cosine 0 with everything (``eps`` guards
    the norm). NaN or inf in either input raises :class:`~mvmr.losses.NonFiniteInputError`.
    """
    if prediction.ndim != 2 or prediction.shape != target.shape:
        raise ValueError(
            f"prediction and target must both be (B, D) with the same shape, got "
            f"{tuple(prediction.shape)} and {tuple(target.shape)}"
        )
    if prediction.shape[0] < 1:
        raise ValueError("cosine regression needs at least one sample")
    for name, t in (("prediction", prediction), ("target", target)):
        if not bool(torch.isfinite(t.detach()).all()):
            raise NonFiniteInputError(f"non-finite values (NaN or inf) in the cosine regression's {name}")
    with torch.autocast(device_type=prediction.device.type, enabled=False):
        dtype = torch.float64 if prediction.dtype == torch.float64 else torch.float32
        cos = F.cosine_similarity(prediction.to(dtype), target.detach().to(dtype), dim=1, eps=eps)
        return (2.0 - 2.0 * cos).mean(), cos.mean()


class CosineRegressionLoss(nn.Module):
    """2 - 2 cos(prediction, target), averaged over the batch (SimReg's regression objective).

    Example:
        >>> loss_fn = CosineRegressionLoss()
        >>> loss = loss_fn(head(student_features), teacher_embeddings)
    """

    def __init__(self, *, eps: float = 1e-8) -> None:
        super().__init__()
        if not eps > 0:
            raise ValueError(f"eps must be > 0, got {eps}")
        self.eps = eps

    def forward(self, prediction: Tensor, target: Tensor) -> Tensor:
        """The loss (a scalar) of ``prediction`` (B, D) against ``target`` (B, D)."""
        return cosine_regression_loss(prediction, target, eps=self.eps)[0]
