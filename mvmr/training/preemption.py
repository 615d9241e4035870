"""Preemption: on SIGTERM, or SLURM's SIGUSR1 warning, write the resume checkpoint and exit cleanly.

:class:`Preemption`'s handler only records the signal. At the end of the batch that completes the
optimiser step, the ranks agree on it (a max-reduce under DDP, so all stop at the same step) and
:class:`~mvmr.training.callbacks.LastCheckpoint` writes ``last.ckpt``, which resumes at the next
batch to the same weights as an uninterrupted run. Under SLURM, on SIGUSR1, Lightning's handler
(:func:`slurm_environment`) requeues the job and the ``hpc_ckpt_N.ckpt`` it writes is removed, so
``last.ckpt`` stays the one resume point. At the next hook (after the batch's metrics are logged)
:class:`~mvmr.errors.Preempted` is raised: a ``SystemExit`` with status 128 + the signal number.

DataLoader workers ignore both signals (:class:`IgnorePreemptionSignals`): SLURM signals every
process, and a worker that died would stop the run before the checkpoint. A signal before training
starts ends the process as usual; one during validation is acted on at the next training batch.
"""

from __future__ import annotations

import signal
import threading
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

import lightning as L
from lightning.fabric.plugins.environments import SLURMEnvironment

from mvmr.errors import Preempted
from mvmr.training.callbacks import LastCheckpoint, max_over_ranks

__all__ = ["PREEMPTION_SIGNALS", "Preemption", "IgnorePreemptionSignals", "slurm_environment"]

#: The signals that mean "save and stop": termination, and SLURM's warning before the time limit.
PREEMPTION_SIGNALS: tuple[signal.Signals, ...] = (signal.SIGTERM, signal.SIGUSR1)


def slurm_environment() -> SLURMEnvironment | None:
    """Lightning's SLURM environment, requeueing on SIGUSR1, when SLURM started this process; else None."""
    if not SLURMEnvironment.detect():
        return None
    return SLURMEnvironment(auto_requeue=True, requeue_signal=signal.SIGUSR1)


class IgnorePreemptionSignals:
    """A DataLoader ``worker_init_fn`` that makes the worker ignore :data:`PREEMPTION_SIGNALS` (the
    main process handles them and shuts the workers down), then calls ``then(worker_id)``."""

    def __init__(self, then: Callable[[int], Any] | None = None) -> None:
        self.then = then

    def __call__(self, worker_id: int) -> None:
        for sig in PREEMPTION_SIGNALS:
            signal.signal(sig, signal.SIG_IGN)
        if self.then is not None:
            self.then(worker_id)


class Preemption(L.Callback):
    """Checkpoint (through ``last``, the run's one writer of ``last.ckpt``) and stop at the end of
    the batch in which one of :data:`PREEMPTION_SIGNALS` arrived."""

    def __init__(self, last: LastCheckpoint) -> None:
        self.last = last
        self.received: int | None = None  # the first signal since training started
        self._previous: dict[signal.Signals, Any] = {}
        self._step_seen = 0
        self._pending: Preempted | None = None

    def _handle(self, signum: int, frame: Any) -> None:
        if self.received is None:  # only a flag: the work happens at the next batch boundary
            self.received = int(signum)

    def _install(self) -> None:
        if threading.current_thread() is not threading.main_thread():
            return  # Python delivers signals to the main thread only
        for sig in PREEMPTION_SIGNALS:
            self._previous[sig] = signal.getsignal(sig)  # Lightning's, installed by now
            signal.signal(sig, self._handle)

    def _restore(self) -> None:
        for sig, handler in self._previous.items():
            if handler is not None:
                signal.signal(sig, handler)
        self._previous = {}

    def on_train_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self.received, self._step_seen, self._pending = None, trainer.global_step, None
        self._install()

    def on_train_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self._restore()

    def on_exception(self, trainer: L.Trainer, pl_module: L.LightningModule, exception: BaseException) -> None:
        self._restore()

    def on_train_batch_end(
        self, trainer: L.Trainer, pl_module: L.LightningModule, outputs: Any, batch: Any, batch_idx: int
    ) -> None:
        stepped = trainer.global_step != self._step_seen  # False inside an accumulation window
        self._step_seen = trainer.global_step
        if self._pending is not None:
            return
        # the signal any rank received (the highest number if several), the same on every rank
        signum = max_over_ranks(trainer, self.received or 0, trainer.strategy.root_device) or None
        if signum is None or not stepped:
            return
        self.last.save(trainer)  # collective under DDP: every rank is here, at the same step
        requeued = self._requeue(trainer, signum)
        name = signal.Signals(signum).name
        message = (
            f"received {name}: stopped at optimiser step {trainer.global_step} (epoch {trainer.current_epoch}, "
            f"batch {batch_idx}) after writing the resume checkpoint {self.last.path}"
            f"{'; the SLURM job was requeued' if requeued else ''}. Run the same command again "
            f"(--resume auto) to continue from there"
        )
        # raised at the next hook, once Lightning has logged this batch's metrics
        self._pending = Preempted(message, signum=signum, checkpoint=str(self.last.path), step=trainer.global_step)

    def _raise_pending(self, trainer: L.Trainer) -> None:
        if self._pending is None:
            return
        pending, self._pending = self._pending, None
        if trainer.is_global_zero:
            warnings.warn(pending.message, stacklevel=3)
        self._restore()
        raise pending

    def on_train_batch_start(
        self, trainer: L.Trainer, pl_module: L.LightningModule, batch: Any, batch_idx: int
    ) -> None:
        self._raise_pending(trainer)

    def on_validation_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self._raise_pending(trainer)

    def on_train_epoch_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self._raise_pending(trainer)  # after LastCheckpoint's and ModelCheckpoint's saves of the same state

    def _requeue(self, trainer: L.Trainer, signum: int) -> bool:
        """Under SLURM with auto-requeue and on its requeue signal: run Lightning's handler (it requeues
        the job), then remove the duplicate ``hpc_ckpt_*.ckpt`` it writes. True if it ran."""
        env = trainer._accelerator_connector.cluster_environment
        handler = self._previous.get(signal.Signals(signum))
        if not (
            isinstance(env, SLURMEnvironment)
            and env.auto_requeue
            and signum == env.requeue_signal
            and callable(handler)
        ):
            return False
        root = Path(trainer.default_root_dir)
        before = set(root.glob("hpc_ckpt_*.ckpt"))
        handler(signum, None)  # Lightning: finalise the loggers, save hpc_ckpt_N.ckpt, scontrol requeue
        if trainer.is_global_zero:
            for path in set(root.glob("hpc_ckpt_*.ckpt")) - before:
                path.unlink(missing_ok=True)
        return True
