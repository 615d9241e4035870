"""``pretrain(config) -> run_dir``: the run's data, module and Lightning Trainer, from a config.

A run folder holds ``config.yaml`` (the resolved configuration), ``checkpoints/last.ckpt`` (the
resume point, rewritten every epoch and every N steps when asked), ``checkpoints/epochNNNN.ckpt``
(every ``trainer.checkpoint_every_n_epochs``), the loggers' folders (``csv/version_K/``,
``tensorboard/``, ``wandb/``, ``mlruns/``), ``plots/*.png`` and, when distilling, ``teacher-cache/``.

``resume="auto"`` continues from ``last.ckpt``, or from the newest checkpoint that loads
(:mod:`mvmr.training.resume`), at the next batch with the same data order and augmentations
(:mod:`mvmr.training.sampling`): the same weights as an uninterrupted run. On SIGTERM or SIGUSR1
the run writes ``last.ckpt`` at the end of the batch and exits (:mod:`mvmr.training.preemption`).
"""

from __future__ import annotations

import os
import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import lightning as L
import torch
from lightning.pytorch.callbacks import ModelCheckpoint, TQDMProgressBar
from torch import nn

from mvmr.config import Config, save_config, validate
from mvmr.data import DatasetSubset, make_loader
from mvmr.errors import ConfigError
from mvmr.training.build import PretrainData, build_data, build_module
from mvmr.training.callbacks import AtomicCheckpointIO, LastCheckpoint, NonFiniteGuard, PlotCallback
from mvmr.training.console import RunConsole
from mvmr.training.loggers import CloseLoggers, build_loggers
from mvmr.training.preemption import IgnorePreemptionSignals, Preemption, slurm_environment
from mvmr.training.quiet import notices_hidden
from mvmr.training.resume import find_resume_checkpoint
from mvmr.training.sampling import EpochBatchSampler, EpochItems, ResumableLoader

__all__ = ["PretrainDataModule", "build_trainer", "find_resume_checkpoint", "pretrain"]


class PretrainDataModule(L.LightningDataModule):
    """The two-view training loader (resuming mid-epoch) and the probe's validation loader of a
    :class:`PretrainData`, built at fit time when the rank and world size are known."""

    def __init__(self, data: PretrainData, config: Config) -> None:
        super().__init__()
        self.data, self.config = data, config

    def _attached_trainer(self) -> L.Trainer:
        if self.trainer is None:
            raise RuntimeError("PretrainDataModule's loaders are built by the Trainer it is attached to (trainer.fit)")
        return self.trainer

    def train_dataloader(self) -> ResumableLoader:
        trainer, d = self._attached_trainer(), self.config.data
        sampler = EpochBatchSampler(
            self.data.train_indices,
            d.batch_size,
            seed=self.config.trainer.seed,
            rank=trainer.global_rank,
            world_size=trainer.world_size,
        )
        loader = ResumableLoader(
            EpochItems(self.data.views),
            sampler,
            num_workers=d.num_workers,
            persistent_workers=d.num_workers > 0,
            pin_memory=torch.cuda.is_available(),
            worker_init_fn=IgnorePreemptionSignals() if d.num_workers > 0 else None,
        )

        def progress() -> tuple[int, int]:
            # Lightning annotates batch_progress.current as a _ReadyCompletedTracker; it is a _ProcessedTracker
            done = trainer.fit_loop.epoch_loop.batch_progress.current.processed  # type: ignore[attr-defined]
            return done, int(trainer.num_training_batches)

        loader.progress = progress
        return loader

    def val_dataloader(self) -> Any:
        val = self.data.val_indices
        if len(val) == 0:
            return []
        trainer, d = self._attached_trainer(), self.config.data
        shard = val[trainer.global_rank :: trainer.world_size] if len(val) >= trainer.world_size else val
        loader = make_loader(
            DatasetSubset(self.data.base, shard), d.batch_size, shuffle=False, num_workers=min(d.num_workers, 2)
        )
        if loader.num_workers > 0:  # the main process handles SIGTERM/SIGUSR1 (see mvmr.training.preemption)
            loader.worker_init_fn = IgnorePreemptionSignals(loader.worker_init_fn)
        return loader


def build_trainer(config: Config, run_dir: Path, callbacks: Sequence[L.Callback] = (), **overrides: Any) -> L.Trainer:
    """The Lightning Trainer of ``config`` writing into ``run_dir``; ``overrides`` replace its arguments."""
    t = config.trainer
    ckpt_dir = run_dir / "checkpoints"
    last = LastCheckpoint(ckpt_dir / "last.ckpt", every_n_steps=t.checkpoint_every_n_steps)
    cbs: list[L.Callback] = [
        NonFiniteGuard(),
        # numbered checkpoints only; last.ckpt has one writer (LastCheckpoint). No version counter:
        # an epoch re-saved after a resume replaces its file instead of adding epochNNNN-v1.ckpt
        ModelCheckpoint(
            dirpath=ckpt_dir,
            filename="epoch{epoch:04d}",
            auto_insert_metric_name=False,
            every_n_epochs=t.checkpoint_every_n_epochs,
            save_top_k=-1,
            save_last=False,
            enable_version_counter=False,
        ),
        last,
        Preemption(last),  # after LastCheckpoint: SIGTERM/SIGUSR1 -> last.ckpt at the batch's end, then exit
        PlotCallback(run_dir),
    ]
    if t.progress_bar:
        cbs.append(TQDMProgressBar(refresh_rate=max(1, min(20, t.log_every_n_steps))))
    if "wandb" in t.loggers:
        cbs.append(CloseLoggers())
    cbs.extend(callbacks)
    if config.model.sync_batchnorm and t.accelerator == "cpu":
        raise ConfigError("model.sync_batchnorm: PyTorch's SyncBatchNorm needs GPUs; set it to false on the CPU")
    kwargs: dict[str, Any] = dict(
        default_root_dir=str(run_dir),
        max_epochs=t.max_epochs,
        max_steps=t.max_steps,
        accelerator=t.accelerator,
        devices=t.devices,
        num_nodes=t.num_nodes,
        strategy=t.strategy,
        precision=t.precision,
        accumulate_grad_batches=t.accumulate_grad_batches,
        gradient_clip_val=t.gradient_clip_val,
        log_every_n_steps=t.log_every_n_steps,
        limit_train_batches=t.limit_train_batches,
        limit_val_batches=t.limit_val_batches,
        check_val_every_n_epoch=t.check_val_every_n_epoch,
        deterministic=t.deterministic,
        sync_batchnorm=config.model.sync_batchnorm,
        use_distributed_sampler=False,  # our sampler shards by rank itself
        num_sanity_val_steps=0,
        enable_progress_bar=t.progress_bar,
        enable_model_summary=t.progress_bar and not notices_hidden(),  # the run's plan gives the size
        callbacks=cbs,
        plugins=[AtomicCheckpointIO(), *filter(None, [slurm_environment()])],
    )
    if "logger" not in overrides:
        kwargs["logger"] = build_loggers(t.loggers, run_dir, run_name=config.name) or False
    kwargs.update(overrides)
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=".*GPU available but not used.*")
        return L.Trainer(**kwargs)


def pretrain(
    config: Config,
    *,
    resume: str | os.PathLike[str] | None = "auto",
    model: nn.Module | None = None,
    feature_dim: int | None = None,
    callbacks: Sequence[L.Callback] = (),
    trainer_overrides: dict[str, Any] | None = None,
) -> Path:
    """Pretrain with the configured method (MV-MR by default) and return the run folder.

    Args:
        config: the run's configuration (validated again here).
        resume: ``"auto"`` (continue from ``<run>/checkpoints/last.ckpt`` if present), a
            checkpoint path, or None to start afresh.
        model: optional encoder+projector to train instead of the configured one (an
            :class:`~mvmr.models.MVMRModel`); give ``feature_dim`` unless its encoder was made by
            ``build_encoder``.
        callbacks: extra Lightning callbacks.
        trainer_overrides: extra ``lightning.Trainer`` arguments (for tests and experiments).
    """
    config = validate(config)
    run_dir = Path(config.output_dir).expanduser()
    run_dir.mkdir(parents=True, exist_ok=True)
    L.seed_everything(config.trainer.seed, workers=True, verbose=False)
    ckpt = find_resume_checkpoint(run_dir, resume)
    data = build_data(config)
    module = build_module(config, data, model, feature_dim)
    console = RunConsole(config, data, run_dir, resumed_from=ckpt)
    trainer = build_trainer(config, run_dir, [*callbacks, console], **(trainer_overrides or {}))
    if trainer.is_global_zero:
        save_config(config, run_dir / "config.yaml")
    trainer.fit(module, datamodule=PretrainDataModule(data, config), ckpt_path=ckpt, weights_only=True)
    return run_dir
