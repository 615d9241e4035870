"""From a config to the pieces of a run: the data (:func:`build_data`), the feature sources of the
fixed targets (:func:`build_sources`) and the training module (:func:`build_module`)."""

from __future__ import annotations

import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from torch import nn

from mvmr.cache import StoredViewParameters
from mvmr.config import Config, to_dict
from mvmr.data import AugmentedViewBank, DatasetSubset, StoredViews, TwoViews, build_dataset, split_train_val
from mvmr.errors import ConfigError, DataError
from mvmr.methods import effective_betas, get_method
from mvmr.models import TargetRegression, build_model
from mvmr.representations import build as build_representation
from mvmr.representations.teachers import build_teacher, parse_teacher_spec
from mvmr.sources import CachedSource, FeatureSource, LiveSource, PrecomputedSource
from mvmr.training.module import MVMRModule
from mvmr.transforms import PaperAugmentation

__all__ = ["PretrainData", "TargetSources", "build_data", "build_representations", "build_sources", "build_module",
           "build_regression", "teacher_cache_dir", "teacher_source", "target_settings"]


@dataclass
class PretrainData:
    """A run's clean images at image size (``base``), the method's two-view items, the training
    indices into ``base`` and the online probe's held-out labelled validation indices."""

    base: Any
    views: Any
    train_indices: np.ndarray
    val_indices: np.ndarray
    num_classes: int | None
    channels: int
    full: Any = None  #: the images at full resolution, which the augmented views are cut from
    augmentation: PaperAugmentation | None = None  #: the augmentation of the augmented views


def build_data(config: Config) -> PretrainData:
    """The training data of ``config``, with the views of ``config.method``."""
    d, seed = config.data, config.trainer.seed
    # decoded once per item, at full resolution: the method's views take their random resized crop
    # from the whole image; the clean view (and the cache, and the probe) is its resize + centre crop
    full = build_dataset(d.kind, d.root, split=d.split, size=None, download=d.download, skip_corrupt=d.skip_corrupt,
                         channels=d.channels, name=d.name, image_column=d.image_column, label_column=d.label_column)
    base = full.with_size(d.image_size)
    if d.subset is not None and d.subset < len(base):
        chosen = np.sort(np.random.default_rng(seed).choice(len(base), size=d.subset, replace=False))
        full, base = DatasetSubset(full, chosen), DatasetSubset(base, chosen)
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
        raise DataError(f"data.batch_size={d.batch_size} is larger than the {len(train_idx)} training images of "
                        f"{d.kind} {d.root!r} split {d.split!r}; lower data.batch_size")
    a = d.augmentation
    augmentation = PaperAugmentation(d.image_size, crop=a.crop, flip=a.flip, color=a.color, grayscale=a.grayscale,
                                     blur=a.blur, crop_scale=tuple(a.crop_scale))
    method, t = get_method(config.method), config.teacher
    if method.uses_targets and t.spec is not None and t.cached_views > 0:
        if method.views is not TwoViews:
            raise ConfigError(f"teacher.cached_views: method {config.method!r} makes its own views, which cannot be "
                              f"stored; use method: mvmr or teacher.cached_views: 0")
        views = StoredViews(full, size=d.image_size, augmentation=augmentation, count=t.cached_views, seed=seed,
                            parameters=StoredViewParameters(teacher_cache_dir(config)))
    else:
        views = method.views(full, size=d.image_size, augmentation=augmentation, seed=seed)
    channels = int(base[0][0].shape[0])
    return PretrainData(base, views, train_idx, val_idx, num_classes or None, channels, full, augmentation)


def build_representations(config: Config) -> dict[str, nn.Module]:
    """``{name: representation}`` of ``config.representations.items``."""
    reps = {}
    for i, spec in enumerate(config.representations.items):
        try:
            reps[spec.name] = build_representation(spec.name, **spec.kwargs)
        except (TypeError, ValueError) as err:
            raise ConfigError(f"representations.items[{i}] ({spec.name}): {err}") from err
    return reps


def teacher_cache_dir(config: Config) -> Path:
    """``teacher.cache_dir``, or ``<output_dir>/teacher-cache`` (``<output_dir>/teacher-views-<K>`` for K
    stored views)."""
    t = config.teacher
    default = "teacher-cache" if t.cached_views == 0 else f"teacher-views-{t.cached_views}"
    return Path(t.cache_dir if t.cache_dir is not None else Path(config.output_dir) / default).expanduser()


def _rows_in_full_dataset(dataset: Any) -> tuple[np.ndarray | None, int]:
    """(row of each item in the full dataset, or None when it is the full dataset; the full length)."""
    rows = None
    while isinstance(dataset, DatasetSubset):
        rows = dataset.indices if rows is None else dataset.indices[rows]
        dataset = dataset.dataset
    return rows, len(dataset)


def teacher_source(config: Config, dataset: Any, data: PretrainData | None = None) -> FeatureSource | None:
    """The frozen teacher of ``config.teacher`` as a feature source (None without a teacher).

    Of the clean images ``dataset`` (``view: clean``): cached once per dataset (default), run at every
    step (``teacher.cache: false``), or read from precomputed embeddings (``embeddings:<file.npy>``).
    Of the augmented view (``view: augmented``): run at every step on it, or with ``cached_views: K``
    read from the cache of the K stored views of every image of ``data`` (built in ``prepare``).
    """
    t = config.teacher
    if t.spec is None:
        return None
    kind, _ = parse_teacher_spec(t.spec)
    try:
        if kind == "embeddings":
            rows, full = _rows_in_full_dataset(dataset)
            return PrecomputedSource(build_teacher(t.spec, name=t.name, dataset_length=full, **t.options), rows=rows)
        teacher = build_teacher(t.spec, weights=t.weights, name=t.name, **t.options)
    except ConfigError as err:
        raise ConfigError(f"teacher ({t.spec}): {err}") from err
    cache_options = dict(batch_size=t.batch_size, num_workers=config.data.num_workers,
                         progress=config.trainer.progress_bar)
    if t.view == "augmented" and t.cached_views > 0:
        if data is None or data.full is None or data.augmentation is None:
            raise ConfigError("teacher.cached_views: the stored views need the run's data (build_data)")
        bank = AugmentedViewBank(data.full, size=config.data.image_size, augmentation=data.augmentation,
                                 count=t.cached_views, seed=config.trainer.seed)
        return CachedSource(teacher_cache_dir(config), {t.name: teacher}, dataset=bank,
                            image_size=config.data.image_size, **cache_options)
    if t.view == "augmented" or not t.cache:
        return LiveSource({t.name: teacher})
    return CachedSource(teacher_cache_dir(config), {t.name: teacher}, dataset=dataset,
                        image_size=config.data.image_size, **cache_options)


@dataclass
class TargetSources:
    """The feature sources of a run's fixed targets: ``clean`` ones describe the clean view (keyed by
    dataset index), ``augmented`` ones the student's augmented view (keyed by the view key)."""

    clean: list[FeatureSource]
    augmented: list[FeatureSource]

    @property
    def all(self) -> list[FeatureSource]:
        """Every source, clean ones first."""
        return self.clean + self.augmented


def build_sources(config: Config, data: PretrainData | Any) -> TargetSources:
    """The feature sources of a run on ``data`` (a :class:`PretrainData`, or just the clean images).

    Clean view: with ``representations.cache_dir`` the deterministic representations come from one
    feature cache and the others are computed live (all live without it), then the teacher.
    Augmented view (``view: augmented``): the representations computed live on it, and the teacher
    (live, or read from its stored views).
    """
    r, seed = config.representations, config.trainer.seed
    dataset = data.base if isinstance(data, PretrainData) else data
    reps = build_representations(config)
    views = {spec.name: spec.view for spec in r.items}
    on_aug = {k: v for k, v in reps.items() if views[k] == "augmented"}
    cached = {k: v for k, v in reps.items()
              if k not in on_aug and r.cache_dir is not None and getattr(v, "deterministic", False)}
    live = {k: v for k, v in reps.items() if k not in cached and k not in on_aug}
    clean: list[FeatureSource] = []
    augmented: list[FeatureSource] = []
    if cached:
        clean.append(CachedSource(r.cache_dir, cached, dataset=dataset, image_size=config.data.image_size,
                                  project_dim=r.project_dim, seed=seed, batch_size=max(64, config.data.batch_size),
                                  num_workers=config.data.num_workers, progress=config.trainer.progress_bar))
    if live:
        clean.append(LiveSource(live, project_dim=r.project_dim, seed=seed))
    if on_aug:
        augmented.append(LiveSource(on_aug, project_dim=r.project_dim, seed=seed))
    teacher = teacher_source(config, dataset, data if isinstance(data, PretrainData) else None)
    if teacher is not None:
        (augmented if config.teacher.view == "augmented" else clean).append(teacher)
    return TargetSources(clean, augmented)


def target_settings(config: Config) -> list[tuple[str, str, str, str]]:
    """``(name, objective, view, config key)`` of every fixed target, in the loss's order."""
    out = [(s.name, s.objective, s.view, f"representations.items[{i}]")
           for i, s in enumerate(config.representations.items)]
    t = config.teacher
    return out + ([(t.name, t.objective, t.view, "teacher")] if t.spec is not None else [])


def build_regression(config: Config, sources: TargetSources, *, in_dim: int, channels: int) -> TargetRegression | None:
    """The regression heads of the targets whose objective includes ``cosine`` (None without any):
    one per target, as wide as the target after any projection (at most ``regression.max_target_dim``)."""
    regressed = [(name, key) for name, objective, _, key in target_settings(config) if "cosine" in objective]
    if not regressed:
        return None
    size = config.data.image_size
    dims = {n: d for s in sources.all for n, d in s.dims(channels, size, size).items()}
    g = config.regression
    for name, key in regressed:
        if dims[name] > g.max_target_dim:
            hint = ("set representations.project_dim (e.g. 1024) to regress its seeded projection"
                    if key != "teacher" else "reduce the teacher's embedding")
            raise ConfigError(f"{key}.objective: a cosine head to {name!r} would predict {dims[name]:,} values per image "
                              f"(more than regression.max_target_dim={g.max_target_dim}); {hint}, or raise "
                              f"regression.max_target_dim")
    betas = effective_betas(config)
    weights = {n: g.weight * (betas if isinstance(betas, float) else betas[n]) for n, _ in regressed}
    return TargetRegression(in_dim, {n: dims[n] for n, _ in regressed}, weights=weights, depth=g.depth, width=g.width,
                            target_norm=g.target_norm, gather_distributed=config.loss.gather_distributed)


def build_module(config: Config, data: PretrainData, model: nn.Module | None = None,
                 feature_dim: int | None = None) -> MVMRModule:
    """The training module of ``config.method`` (``model`` replaces the configured encoder+projector)."""
    method = get_method(config.method)
    if model is None:
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
    common = dict(feature_dim=feature_dim, optim=config.optim, probe=config.probe, num_classes=data.num_classes,
                  batch_size=config.data.batch_size, seed=config.trainer.seed, hparams=to_dict(config),
                  skip_nonfinite_batches=config.trainer.skip_nonfinite_batches)
    if not method.uses_targets:
        return MVMRModule(model, method.build_loss(config), **common)
    sources = build_sources(config, data)
    settings = target_settings(config)
    if config.regression.input == "features":
        in_dim = feature_dim
    else:
        in_dim = getattr(getattr(model, "projector", None), "out_dim", None)
        if in_dim is None:
            raise ConfigError("regression.input: 'embedding' needs a model with a projector (projector.out_dim)")
    regression = build_regression(config, sources, in_dim=int(in_dim), channels=data.channels)
    return MVMRModule(model, method.build_loss(config), sources.clean, augmented_sources=sources.augmented,
                      objectives={name: objective for name, objective, _, _ in settings}, regression=regression,
                      regression_input=config.regression.input, order=[name for name, *_ in settings] or None,
                      **common)
