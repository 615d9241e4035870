"""What a self-supervised method is, as far as the trainer is concerned."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Callable

from torch import Tensor, nn

from mvmr.losses.distributed import gather_with_grad

if TYPE_CHECKING:  # annotations only
    from mvmr.config import Config

__all__ = ["Method", "PairLoss"]


@dataclass(frozen=True)
class Method:
    """A method: its two views, its loss, and whether it learns from fixed target features.

    Attributes:
        name: the registry key (``method: <name>`` in a config).
        views: the views class, ``views(dataset, size=, augmentation=, seed=)``, whose items are
            ``(view_a, view_b, index, label)`` (:class:`mvmr.data.TwoViews`: clean + augmented,
            :class:`mvmr.data.TwoAugmentedViews`: two augmented).
        build_loss: ``config -> loss`` where ``loss(z_a, z_b, targets) -> (scalar, terms)``;
            ``targets`` maps a name to the (B, D_k) features of view a, ``terms`` holds the
            detached values to log (at least ``"loss"``).
        uses_targets: whether the run's representations (and teacher) feed ``targets``; False
            means the method ignores the ``representations`` and ``teacher`` sections.
        description: one line for ``mvmr info``.
    """

    name: str
    views: type
    build_loss: Callable[["Config"], nn.Module]
    uses_targets: bool = False
    description: str = ""


class PairLoss(nn.Module):
    """A plain two-view loss ``fn(z_a, z_b) -> scalar`` (lightly's, for example) as a method loss.

    With ``gather_distributed`` (``loss.gather_distributed``, the default) and several processes, ``fn``
    sees the global batch: both embeddings are all-gathered with their gradients first, as MV-MR's loss
    does, so that batch statistics (VICReg's variance and covariance, Barlow Twins' normalisation and
    cross-correlation) and the gradients equal one process on the global batch. ``fn`` must then do no
    gathering of its own.
    """

    def __init__(self, fn: nn.Module, *, gather_distributed: bool = False) -> None:
        super().__init__()
        self.fn = fn
        self.gather_distributed = gather_distributed

    def forward(self, z_a: Tensor, z_b: Tensor, targets: object = None) -> tuple[Tensor, dict[str, Tensor]]:
        if self.gather_distributed:
            z_a, z_b = gather_with_grad(z_a), gather_with_grad(z_b)
        loss = self.fn(z_a, z_b)
        return loss, {"loss": loss.detach()}
