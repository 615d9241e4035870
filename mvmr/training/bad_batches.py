"""A bad batch: NaN or inf in a batch's inputs or loss, skipped up to a limit or stopping the run.

With ``trainer.skip_nonfinite_batches: 0`` the first non-finite loss stops the run
(:class:`~mvmr.training.callbacks.NonFiniteLossError`, naming the step and every loss term). With
a limit ``N > 0``, :class:`BadBatches` lets the module skip such a batch: its step returns a loss
of 0 reaching every parameter (every DDP rank runs the same backward pass) and ``optimizer_step``
drops the update (under accumulation the window's other batches still step); Lightning still
counts the step, so schedule, checkpoints and exact resume stay in step. Buffers the forward pass
changed (BatchNorm statistics) are restored from a copy. A warning names the step, the dataset
indices of images holding NaN/inf and the reason; the count is logged (``train/skipped_nonfinite``)
and checkpointed, so the limit holds across resumes; the ``N + 1``-th bad batch stops the run.

Under DDP the "bad" flag is max-reduced over the ranks every step (also with a limit of 0), so all
ranks skip, or stop, together instead of one waiting forever in the gradient all-reduce.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import lightning as L
import torch
from torch import Tensor, nn

from mvmr.training.callbacks import STOP_ADVICE, NonFiniteLossError, max_over_ranks

__all__ = ["BadBatches", "nonfinite_inputs"]

#: the checkpoint key of the count of skipped batches
CHECKPOINT_KEY = "mvmr_skipped_nonfinite_batches"


def nonfinite_inputs(images: Sequence[Tensor], index: Tensor | None = None) -> list[int]:
    """The dataset indices (``index``) of the items whose image views hold NaN or inf; their positions
    in the batch without an index. The method says which tensors of its batch are the views and the
    index (:meth:`~mvmr.methods.Method.batch_images`, :meth:`~mvmr.methods.Method.batch_index`)."""
    if not images:
        return []
    bad = torch.zeros(images[0].shape[0], dtype=torch.bool, device=images[0].device)
    for t in images:
        bad |= ~torch.isfinite(t.detach()).flatten(1).all(dim=1)
    rows = torch.nonzero(bad).flatten().cpu()
    return [int(i) for i in (index.detach().cpu()[rows] if index is not None else rows)]


class BadBatches:
    """The skip policy of one training module: skip up to ``limit`` non-finite batches in a run
    (0 stops at the first); see the module docstring."""

    def __init__(self, limit: int = 0) -> None:
        if isinstance(limit, bool) or not isinstance(limit, int) or limit < 0:
            raise ValueError(f"skip_nonfinite_batches must be an int >= 0, got {limit!r}")
        self.limit = limit
        self.skipped = 0  # in this run, restored from checkpoints

    def active(self, trainer: L.Trainer | None) -> bool:
        """Whether the step must take the guarded path: a limit is set, or several ranks must agree."""
        return self.limit > 0 or (trainer is not None and trainer.world_size > 1)

    @staticmethod
    def snapshot(module: nn.Module) -> list[Tensor]:
        """Copies of the module's buffers, taken before the forward pass."""
        return [b.detach().clone() for b in module.buffers()]

    @staticmethod
    def restore(module: nn.Module, saved: list[Tensor]) -> None:
        """Put back the buffers of :meth:`snapshot`: the skipped batch leaves no trace in them."""
        with torch.no_grad():
            for buffer, copy in zip(module.buffers(), saved, strict=True):
                buffer.copy_(copy)

    @staticmethod
    def zero_loss(module: nn.Module) -> Tensor:
        """A loss of exactly 0 that reaches every trainable parameter: its gradients are all 0."""
        params = [p for p in module.parameters() if p.requires_grad]
        return torch.stack([p.reshape(-1)[:1].sum() for p in params]).sum() * 0.0

    @staticmethod
    def any_rank(trainer: L.Trainer, bad: bool, device: torch.device) -> bool:
        """``bad`` on any rank (one tiny all-reduce under DDP; the local flag otherwise)."""
        return bool(max_over_ranks(trainer, int(bad), device))

    def skip(
        self, trainer: L.Trainer, images: Sequence[Tensor], index: Tensor | None, batch_idx: int, problem: str | None
    ) -> str:
        """Count one bad batch (its image views and dataset indices); return the warning to show, or
        raise :class:`NonFiniteLossError` once more than ``limit`` batches were bad."""
        self.skipped += 1
        where = f"optimiser step {trainer.global_step} (epoch {trainer.current_epoch}, batch {batch_idx})"
        inputs = nonfinite_inputs(images, index)
        culprits = f"; dataset indices with NaN/inf in their images: {inputs}" if inputs else ""
        reason = (problem or f"a non-finite loss on another rank at {where}").split(" Training stopped")[0]
        if self.skipped > self.limit:
            limit = (
                f"{self.limit} bad batch(es) were skipped already, the limit trainer.skip_nonfinite_batches="
                f"{self.limit}"
                if self.limit
                else "trainer.skip_nonfinite_batches=0"
            )
            raise NonFiniteLossError(f"non-finite batch at {where}{culprits}; {limit}. {STOP_ADVICE} Cause: {reason}")
        return (
            f"skipped a non-finite batch at {where}{culprits} ({self.skipped} of at most {self.limit}, "
            f"trainer.skip_nonfinite_batches): no optimiser update, buffers restored. Cause: {reason}"
        )

    def state_dict(self) -> dict[str, int]:
        return {CHECKPOINT_KEY: self.skipped}

    def load_state_dict(self, checkpoint: dict[str, Any]) -> None:
        self.skipped = int(checkpoint.get(CHECKPOINT_KEY, 0))
