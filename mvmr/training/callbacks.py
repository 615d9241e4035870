"""Callbacks: a non-finite loss guard, atomic checkpoint writes, plots at the end of a run."""

from __future__ import annotations

import io
from pathlib import Path
from typing import Any, Callable

import lightning as L
import torch
from lightning.fabric.utilities.cloud_io import get_filesystem
from lightning.pytorch.plugins.io import TorchCheckpointIO

from mvmr.errors import CheckpointError, MVMRError
from mvmr.utils.atomic import atomic_write_bytes

__all__ = ["NonFiniteLossError", "NonFiniteGuard", "nonfinite_loss_message", "AtomicCheckpointIO", "LastCheckpoint", "PlotCallback"]


class NonFiniteLossError(MVMRError, FloatingPointError):
    """Training stopped because the loss became NaN or infinite."""


def _fmt_terms(terms: dict[str, Any]) -> str:
    parts = []
    for key, value in terms.items():
        v = float(value.detach().float()) if isinstance(value, torch.Tensor) else float(value)
        parts.append(f"{key}={v:.6g}")
    return ", ".join(parts)


class NonFiniteGuard(L.Callback):
    """Stop training, before the backward pass, when the loss is not finite.

    The error names the optimiser step, the epoch and batch, and every loss term (the module
    keeps the terms of the current step in ``last_terms``), so that the term that blew up is
    visible. The weights of the last checkpoint are the last finite ones.
    """

    def on_before_backward(self, trainer: L.Trainer, pl_module: L.LightningModule, loss: torch.Tensor) -> None:
        if bool(torch.isfinite(loss.detach()).all()):
            return
        raise NonFiniteLossError(nonfinite_loss_message(trainer, pl_module, loss) + " Training stopped; the last "
                                 "checkpoint holds finite weights. Try a lower optim.lr, trainer.precision=32-true, "
                                 "or check the data.")


def nonfinite_loss_message(trainer: L.Trainer, pl_module: L.LightningModule, loss: torch.Tensor) -> str:
    """``non-finite loss ... at optimiser step S (epoch E, batch B); non-finite terms: ...; all terms: ...``"""
    terms = dict(getattr(pl_module, "last_terms", {}) or {})
    bad = [k for k, v in terms.items() if isinstance(v, torch.Tensor) and not bool(torch.isfinite(v).all())]
    batch_idx = trainer.fit_loop.epoch_loop.batch_idx
    return (f"non-finite loss {float(loss.detach().float())} at optimiser step {trainer.global_step} "
            f"(epoch {trainer.current_epoch}, batch {batch_idx}); "
            f"non-finite terms: {', '.join(bad) if bad else 'none (the sum overflowed)'}; "
            f"all terms: {_fmt_terms(terms) or 'not recorded'}.")


class AtomicCheckpointIO(TorchCheckpointIO):
    """Checkpoint IO that writes to a temporary file beside the target, fsyncs, then ``os.replace``s
    it (:func:`mvmr.utils.atomic.atomic_write_bytes`), and loads with ``torch.load(weights_only=True)``.

    On a full disk the write raises :class:`~mvmr.errors.DiskFullError` (the path, the checkpoint's
    size and the free space); the previous checkpoint stays as it was and no temporary file is left.

    Lightning's default writes through an fsspec transaction whose temporary file lives in the
    system temp directory; across file systems its final ``shutil.move`` is a copy, which a crash
    can leave half-written. ``os.replace`` within one directory is atomic on POSIX.
    """

    def save_checkpoint(self, checkpoint: dict[str, Any], path: Any, storage_options: Any | None = None) -> None:
        if storage_options is not None:
            raise TypeError(f"{type(self).__name__} does not take storage_options")
        fs = get_filesystem(path)
        if "file" not in (fs.protocol if isinstance(fs.protocol, tuple) else (fs.protocol,)):
            return super().save_checkpoint(checkpoint, path)  # remote storage: fsspec's transaction
        buffer = io.BytesIO()
        torch.save(checkpoint, buffer)
        # temp file beside the target, fsync, os.replace, fsync of the folder; a full disk raises
        # DiskFullError naming the file and its size, and leaves the previous checkpoint in place
        atomic_write_bytes(path, buffer.getbuffer(), what="checkpoint")

    def load_checkpoint(self, path: Any, map_location: Any | None = lambda storage, loc: storage, weights_only: bool | None = None) -> dict[str, Any]:
        if weights_only is False:
            raise CheckpointError(f"{path}: mvmr loads checkpoints with weights_only=True only")
        try:
            return super().load_checkpoint(path, map_location=map_location, weights_only=True)
        except FileNotFoundError:
            raise
        except Exception as err:  # unpickling refused or a corrupt file
            raise CheckpointError(f"cannot load checkpoint {path} with weights_only=True: {err}") from err


class LastCheckpoint(L.Callback):
    """Keeps exactly one resume point, ``checkpoints/last.ckpt``, always the newest state.

    It is rewritten (atomically, by the trainer's checkpoint IO) every ``every_n_steps`` optimiser
    steps when set, at the end of every epoch, and whenever :meth:`save` is called (e.g. on a
    preemption signal). Numbered checkpoints are Lightning's ``ModelCheckpoint``'s job; having one
    writer of ``last.ckpt`` means no ``last-v1.ckpt`` beside it and no older state written last.
    """

    def __init__(self, path: str | Path, *, every_n_steps: int | None = None) -> None:
        self.path = Path(path)
        self.every_n_steps = every_n_steps
        self._saved_step: int | None = None

    def save(self, trainer: L.Trainer) -> None:
        """Write ``last.ckpt`` now (every rank must call it: the save is collective under DDP)."""
        trainer.save_checkpoint(self.path)
        self._saved_step = trainer.global_step

    def on_train_batch_end(self, trainer: L.Trainer, pl_module: L.LightningModule, outputs: Any, batch: Any,
                           batch_idx: int) -> None:
        # global_step counts optimiser steps: under gradient accumulation it stays put for several
        # batches, so save once, right after the step that reaches the multiple
        step, n = trainer.global_step, self.every_n_steps
        if n and step > 0 and step % n == 0 and step != self._saved_step:
            self.save(trainer)

    def on_train_epoch_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self.save(trainer)


class PlotCallback(L.Callback):
    """At the end of fitting (and every ``every_n_epochs`` epochs), write the run's PNG plots."""

    def __init__(self, run_dir: str | Path, *, every_n_epochs: int = 0, writer: Callable[[Path], Any] | None = None) -> None:
        self.run_dir = Path(run_dir)
        self.every_n_epochs = every_n_epochs
        self._writer = writer

    def _write(self, trainer: L.Trainer) -> None:
        if not trainer.is_global_zero:
            return
        for logger in trainer.loggers:
            logger.save()
        from mvmr.training.plots import write_plots

        (self._writer or write_plots)(self.run_dir)

    def on_train_epoch_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if self.every_n_epochs and (trainer.current_epoch + 1) % self.every_n_epochs == 0:
            self._write(trainer)

    def on_fit_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self._write(trainer)
