"""Callbacks: a non-finite loss guard, atomic checkpoint writes, plots at the end of a run."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import lightning as L
import torch
from lightning.fabric.utilities.cloud_io import get_filesystem
from lightning.pytorch.plugins.io import TorchCheckpointIO

from mvmr.errors import CheckpointError, MVMRError
from mvmr.utils.atomic import atomic_torch_save

__all__ = [
    "NonFiniteLossError",
    "NonFiniteGuard",
    "nonfinite_loss_message",
    "AtomicCheckpointIO",
    "LastCheckpoint",
    "PlotCallback",
    "STOP_ADVICE",
    "max_over_ranks",
]


class NonFiniteLossError(MVMRError, FloatingPointError):
    """Training stopped because the loss became NaN or infinite."""


#: The end of every message that stops a run on a non-finite value.
STOP_ADVICE = (
    "Training stopped; the last checkpoint holds finite weights. Try a lower optim.lr, "
    "trainer.precision=32-true, or check the data."
)


class NonFiniteGuard(L.Callback):
    """Stop training, before the backward pass, when the loss is not finite; the error names the
    step and every loss term (the module's ``last_terms``), so that the term that blew up is visible."""

    def on_before_backward(self, trainer: L.Trainer, pl_module: L.LightningModule, loss: torch.Tensor) -> None:
        if not bool(torch.isfinite(loss.detach()).all()):
            raise NonFiniteLossError(f"{nonfinite_loss_message(trainer, pl_module, loss)} {STOP_ADVICE}")


def nonfinite_loss_message(trainer: L.Trainer, pl_module: L.LightningModule, loss: torch.Tensor) -> str:
    """``non-finite loss ... at optimiser step S (epoch E, batch B); non-finite terms: ...; all terms: ...``"""
    terms = dict(getattr(pl_module, "last_terms", {}) or {})
    bad = [k for k, v in terms.items() if isinstance(v, torch.Tensor) and not bool(torch.isfinite(v).all())]
    values = ", ".join(
        f"{k}={float(v.detach().float() if isinstance(v, torch.Tensor) else v):.6g}" for k, v in terms.items()
    )
    return (
        f"non-finite loss {float(loss.detach().float())} at optimiser step {trainer.global_step} "
        f"(epoch {trainer.current_epoch}, batch {trainer.fit_loop.epoch_loop.batch_idx}); "
        f"non-finite terms: {', '.join(bad) if bad else 'none (the sum overflowed)'}; "
        f"all terms: {values or 'not recorded'}."
    )


def max_over_ranks(trainer: L.Trainer, value: int, device: torch.device) -> int:
    """The maximum of ``value`` over the ranks (one tiny all-reduce under DDP; ``value`` otherwise)."""
    if trainer.world_size > 1 and torch.distributed.is_available() and torch.distributed.is_initialized():
        flag = torch.tensor([value], dtype=torch.int64, device=device)
        torch.distributed.all_reduce(flag, op=torch.distributed.ReduceOp.MAX)
        return int(flag.item())
    return value


class AtomicCheckpointIO(TorchCheckpointIO):
    """Checkpoint IO that writes local files atomically (:func:`mvmr.utils.atomic.atomic_torch_save`:
    temp file beside the target, fsync, ``os.replace``; a full disk raises
    :class:`~mvmr.errors.DiskFullError` and leaves the previous checkpoint) and loads with
    ``torch.load(weights_only=True)``. (Lightning's fsspec transaction moves its temp file across
    file systems with a copy that a crash can leave half-written.)
    """

    def save_checkpoint(self, checkpoint: dict[str, Any], path: Any, storage_options: Any | None = None) -> None:
        if storage_options is not None:
            raise TypeError(f"{type(self).__name__} does not take storage_options")
        fs = get_filesystem(path)
        if "file" not in (fs.protocol if isinstance(fs.protocol, tuple) else (fs.protocol,)):
            return super().save_checkpoint(checkpoint, path)  # remote storage: fsspec's transaction
        atomic_torch_save(checkpoint, path, what="checkpoint")

    def load_checkpoint(
        self, path: Any, map_location: Any | None = lambda storage, loc: storage, weights_only: bool | None = None
    ) -> dict[str, Any]:
        if weights_only is False:
            raise CheckpointError(f"{path}: mvmr loads checkpoints with weights_only=True only")
        try:
            return super().load_checkpoint(path, map_location=map_location, weights_only=True)
        except FileNotFoundError:
            raise
        except Exception as err:  # unpickling refused or a corrupt file
            raise CheckpointError(f"cannot load checkpoint {path} with weights_only=True: {err}") from err


class LastCheckpoint(L.Callback):
    """The one writer of ``checkpoints/last.ckpt``, the newest state: every ``every_n_steps``
    optimiser steps when set, at every epoch's end and on :meth:`save` (e.g. a preemption signal).
    One writer means no ``last-v1.ckpt`` and no older state written last."""

    def __init__(self, path: str | Path, *, every_n_steps: int | None = None) -> None:
        self.path = Path(path)
        self.every_n_steps = every_n_steps
        self._saved_step: int | None = None

    def save(self, trainer: L.Trainer) -> None:
        """Write ``last.ckpt`` now (every rank must call it: the save is collective under DDP)."""
        # the full state (optimiser, schedulers, loops, callbacks): exact resume needs all of it; saying
        # so also keeps Lightning from logging that it "defaulted" to a full save
        trainer.save_checkpoint(self.path, weights_only=False)
        self._saved_step = trainer.global_step

    def on_train_batch_end(
        self, trainer: L.Trainer, pl_module: L.LightningModule, outputs: Any, batch: Any, batch_idx: int
    ) -> None:
        # under gradient accumulation global_step stays put for several batches: save once
        step, n = trainer.global_step, self.every_n_steps
        if n and step > 0 and step % n == 0 and step != self._saved_step:
            self.save(trainer)

    def on_train_epoch_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self.save(trainer)


class PlotCallback(L.Callback):
    """At the end of fitting, write the run's PNG plots (:func:`mvmr.training.plots.write_plots`)."""

    def __init__(self, run_dir: str | Path) -> None:
        self.run_dir = Path(run_dir)

    def on_fit_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if not trainer.is_global_zero:
            return
        for logger in trainer.loggers:
            logger.save()
        from mvmr.training.plots import write_plots

        write_plots(self.run_dir)
