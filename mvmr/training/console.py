"""What a run tells the person who started it (rank zero only, through ``tqdm.write`` so that a
progress bar is not broken): its plan, an ETA after the first steps, and where the results are."""

from __future__ import annotations

import datetime as dt
import math
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import IO, Any

import lightning as L
from tqdm import tqdm

from mvmr.config import Config
from mvmr.methods import get_method
from mvmr.sources import CachedSource, LiveSource, PrecomputedSource
from mvmr.training.build import PretrainData
from mvmr.training.loggers import logger_location

__all__ = ["ETA_AFTER_STEPS", "RunConsole", "describe_sources"]

#: The ETA is printed once this many optimiser steps of the session have run.
ETA_AFTER_STEPS = 3


def describe_sources(
    sources: Sequence[Any], augmented: Sequence[Any] = (), objectives: dict[str, str] | None = None
) -> str:
    """The targets of a run's loss in one line: each source's names, how they are computed, of which
    view, and (where it is not the paper's dCor) the objective."""
    parts = []
    for view, group in (("clean", sources), ("augmented", augmented)):
        for source in group:
            names = ", ".join(
                f"{n} [{objectives[n]}]" if objectives and objectives.get(n, "dcor") != "dcor" else n
                for n in source.names
            )
            of = " of the augmented view" if view == "augmented" else ""
            if isinstance(source, CachedSource):
                stored = " (stored views)" if view == "augmented" else ""
                parts.append(f"{names}{of} (cached in {source.root}{stored})")
            elif isinstance(source, LiveSource):
                parts.append(f"{names}{of} (computed every step)")
            elif isinstance(source, PrecomputedSource):
                parts.append(f"{names} (precomputed embeddings)")
            else:
                parts.append(f"{names}{of} ({type(source).__name__})")
    return "; ".join(parts) or "none (the method needs no representations)"


def _count(n: float) -> str:
    return f"{n / 1e6:.1f}M" if n >= 1e6 else f"{n / 1e3:.1f}k" if n >= 1e3 else str(int(n))


class RunConsole(L.Callback):
    """Prints a run's plan at the start, an ETA after the first steps (the first step, which warms
    up caches and kernels, is left out of the rate), and its results at the end. ``data`` gives the
    sizes of the training and probe sets; ``out`` defaults to standard output."""

    def __init__(
        self,
        config: Config,
        data: PretrainData,
        run_dir: str | Path,
        *,
        resumed_from: str | None = None,
        out: IO[str] | None = None,
    ) -> None:
        self.config, self.data, self.run_dir = config, data, Path(run_dir)
        self.resumed_from, self.out = resumed_from, out
        self._first: tuple[int, float] | None = None  # (global step, time) after the session's first step
        self._eta_done = False
        self._trained = False  # on_train_start ran: Lightning skips it when a resumed run has no step left

    def _print(self, trainer: L.Trainer, text: str) -> None:
        if trainer.is_global_zero:
            tqdm.write(text, file=self.out or sys.stdout)

    def plan(self, trainer: L.Trainer, pl_module: L.LightningModule) -> str:
        """The run's plan, as printed at the start."""
        c, d = self.config, self.config.data
        where = d.name if d.kind == "hf" else d.root
        probe = f" (+{len(self.data.val_indices)} held out for the online probe)" if len(self.data.val_indices) else ""
        model = getattr(pl_module, "model", None)
        params = sum(p.numel() for p in model.parameters()) if model is not None else 0
        method = get_method(c.method)
        accelerator = type(trainer.accelerator).__name__.replace("Accelerator", "").lower()
        total = trainer.estimated_stepping_batches
        steps = f"{int(total)} optimiser steps" if math.isfinite(total) else "until stopped"
        resumed = (
            f", resuming at epoch {trainer.current_epoch}, step {trainer.global_step} from {self.resumed_from}"
            if self.resumed_from
            else ""
        )
        lines = [
            f"mvmr: training {c.name} into {self.run_dir}",
            f"  data     {d.kind} {where} split {d.split}: {len(self.data.train_indices)} training images{probe}, "
            f"{d.image_size} px, {self.data.channels} channel(s), batch {d.batch_size} per process",
            f"  model    {c.model.encoder} + projector {c.model.projector or 'none'} ({_count(params)} parameters)",
            f"  method   {c.method}: {method.description}" if method.description else f"  method   {c.method}",
        ]
        if method.uses_targets:
            own = getattr(pl_module, "method", None)  # the method's feature sources (MV-MR's fixed targets)
            targets = describe_sources(
                list(getattr(own, "sources", [])),
                list(getattr(own, "augmented_sources", [])),
                getattr(own, "objectives", None),
            )
            lines.append(f"  targets  {targets}")
        lines += [
            f"  devices  {accelerator} x {trainer.num_devices} on {trainer.num_nodes} node(s) = {trainer.world_size} "
            f"process(es), precision {trainer.precision}",
            f"  length   {c.trainer.max_epochs} epoch(s) of {trainer.num_training_batches} batches, {steps}{resumed}",
        ]
        return "\n".join(lines)

    def on_train_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self._trained = True
        self._print(trainer, self.plan(trainer, pl_module))

    def on_train_batch_end(
        self, trainer: L.Trainer, pl_module: L.LightningModule, outputs: Any, batch: Any, batch_idx: int
    ) -> None:
        if self._eta_done:
            return
        step, now = trainer.global_step, time.perf_counter()
        if self._first is None:
            if step > 0:
                self._first = (step, now)
            return
        done = step - self._first[0]
        if done + 1 < ETA_AFTER_STEPS or done <= 0:
            return
        self._eta_done = True
        per_step = (now - self._first[1]) / done
        total = trainer.estimated_stepping_batches
        if not math.isfinite(total):
            self._print(trainer, f"mvmr: {per_step:.2f} s per optimiser step")
            return
        if total <= step:  # nothing left to estimate
            return
        left = (total - step) * per_step
        end = (dt.datetime.now() + dt.timedelta(seconds=left)).strftime("%H:%M")
        self._print(
            trainer,
            f"mvmr: ETA {dt.timedelta(seconds=int(round(left)))} for the {int(total) - step} steps "
            f"left of {int(total)} ({per_step:.2f} s per step, done around {end})",
        )

    def results(self, trainer: L.Trainer) -> str:
        """Where the run's results are, as printed at the end."""
        lines = [
            f"mvmr: results in {self.run_dir}",
            f"  checkpoint  {self.run_dir / 'checkpoints' / 'last.ckpt'}",
            f"  config      {self.run_dir / 'config.yaml'}",
        ]
        if (self.run_dir / "plots").is_dir():
            lines.append(f"  plots       {self.run_dir / 'plots'}")
        for logger in trainer.loggers:
            name, _, where = logger_location(logger).partition(": ")
            lines.append(f"  {name:<11s} {where}")
        return "\n".join(lines)

    def on_fit_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if not self._trained and self.resumed_from:
            total = trainer.estimated_stepping_batches
            of = f" of {int(total)}" if math.isfinite(total) else ""
            self._print(
                trainer,
                f"mvmr: {self.config.name} is finished: {self.resumed_from} is at step "
                f"{trainer.global_step}{of} (epoch {trainer.current_epoch}); nothing was trained",
            )
        self._print(trainer, self.results(trainer))
