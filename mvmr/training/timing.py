"""Step timing through the real trainer path: what one optimiser step of a config costs."""

from __future__ import annotations

import statistics
import tempfile
import time
from dataclasses import replace
from pathlib import Path
from typing import Any

import lightning as L
import torch
from torch import nn

from mvmr.config import Config, validate
from mvmr.errors import ConfigError
from mvmr.sources import CachedSource
from mvmr.training.build import PretrainData, build_data, build_module
from mvmr.training.trainer import PretrainDataModule, build_trainer

__all__ = ["StepTimer", "time_steps"]


class StepTimer(L.Callback):
    """Wall time of every training batch from its start to its end (``seconds``, data loading
    excluded) and from one batch's end to the next's (``intervals``, data loading included)."""

    def __init__(self) -> None:
        self.seconds: list[float] = []
        self.intervals: list[float] = []
        self._start = 0.0
        self._last_end: float | None = None

    @staticmethod
    def _sync(pl_module: L.LightningModule) -> None:
        if pl_module.device.type == "cuda":
            torch.cuda.synchronize(pl_module.device)

    def on_train_batch_start(
        self, trainer: L.Trainer, pl_module: L.LightningModule, batch: Any, batch_idx: int
    ) -> None:
        self._sync(pl_module)
        self._start = time.perf_counter()

    def on_train_batch_end(
        self, trainer: L.Trainer, pl_module: L.LightningModule, outputs: Any, batch: Any, batch_idx: int
    ) -> None:
        self._sync(pl_module)
        now = time.perf_counter()
        self.seconds.append(now - self._start)
        if self._last_end is not None:
            self.intervals.append(now - self._last_end)
        self._last_end = now


def time_steps(
    config: Config,
    *,
    steps: int = 3,
    warmup: int = 1,
    data: PretrainData | None = None,
    model: nn.Module | None = None,
    feature_dim: int | None = None,
) -> dict[str, Any]:
    """Time ``steps`` training steps (after ``warmup``) of ``config`` through the real module and
    trainer (one device, no logging, a temporary folder; missing caches are built before timing).

    Returns ``{"seconds" (median step), "all" (every timed step), "interval" (median time between
    step ends, data loading included), "images_per_s", "batch_size", "cache_build_seconds"
    (per cached source; None when it already existed)}``.
    """
    total = warmup + steps
    t = replace(
        config.trainer,
        max_steps=total,
        max_epochs=max(config.trainer.max_epochs, total),
        devices=1,
        num_nodes=1,
        strategy="auto",
        progress_bar=False,
        accumulate_grad_batches=1,
        limit_train_batches=1.0,
        limit_val_batches=0,
    )
    cfg = validate(
        replace(
            config,
            trainer=t,
            model=replace(config.model, sync_batchnorm=False),
            optim=replace(config.optim, warmup_epochs=0.0),
        )
    )
    data = data if data is not None else build_data(cfg)
    L.seed_everything(cfg.trainer.seed, workers=True, verbose=False)
    module = build_module(cfg, data, model, feature_dim)
    timer = StepTimer()
    with tempfile.TemporaryDirectory(prefix="mvmr-timing-") as tmp:
        trainer = build_trainer(
            cfg, Path(tmp), [timer], logger=False, enable_model_summary=False, enable_progress_bar=False
        )
        trainer.fit(module, datamodule=PretrainDataModule(data, cfg))
    timed = timer.seconds[warmup:]
    if len(timed) < steps:
        raise ConfigError(
            f"only {len(timer.seconds)} training batches ran (wanted {total}); the data are too small for the timing"
        )
    median = statistics.median(timed)
    intervals = timer.intervals[warmup:]
    return {
        "seconds": median,
        "all": timed,
        "interval": statistics.median(intervals) if intervals else median,
        "images_per_s": cfg.data.batch_size / median,
        "batch_size": cfg.data.batch_size,
        "cache_build_seconds": {
            name: s.build_seconds
            for s in [*getattr(module.method, "sources", []), *getattr(module.method, "augmented_sources", [])]
            if isinstance(s, CachedSource)
            for name in s.names
        },
    }
