"""``pretrain(config) -> run_dir``: data, model, MV-MR module and a Lightning Trainer, from a config.

A run folder holds::

    config.yaml              the resolved configuration (every default written out)
    checkpoints/last.ckpt    rewritten every epoch (and every N steps when asked); resume point
    checkpoints/epochNNNN.ckpt   kept every ``trainer.checkpoint_every_n_epochs`` epochs
    csv/version_K/metrics.csv, tensorboard/version_K/   logs, one version per session
    plots/*.png              loss and distance-correlation curves, written at the end
    teacher-cache/           distillation: the teacher's embeddings of the clean images, filled once
                             (see :mod:`mvmr.training.distill`; ``teacher.cache_dir`` moves it)

``resume="auto"`` continues from ``checkpoints/last.ckpt`` when it exists. A run interrupted
mid-epoch resumes at the next batch (see :mod:`mvmr.training.sampling`) with the same data order
and augmentations, so it ends with the same weights as an uninterrupted run.
"""

from __future__ import annotations

import os
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Sequence

import lightning as L
import numpy as np
import torch
from torch import nn

from mvmr.config import Config, save_config, to_dict, validate
from mvmr.errors import CheckpointError, ConfigError, DataError
from mvmr.training.callbacks import AtomicCheckpointIO, NonFiniteGuard, PlotCallback
from mvmr.training.module import MVMRModule
from mvmr.training.sampling import EpochBatchSampler, EpochItems, ResumableLoader

__all__ = ["PretrainData", "PretrainDataModule", "build_data", "build_representations", "build_loss", "build_module",
           "build_trainer", "find_resume_checkpoint", "pretrain"]


# --------------------------------------------------------------------------------------------
# data
# --------------------------------------------------------------------------------------------
@dataclass
class PretrainData:
    """The datasets of a run: ``base`` (clean images at image size), the two-view training items,
    the training indices (into ``base``) and the held-out labelled validation indices."""

    base: Any
    views: Any
    train_indices: np.ndarray
    val_indices: np.ndarray
    num_classes: int | None
    channels: int


def build_data(config: Config) -> PretrainData:
    from mvmr.data import DatasetSubset, TwoViews, build_dataset, split_train_val
    from mvmr.transforms.augmentation import PaperAugmentation

    d, seed = config.data, config.trainer.seed
    base = build_dataset(d.kind, d.root, split=d.split, size=d.image_size, download=d.download,
                         skip_corrupt=d.skip_corrupt, channels=d.channels)
    if d.subset is not None and d.subset < len(base):
        rng = np.random.default_rng(seed)
        base = DatasetSubset(base, np.sort(rng.choice(len(base), size=d.subset, replace=False)))
    n = len(base)
    labels = getattr(base, "labels", None)
    labels = np.asarray(labels, dtype=np.int64) if labels is not None else np.full(n, -1, dtype=np.int64)
    classes = list(getattr(base, "classes", []) or [])
    num_classes = config.probe.num_classes or (len(classes) if classes else None)
    if num_classes is None and (labels >= 0).any():
        num_classes = int(labels.max()) + 1
    train_idx, val_idx = np.arange(n, dtype=np.int64), np.empty(0, dtype=np.int64)
    labelled = np.flatnonzero(labels >= 0)
    if config.probe.enabled and num_classes and d.val_fraction > 0 and len(labelled) >= 2:
        # hold the probe's validation images out of the LABELLED training images (never the test set)
        try:
            _, val_sub = split_train_val(DatasetSubset(base, labelled), d.val_fraction, seed)
        except DataError as err:  # too few labelled images for even one per class
            warnings.warn(f"no validation images for the online probe ({err}); raise data.val_fraction", stacklevel=2)
        else:
            val_idx = labelled[val_sub.indices]
            train_idx = np.setdiff1d(train_idx, val_idx, assume_unique=True)
    if len(train_idx) < d.batch_size:
        raise DataError(
            f"data.batch_size={d.batch_size} is larger than the {len(train_idx)} training images of "
            f"{d.kind} {d.root!r} split {d.split!r}; lower data.batch_size"
        )
    a = d.augmentation
    augmentation = PaperAugmentation(d.image_size, crop=a.crop, flip=a.flip, color=a.color,
                                     grayscale=a.grayscale, blur=a.blur)
    views = TwoViews(base, size=d.image_size, augmentation=augmentation, seed=seed)
    channels = int(base[0][0].shape[0])
    return PretrainData(base, views, train_idx, val_idx, num_classes if num_classes else None, channels)


class PretrainDataModule(L.LightningDataModule):
    """The two-view training loader (and the probe's validation loader) of a :class:`PretrainData`.

    Builds the loaders at fit time, when the process's rank and the world size are known; the
    training loader resumes mid-epoch from a checkpoint. Any LightningModule that takes
    ``(views, index)`` batches can train on it (MV-MR, distillation, the peer methods).
    """

    def __init__(self, data: PretrainData, config: Config) -> None:
        super().__init__()
        self.data, self.config = data, config

    def train_dataloader(self) -> ResumableLoader:
        trainer, d = self.trainer, self.config.data
        sampler = EpochBatchSampler(self.data.train_indices, d.batch_size, seed=self.config.trainer.seed,
                                    rank=trainer.global_rank, world_size=trainer.world_size)
        loader = ResumableLoader(EpochItems(self.data.views), sampler, num_workers=d.num_workers,
                                 persistent_workers=d.num_workers > 0, pin_memory=torch.cuda.is_available())

        def progress() -> tuple[int, int]:
            done = trainer.fit_loop.epoch_loop.batch_progress.current.processed
            return done, int(trainer.num_training_batches)

        loader.progress = progress
        return loader

    def val_dataloader(self) -> Any:
        from mvmr.data import DatasetSubset, make_loader

        val = self.data.val_indices
        if len(val) == 0:
            return []
        trainer, d = self.trainer, self.config.data
        shard = val[trainer.global_rank :: trainer.world_size] if len(val) >= trainer.world_size else val
        return make_loader(DatasetSubset(self.data.base, shard), d.batch_size, shuffle=False,
                           num_workers=min(d.num_workers, 2))


# --------------------------------------------------------------------------------------------
# representations, loss, module
# --------------------------------------------------------------------------------------------
def build_representations(config: Config) -> dict[str, nn.Module]:
    from mvmr.representations import build

    reps = {}
    for i, spec in enumerate(config.representations.items):
        try:
            reps[spec.name] = build(spec.name, **spec.kwargs)
        except (TypeError, ValueError) as err:
            raise ConfigError(f"representations.items[{i}] ({spec.name}): {err}") from err
    return reps


def effective_betas(config: Config) -> float | dict[str, float]:
    """beta_k = loss.beta (or loss.beta[name]) x the item's weight, and teacher.beta for the
    teacher; a float when all are equal."""
    beta = config.loss.beta
    items = config.representations.items
    t = config.teacher
    teacher_plain = t.spec is None or (not isinstance(beta, dict) and t.beta == beta)
    if not isinstance(beta, dict) and all(s.weight == 1.0 for s in items) and teacher_plain:
        return float(beta)
    out = {s.name: (beta[s.name] if isinstance(beta, dict) else beta) * s.weight for s in items}
    if t.spec is not None:
        out[t.name] = float(t.beta)
    return out


def build_loss(config: Config) -> nn.Module:
    from mvmr.losses import MVMRLoss

    c = config.loss
    return MVMRLoss(lambda_=c.lambda_, mu=c.mu, alpha=c.alpha, beta=effective_betas(config), gamma=c.gamma,
                    eps=c.eps, l3=c.l3, squared=c.squared, mse=c.mse, gather_distributed=c.gather_distributed)


def _open_cache(config: Config, data: PretrainData, reps: dict[str, nn.Module]) -> tuple[Any, dict[str, nn.Module]]:
    """Split the representations into cached (deterministic, with a cache_dir) and fresh ones."""
    r = config.representations
    if r.cache_dir is None:
        return None, reps
    from mvmr.representations.cache import FeatureCache

    deterministic = {k: v for k, v in reps.items() if getattr(v, "deterministic", False)}
    fresh = {k: v for k, v in reps.items() if k not in deterministic}
    if not deterministic:
        return None, reps
    device = "cuda" if torch.cuda.is_available() and config.trainer.accelerator in ("auto", "gpu", "cuda") else "cpu"
    cache = FeatureCache.open_or_build(
        r.cache_dir, dataset=data.base, representations=deterministic, image_size=config.data.image_size,
        project_dim=r.project_dim, seed=config.trainer.seed, batch_size=max(64, config.data.batch_size),
        num_workers=config.data.num_workers, device=device,
        progress=config.trainer.progress_bar,
    )
    return cache, fresh


def build_module(config: Config, data: PretrainData, model: nn.Module | None = None,
                 feature_dim: int | None = None) -> MVMRModule:
    """The :class:`MVMRModule` of a config (``model`` replaces the configured encoder+projector)."""
    if model is None:
        from mvmr.models import build_model

        m = config.model
        if m.mean is not None and len(m.mean) != data.channels:
            raise ConfigError(f"model.mean: {len(m.mean)} values for {data.channels}-channel images")
        model = build_model(m.encoder, m.projector, small_images=m.small_images, in_chans=data.channels,
                            mean=m.mean, std=m.std)
    if feature_dim is None:
        spec = getattr(model, "spec", None)
        if spec is None:
            raise ConfigError("feature_dim is needed for a model whose encoder was not made by build_encoder")
        feature_dim = spec.feature_dim
    reps = build_representations(config)
    cache, fresh = _open_cache(config, data, reps)
    from mvmr.training.distill import build_teacher_target

    teacher = build_teacher_target(config, data.base)  # prepared (cache filled) in MVMRModule.setup
    return MVMRModule(
        model, build_loss(config), fresh, cache=cache, cached=None if cache is None else [n for n in reps if n not in fresh],
        order=[*reps, *([teacher.name] if teacher is not None else [])], teacher=teacher,
        feature_dim=feature_dim, optim=config.optim, probe=config.probe,
        num_classes=data.num_classes, batch_size=config.data.batch_size, seed=config.trainer.seed,
        hparams=to_dict(config),
    )


# --------------------------------------------------------------------------------------------
# trainer
# --------------------------------------------------------------------------------------------
def find_resume_checkpoint(run_dir: str | Path, resume: str | os.PathLike[str] | None) -> str | None:
    """``"auto"``: ``<run>/checkpoints/last.ckpt`` if it exists; ``None``/``"none"``: start afresh;
    otherwise the given checkpoint path (which must exist)."""
    if resume is None or str(resume).lower() in ("none", "never", "false", ""):
        return None
    if str(resume) == "auto":
        last = Path(run_dir) / "checkpoints" / "last.ckpt"
        return str(last) if last.is_file() else None
    path = Path(resume)
    if not path.is_file():
        raise CheckpointError(f"resume checkpoint not found: {path}")
    return str(path)


def build_trainer(config: Config, run_dir: Path, callbacks: Sequence[L.Callback] = (), **overrides: Any) -> L.Trainer:
    from lightning.pytorch.callbacks import ModelCheckpoint, TQDMProgressBar
    from lightning.pytorch.loggers import CSVLogger, TensorBoardLogger

    t = config.trainer
    ckpt_dir = run_dir / "checkpoints"
    cbs: list[L.Callback] = [
        NonFiniteGuard(),
        ModelCheckpoint(dirpath=ckpt_dir, filename="epoch{epoch:04d}", auto_insert_metric_name=False,
                        every_n_epochs=t.checkpoint_every_n_epochs, save_top_k=-1, save_last=True),
        PlotCallback(run_dir),
    ]
    if t.checkpoint_every_n_steps:
        cbs.append(ModelCheckpoint(dirpath=ckpt_dir, every_n_train_steps=t.checkpoint_every_n_steps,
                                   save_top_k=0, save_last=True))
    if t.progress_bar:
        cbs.append(TQDMProgressBar(refresh_rate=max(1, min(20, t.log_every_n_steps))))
    cbs.extend(callbacks)
    if config.model.sync_batchnorm and t.accelerator == "cpu":
        raise ConfigError("model.sync_batchnorm: PyTorch's SyncBatchNorm needs GPUs; set it to false on the CPU")
    kwargs: dict[str, Any] = dict(
        default_root_dir=str(run_dir),
        max_epochs=t.max_epochs, max_steps=t.max_steps, accelerator=t.accelerator, devices=t.devices,
        num_nodes=t.num_nodes, strategy=t.strategy, precision=t.precision,
        accumulate_grad_batches=t.accumulate_grad_batches, gradient_clip_val=t.gradient_clip_val,
        log_every_n_steps=t.log_every_n_steps, limit_train_batches=t.limit_train_batches,
        limit_val_batches=t.limit_val_batches, check_val_every_n_epoch=t.check_val_every_n_epoch,
        deterministic=t.deterministic, sync_batchnorm=config.model.sync_batchnorm,
        use_distributed_sampler=False,  # our sampler shards by rank itself
        num_sanity_val_steps=0, enable_progress_bar=t.progress_bar, enable_model_summary=t.progress_bar,
        logger=[CSVLogger(str(run_dir), name="csv"), TensorBoardLogger(str(run_dir), name="tensorboard")],
        callbacks=cbs, plugins=[AtomicCheckpointIO()],
    )
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
    """Pretrain with MV-MR as configured and return the run folder.

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
    trainer = build_trainer(config, run_dir, callbacks, **(trainer_overrides or {}))
    if trainer.is_global_zero:
        save_config(config, run_dir / "config.yaml")
    trainer.fit(module, datamodule=PretrainDataModule(data, config), ckpt_path=ckpt, weights_only=True)
    return run_dir
