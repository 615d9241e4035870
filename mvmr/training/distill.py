"""Label-free distillation (paper sec. 5.2): the frozen teacher as one more MV-MR representation.

Distillation is MV-MR with a teacher: the student is trained by the same module, trainer and
checkpoints as pretraining, with the term ``beta * (1 - dCor(z_aug, teacher(x)))`` added to L3
(log key ``dcor/<teacher.name>``). This module holds what is specific to the teacher:

- :class:`TeacherTarget`: where the teacher's embeddings of the clean view come from during
  training. The clean view is deterministic, so by default (``teacher.cache: true``) every
  training image is embedded ONCE into a memory-mapped :class:`~mvmr.representations.FeatureCache`
  (built by global rank 0 before the first step, with a progress bar; the other ranks wait and
  open it) and a step reads its rows by dataset index: a distillation step then costs about a
  student step. ``teacher.cache: false`` runs the teacher at every step (as the authors' code
  did). ``embeddings:<file.npy>`` specs are read by index directly.
- The teacher is never a registered submodule of the Lightning module: it is absent from the
  state dict and the checkpoints, the optimiser never sees its parameters, it has
  ``requires_grad=False`` and stays in eval mode (:class:`~mvmr.representations.teachers.Teacher`).
- :func:`time_distillation_steps`: the step time of the real trainer path with the cached
  teacher or the teacher run every step (used by the run report and ``benchmarks/distill_bench.py``).
"""

from __future__ import annotations

import statistics
import tempfile
import time
from dataclasses import replace
from pathlib import Path
from typing import Any, Callable, Literal

import lightning as L
import numpy as np
import torch
from torch import Tensor, nn

from mvmr.config import Config, TeacherConfig
from mvmr.errors import ConfigError

__all__ = ["TeacherTarget", "build_teacher_model", "build_teacher_target", "teacher_cache_dir",
           "time_distillation_steps", "StepTimer"]

Mode = Literal["cached", "live", "embeddings"]


def teacher_cache_dir(config: Config) -> Path:
    """``teacher.cache_dir``, or ``<output_dir>/teacher-cache``."""
    t = config.teacher
    return Path(t.cache_dir).expanduser() if t.cache_dir is not None else Path(config.output_dir).expanduser() / "teacher-cache"


def build_teacher_model(t: TeacherConfig) -> nn.Module:
    """The frozen :class:`~mvmr.representations.teachers.Teacher` of ``t`` (not for ``embeddings:`` specs)."""
    from mvmr.representations.teachers import build_teacher

    if t.spec is None:
        raise ConfigError("teacher.spec: no teacher is configured (set teacher.spec, e.g. efficientnet-lite0)")
    try:
        return build_teacher(t.spec, weights=t.weights, name=t.name, **t.options)
    except ConfigError as err:
        raise ConfigError(f"teacher ({t.spec}): {err}") from err


def _dataset_rows(dataset: Any) -> np.ndarray | None:
    """Row of each item in the full dataset when ``dataset`` is a subset of it (None: itself)."""
    from mvmr.data import DatasetSubset

    if isinstance(dataset, DatasetSubset):
        inner = _dataset_rows(dataset.dataset)
        return dataset.indices if inner is None else inner[dataset.indices]
    return None


def _full_length(dataset: Any) -> int:
    from mvmr.data import DatasetSubset

    while isinstance(dataset, DatasetSubset):
        dataset = dataset.dataset
    return len(dataset)


class TeacherTarget:
    """The teacher embeddings ``(B, D)`` of a training batch's clean views.

    Modes: ``"cached"`` (a FeatureCache filled once by :meth:`prepare`), ``"live"`` (the teacher
    runs on every batch) and ``"embeddings"`` (a precomputed ``.npy`` read by index). Not an
    ``nn.Module``: stored on the Lightning module as a plain attribute, it stays out of the state
    dict, the checkpoints and the optimiser.

    Args:
        name: the representation name (loss key ``dcor/<name>``).
        mode: see above.
        teacher: the frozen Teacher (cached and live modes).
        embeddings: a :class:`~mvmr.representations.teachers.PrecomputedEmbeddings` (embeddings mode).
        dataset: the clean training images, indexed like the batches' ``index`` (cached mode).
        image_size: their side (cached mode, recorded in the cache manifest).
        cache_dir: the FeatureCache directory (cached mode).
        rows: for the embeddings mode, the row of each dataset index in the ``.npy`` (when the
            run uses a subset of the dataset the file was computed for); None = the index itself.
        batch_size, num_workers, progress: settings of the cache build.
    """

    def __init__(
        self,
        name: str,
        mode: Mode,
        *,
        teacher: nn.Module | None = None,
        embeddings: Any | None = None,
        dataset: Any | None = None,
        image_size: int | None = None,
        cache_dir: str | Path | None = None,
        rows: np.ndarray | None = None,
        batch_size: int = 64,
        num_workers: int = 0,
        progress: bool = True,
    ) -> None:
        if mode not in ("cached", "live", "embeddings"):
            raise ValueError(f"mode must be 'cached', 'live' or 'embeddings', got {mode!r}")
        if mode in ("cached", "live") and teacher is None:
            raise ValueError(f"a {mode} teacher target needs the teacher model")
        if mode == "cached" and (dataset is None or image_size is None or cache_dir is None):
            raise ValueError("a cached teacher target needs dataset, image_size and cache_dir")
        if mode == "embeddings" and embeddings is None:
            raise ValueError("an embeddings teacher target needs the precomputed embeddings")
        self.name, self.mode = name, mode
        self.teacher = teacher
        self.dataset, self.image_size = dataset, image_size
        self.cache_dir = Path(cache_dir) if cache_dir is not None else None
        self.rows = None if rows is None else np.asarray(rows, dtype=np.int64)
        self.batch_size, self.num_workers, self.progress = int(batch_size), int(num_workers), progress
        self.source: Any = embeddings  # FeatureCache / PrecomputedEmbeddings once prepared
        #: seconds this process spent filling the cache (None: opened an existing one, or not cached)
        self.build_seconds: float | None = None

    # -- description ----------------------------------------------------------------------
    @property
    def names(self) -> list[str]:
        return [self.name]

    @property
    def num_parameters(self) -> int | None:
        """Parameters of the teacher's embedding network (None for precomputed embeddings)."""
        n = getattr(self.teacher, "num_parameters", None)
        if n is None and self.teacher is not None:
            n = sum(p.numel() for p in self.teacher.parameters())
        return None if n is None else int(n)

    @property
    def embed_dim(self) -> int | None:
        dim = getattr(self.teacher, "embed_dim", None) if self.teacher is not None else getattr(self.source, "dim", None)
        return None if dim is None else int(dim)

    @property
    def prepared(self) -> bool:
        return self.mode == "live" or self.source is not None

    def __repr__(self) -> str:
        where = f", cache_dir={str(self.cache_dir)!r}" if self.cache_dir is not None else ""
        return f"TeacherTarget({self.name!r}, mode={self.mode!r}{where})"

    # -- preparation ----------------------------------------------------------------------
    def _expected(self) -> dict[str, Any]:
        from mvmr.representations.cache import FeatureCache

        return FeatureCache.expected(dataset=self.dataset, representations={self.name: self.teacher},
                                     image_size=int(self.image_size))  # type: ignore[arg-type]

    def prepare(
        self,
        device: torch.device | str = "cpu",
        *,
        is_global_zero: bool = True,
        barrier: Callable[[], None] | None = None,
    ) -> None:
        """Make the features available on ``device``: build/open the cache or move the live teacher.

        Cached mode: global rank 0 opens the cache when it matches (dataset fingerprint, teacher
        settings and weights, image size) or builds it on ``device``, while the other ranks wait
        at ``barrier`` and then open it. A cache built for other data or another teacher raises
        :class:`~mvmr.representations.cache.CacheMismatchError` naming the field.
        """
        from mvmr.representations.cache import FeatureCache

        assert self.teacher is not None or self.mode == "embeddings"
        if self.mode == "live":
            self.teacher.to(device)  # type: ignore[union-attr]
            self.teacher.eval()  # type: ignore[union-attr]
            return
        if self.source is not None:
            return
        if is_global_zero:
            self.teacher.to(device)  # type: ignore[union-attr]
            existed = (self.cache_dir / "manifest.json").is_file()  # type: ignore[operator]
            start = time.perf_counter()
            cache = FeatureCache.open_or_build(
                self.cache_dir, dataset=self.dataset, representations={self.name: self.teacher},  # type: ignore[arg-type]
                image_size=int(self.image_size), batch_size=self.batch_size,  # type: ignore[arg-type]
                num_workers=self.num_workers, device=device, progress=self.progress,
            )
            self.build_seconds = None if existed else time.perf_counter() - start
            self.teacher.to("cpu")  # type: ignore[union-attr]  # no longer needed on the accelerator
        if barrier is not None:
            barrier()
        if not is_global_zero:
            cache = FeatureCache.open(self.cache_dir, expect=self._expected())  # type: ignore[arg-type]
        self.source = cache

    # -- reading ----------------------------------------------------------------------------
    @torch.no_grad()
    def features(self, x_clean: Tensor, index: Tensor) -> Tensor:
        """Float32 ``(B, D)`` teacher embeddings of the clean images ``x_clean`` (dataset ``index``)."""
        if self.mode == "live":
            with torch.autocast(device_type=x_clean.device.type, enabled=False):
                out = self.teacher(x_clean.float())  # type: ignore[misc]
            return out.flatten(1).float().to(x_clean.device)
        if self.source is None:
            raise RuntimeError(f"{self!r} is not prepared: call prepare() first (the trainer does it in setup)")
        if self.rows is not None:
            index = torch.as_tensor(self.rows[index.detach().cpu().numpy()])
        return self.source.get(index, names=[self.name], device=x_clean.device)[self.name]


def build_teacher_target(config: Config, dataset: Any) -> TeacherTarget | None:
    """The :class:`TeacherTarget` of ``config.teacher`` for the clean training images ``dataset``
    (None when no teacher is configured). Builds the teacher model (loads its weights) but not the
    cache: :meth:`TeacherTarget.prepare` (called in the module's ``setup``) does that."""
    t = config.teacher
    if t.spec is None:
        return None
    from mvmr.representations.teachers import PrecomputedEmbeddings, parse_teacher_spec

    kind, _ = parse_teacher_spec(t.spec)
    if kind == "embeddings":
        rows = _dataset_rows(dataset)
        emb = build_teacher_embeddings(t, dataset_length=_full_length(dataset))
        assert isinstance(emb, PrecomputedEmbeddings)
        return TeacherTarget(t.name, "embeddings", embeddings=emb, rows=rows)
    teacher = build_teacher_model(t)
    if not t.cache:
        return TeacherTarget(t.name, "live", teacher=teacher)
    return TeacherTarget(
        t.name, "cached", teacher=teacher, dataset=dataset, image_size=config.data.image_size,
        cache_dir=teacher_cache_dir(config), batch_size=t.batch_size, num_workers=config.data.num_workers,
        progress=config.trainer.progress_bar,
    )


def build_teacher_embeddings(t: TeacherConfig, *, dataset_length: int | None = None) -> Any:
    """The :class:`PrecomputedEmbeddings` of an ``embeddings:<file.npy>`` teacher."""
    from mvmr.representations.teachers import build_teacher

    try:
        return build_teacher(t.spec, name=t.name, dataset_length=dataset_length, **t.options)  # type: ignore[arg-type]
    except ConfigError as err:
        raise ConfigError(f"teacher ({t.spec}): {err}") from err


# --------------------------------------------------------------------------------------------
# step timing through the real trainer path
# --------------------------------------------------------------------------------------------
class StepTimer(L.Callback):
    """Wall time of every training batch: forward of both views, loss, backward, optimiser step
    (``on_train_batch_start`` to ``on_train_batch_end``; data loading excluded)."""

    def __init__(self) -> None:
        self.seconds: list[float] = []
        self._start = 0.0

    def _sync(self, pl_module: L.LightningModule) -> None:
        if pl_module.device.type == "cuda":
            torch.cuda.synchronize(pl_module.device)

    def on_train_batch_start(self, trainer: L.Trainer, pl_module: L.LightningModule, batch: Any, batch_idx: int) -> None:
        self._sync(pl_module)
        self._start = time.perf_counter()

    def on_train_batch_end(self, trainer: L.Trainer, pl_module: L.LightningModule, outputs: Any, batch: Any,
                           batch_idx: int) -> None:
        self._sync(pl_module)
        self.seconds.append(time.perf_counter() - self._start)


def time_distillation_steps(
    config: Config,
    *,
    cache: bool,
    steps: int = 3,
    warmup: int = 1,
    data: Any | None = None,
    model: nn.Module | None = None,
    feature_dim: int | None = None,
) -> dict[str, Any]:
    """Time ``steps`` training steps (after ``warmup``) of ``config`` with the teacher cached or
    run every step, through the real module and Lightning trainer (one device, no logging; its
    checkpoint goes to a temporary folder; the teacher cache is the run's, built if missing).

    Returns ``{"mode", "seconds" (median), "all" (every timed step), "images_per_s", "batch_size",
    "cache_build_seconds" (None when the cache already existed)}``.
    """
    from mvmr.config import validate
    from mvmr.training.trainer import build_data, build_module, build_trainer

    if config.teacher.spec is None:
        raise ConfigError("teacher.spec: step timing of distillation needs a teacher")
    total = warmup + steps
    t = replace(config.trainer, max_steps=total, max_epochs=max(config.trainer.max_epochs, total),
                devices=1, num_nodes=1, strategy="auto", progress_bar=False, accumulate_grad_batches=1,
                limit_train_batches=1.0, limit_val_batches=0)
    cfg = validate(replace(config, trainer=t, teacher=replace(config.teacher, cache=cache),
                           model=replace(config.model, sync_batchnorm=False),
                           optim=replace(config.optim, warmup_epochs=0.0)))
    data = data if data is not None else build_data(cfg)
    L.seed_everything(cfg.trainer.seed, workers=True, verbose=False)
    module = build_module(cfg, data, model, feature_dim)
    timer = StepTimer()
    with tempfile.TemporaryDirectory(prefix="mvmr-timing-") as tmp:
        # the run's callbacks (checkpoints, plots) write into the temporary folder, outside the timed steps
        trainer = build_trainer(cfg, Path(tmp), [timer], logger=False, enable_model_summary=False,
                                enable_progress_bar=False)
        from mvmr.training.trainer import PretrainDataModule

        trainer.fit(module, datamodule=PretrainDataModule(data, cfg))
    timed = timer.seconds[warmup:]
    if len(timed) < steps:
        raise ConfigError(
            f"only {len(timer.seconds)} training batches ran (wanted {total}); the data are too small for the timing"
        )
    median = statistics.median(timed)
    target = module.teacher
    return {
        "mode": "cached" if cache else "live",
        "seconds": median,
        "all": timed,
        "images_per_s": cfg.data.batch_size / median,
        "batch_size": cfg.data.batch_size,
        "cache_build_seconds": None if target is None else target.build_seconds,
    }
