"""Distance covariance and distance correlation (Szekely et al., 2007) for batches of any shape.

These are the paper's eqs. (2), (3) and appendix A (eqs. 11-14). ``x`` and ``y`` hold the same
``B`` samples as rows and may have different feature dimensions (8192 against 140,000 is normal).

Numerics, chosen for training and tested:

- Work is done in float32 (float64 stays float64), with autocast switched off, so the
  functions are safe to call inside an fp16/bf16 autocast region.
- Memory is O(B^2 + B*D): distances come from the Gram matrix of the batch-centred rows, never
  from a (B, B, D) difference tensor.
- Gradients are finite everywhere: a zero distance (the diagonal, or two identical samples) has
  gradient 0 instead of the 1/sqrt(0) of a naive square root, and a constant input gives
  dCor = 0 with a zero gradient instead of 0/0.
- NaN or inf in the input raises ``ValueError`` naming the tensor (it would otherwise
  silently poison every entry of the distance matrix). The check costs O(B), not O(B*D).
"""

from __future__ import annotations

import torch
from torch import Tensor

__all__ = [
    "pairwise_distances",
    "double_centered_distances",
    "distance_covariance",
    "distance_correlation",
    "distance_correlation_from_centered",
]


def _as_rows(x: Tensor, name: str) -> Tensor:
    if not isinstance(x, Tensor):
        raise TypeError(f"{name}: expected a torch.Tensor, got {type(x).__name__}")
    if x.ndim == 0:
        raise ValueError(f"{name}: expected a batch of shape (B, ...), got a scalar")
    if x.shape[0] < 2:
        raise ValueError(
            f"{name}: distance correlation needs a batch of at least 2 samples, got B={x.shape[0]}"
        )
    x = x.reshape(x.shape[0], -1)
    if x.shape[1] == 0:
        raise ValueError(f"{name}: samples have no features (shape {tuple(x.shape)})")
    return x.double() if x.dtype == torch.float64 else x.float()


def _safe_sqrt(x: Tensor) -> Tensor:
    """sqrt with value 0 and gradient 0 where x <= 0 (instead of an infinite gradient)."""
    positive = x > 0
    return torch.where(positive, torch.sqrt(torch.where(positive, x, torch.ones_like(x))), torch.zeros_like(x))


class _PairwiseDistances(torch.autograd.Function):
    """Euclidean distances from one Gram matrix, with a hand-written backward.

    Forward: one (B, D) x (D, B) matmul of the batch-centred rows (centring is free: distances
    are translation invariant, and it limits cancellation). Backward: one (B, B) x (B, D)
    matmul. With W = (G + G^T) / d, and W = 0 where d = 0 (the subgradient 0 at coincident
    points, instead of the 1/sqrt(0) of autograd's sqrt), the gradient is
    grad_x_i = sum_j W_ij (x_i - x_j), i.e. the graph Laplacian (diag(W 1) - W) applied to x.
    """

    @staticmethod
    def forward(ctx, x: Tensor, name: str) -> Tensor:  # type: ignore[override]
        xc = x - x.mean(dim=0, keepdim=True)
        gram = xc @ xc.T
        sq_norms = gram.diagonal()
        if not bool(torch.isfinite(sq_norms).all()):  # O(B): NaN/inf anywhere in a row shows up here
            raise ValueError(f"non-finite values (NaN or inf, or overflow when squared) in {name}")
        sq = (sq_norms[:, None] + sq_norms[None, :] - 2.0 * gram).clamp_min_(0.0)
        sq.fill_diagonal_(0.0)
        d = sq.sqrt_()
        if ctx.needs_input_grad[0]:
            ctx.save_for_backward(x, d)
        return d

    @staticmethod
    @torch.autograd.function.once_differentiable
    def backward(ctx, grad: Tensor) -> tuple[Tensor, None]:  # type: ignore[override]
        x, d = ctx.saved_tensors
        positive = d > 0
        w = torch.where(positive, (grad + grad.T) / torch.where(positive, d, torch.ones_like(d)), torch.zeros_like(d))
        laplacian = torch.diag_embed(w.sum(dim=1)) - w
        return laplacian @ x, None


def pairwise_distances(x: Tensor, *, name: str = "x") -> Tensor:
    """Euclidean distance matrix (B, B) between the rows of ``x`` (B, D), gradient-safe at 0.

    Raises ValueError naming ``name`` if a row holds NaN or inf (checked in O(B) on the Gram
    diagonal, which any non-finite entry reaches).
    """
    return _PairwiseDistances.apply(x, name)


def double_centered_distances(x: Tensor, *, name: str = "x") -> Tensor:
    """The matrix A of eq. (3): a_ji - mean_j - mean_i + grand mean, for x of shape (B, ...).

    Computing it once per tensor lets one batch share it across many dCor terms.
    """
    with torch.autocast(device_type=x.device.type, enabled=False):
        d = pairwise_distances(_as_rows(x, name), name=name)
        row_mean = d.mean(dim=1, keepdim=True)
        return d - row_mean - row_mean.T + d.mean()


def _dcov_sq(a: Tensor, b: Tensor) -> Tensor:
    return (a * b).mean()


def distance_correlation_from_centered(
    a: Tensor, b: Tensor, *, squared: bool = True, a_var: Tensor | None = None, b_var: Tensor | None = None
) -> Tensor:
    """dCor from two double-centred distance matrices (see :func:`double_centered_distances`).

    ``a_var``/``b_var`` may pass precomputed dVar values (``(a * a).mean()``) to save work.
    """
    if a.shape != b.shape or a.ndim != 2 or a.shape[0] != a.shape[1]:
        raise ValueError(f"expected two (B, B) matrices of the same B, got {tuple(a.shape)} and {tuple(b.shape)}")
    if a.dtype != b.dtype:
        a, b = a.double(), b.double()
    a_var = _dcov_sq(a, a) if a_var is None else a_var.to(a.dtype)
    b_var = _dcov_sq(b, b) if b_var is None else b_var.to(a.dtype)
    denom = _safe_sqrt(a_var * b_var)
    defined = denom > 0
    r2 = torch.where(defined, _dcov_sq(a, b) / torch.where(defined, denom, torch.ones_like(denom)), torch.zeros_like(denom))
    r2 = r2.clamp(0.0, 1.0)  # the V-statistic is in [0, 1]; clamp rounding error only
    return r2 if squared else _safe_sqrt(r2)


def _check_pair(x: Tensor, y: Tensor) -> None:
    if not isinstance(x, Tensor) or not isinstance(y, Tensor):
        raise TypeError("x and y must be torch.Tensors")
    if x.ndim == 0 or y.ndim == 0 or x.shape[0] != y.shape[0]:
        raise ValueError(
            f"x and y must hold the same samples as rows: got shapes {tuple(x.shape)} and {tuple(y.shape)} "
            f"(batch sizes must match)"
        )


def distance_covariance(x: Tensor, y: Tensor) -> Tensor:
    """Squared sample distance covariance dCov^2_B(x, y), eq. (3): the biased V-statistic.

    Args:
        x: (B, ...) samples; trailing dimensions are flattened.
        y: (B, ...) samples of the same batch, any feature dimension.
    """
    _check_pair(x, y)
    a, b = double_centered_distances(x, name="x"), double_centered_distances(y, name="y")
    if a.dtype != b.dtype:
        a, b = a.double(), b.double()
    return _dcov_sq(a, b)


def distance_correlation(x: Tensor, y: Tensor, *, squared: bool = True) -> Tensor:
    """Sample distance correlation between the rows of ``x`` and ``y``.

    With ``squared=True`` (default) this is the paper's eq. (2)::

        dCor(x, y) = dCov^2(x, y) / sqrt(dVar(x) dVar(y)),   dVar(x) = dCov^2(x, x),

    which is R^2 in Szekely's notation and equals ``dcor.distance_correlation_sqr``. With
    ``squared=False`` it returns R, its square root, which is what the authors' public code
    computes. The result lies in [0, 1]; it is 1 for x = a*y + b (a != 0), invariant to
    scaling, translation and orthogonal rotation of either input, and 0 when either input is
    constant.

    Args:
        x: (B, ...) samples; trailing dimensions are flattened. B >= 2.
        y: (B, ...) the same samples in another space; the dimension may differ from x.
        squared: return R^2 (paper) or R (reference code).

    Raises:
        ValueError: B < 2, different B, or NaN/inf in the input.
    """
    _check_pair(x, y)
    return distance_correlation_from_centered(
        double_centered_distances(x, name="x"), double_centered_distances(y, name="y"), squared=squared
    )
