"""An autograd-correct all-gather, so that batch statistics see the global batch under DDP."""

from __future__ import annotations

from typing import Any

import torch
import torch.distributed as dist
from torch import Tensor

__all__ = ["is_distributed", "gather_with_grad", "gather_no_grad", "PairLoss"]


def is_distributed() -> bool:
    return dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1


def _gather_padded(t: Tensor) -> tuple[list[Tensor], list[int]]:
    """all_gather that allows a different batch size on each rank (the last batch of an epoch)."""
    world = dist.get_world_size()
    size = torch.tensor([t.shape[0]], device=t.device)
    sizes = [torch.zeros_like(size) for _ in range(world)]
    dist.all_gather(sizes, size)
    counts = [int(s.item()) for s in sizes]
    longest = max(counts)
    if t.shape[0] < longest:
        t = torch.cat([t, t.new_zeros((longest - t.shape[0], *t.shape[1:]))])
    parts = [torch.empty_like(t) for _ in range(world)]
    dist.all_gather(parts, t.contiguous())
    return [p[:n] for p, n in zip(parts, counts, strict=True)], counts


class _GatherWithGrad(torch.autograd.Function):
    @staticmethod
    def forward(ctx: Any, t: Tensor) -> Tensor:
        parts, counts = _gather_padded(t)
        ctx.rank, ctx.counts = dist.get_rank(), counts
        return torch.cat(parts)

    @staticmethod
    def backward(ctx: Any, grad: Tensor) -> Tensor:
        # Every rank computed the same global loss from the gathered batch, so the gradient of a
        # local row is the sum over ranks of the gradients flowing into its gathered copy. After
        # DDP averages parameter gradients over W ranks, the result equals the single-process
        # gradient on the concatenated batch. (all_reduce works on gloo; reduce_scatter does not.)
        grad = grad.contiguous()
        dist.all_reduce(grad, op=dist.ReduceOp.SUM)
        start = sum(ctx.counts[: ctx.rank])
        return grad[start : start + ctx.counts[ctx.rank]]


def gather_with_grad(t: Tensor) -> Tensor:
    """Concatenate ``t`` (B_r, ...) from every rank along dim 0, keeping gradients to the local rows.

    Outside torch.distributed (or with one process) it returns ``t`` unchanged.
    """
    return _GatherWithGrad.apply(t) if is_distributed() else t


@torch.no_grad()
def gather_no_grad(t: Tensor) -> Tensor:
    """Concatenate ``t`` from every rank along dim 0, for tensors that need no gradient."""
    return torch.cat(_gather_padded(t)[0]) if is_distributed() else t


class PairLoss(torch.nn.Module):
    """A loss of two (or more) embeddings, ``fn(*z) -> scalar`` (lightly's, for example), on the global batch.

    With ``gather_distributed`` (``loss.gather_distributed``, the default) and several processes, ``fn``
    sees the global batch: every embedding is all-gathered with its gradients first, as MV-MR's loss
    does, so that batch statistics (VICReg's variance and covariance, Barlow Twins' normalisation and
    cross-correlation) and the gradients equal one process on the global batch. ``fn`` must then do no
    gathering of its own. ``scale`` multiplies the loss (solo-learn's ``scale_loss`` for Barlow Twins:
    under LARS with a clipped rate it changes the step, not only the logged value). Returns
    ``(loss, {"loss": detached loss})``.
    """

    def __init__(self, fn: torch.nn.Module, *, gather_distributed: bool = False, scale: float = 1.0) -> None:
        super().__init__()
        self.fn = fn
        self.gather_distributed = gather_distributed
        self.scale = scale

    def forward(self, *z: Tensor) -> tuple[Tensor, dict[str, Tensor]]:
        if self.gather_distributed:
            z = tuple(gather_with_grad(t) for t in z)
        loss = self.scale * self.fn(*z)
        return loss, {"loss": loss.detach()}
