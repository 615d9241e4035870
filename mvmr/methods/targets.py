"""The fixed targets of MV-MR: their feature sources (clean and augmented views), objectives and
regression heads, built from a config's ``representations`` and ``teacher`` sections."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from mvmr.config import Config
from mvmr.data import AugmentedViewBank, DatasetSubset, PretrainData
from mvmr.errors import ConfigError
from mvmr.models import TargetRegression
from mvmr.representations import Representation
from mvmr.representations import build as build_representation
from mvmr.representations.teachers import build_teacher, parse_teacher_spec
from mvmr.sources import CachedSource, FeatureSource, LiveSource, PrecomputedSource

__all__ = [
    "TargetSources",
    "build_regression",
    "build_representations",
    "build_sources",
    "effective_betas",
    "target_settings",
    "teacher_cache_dir",
    "teacher_source",
]


def effective_betas(config: Config) -> float | dict[str, float]:
    """beta_k = loss.beta (or loss.beta[name]) x the item's weight, and teacher.beta for the
    teacher; a float when all are equal."""
    beta, items, t = config.loss.beta, config.representations.items, config.teacher
    teacher_plain = t.spec is None or (not isinstance(beta, dict) and t.beta == beta)
    if not isinstance(beta, dict) and all(s.weight == 1.0 for s in items) and teacher_plain:
        return float(beta)
    out = {s.name: (beta[s.name] if isinstance(beta, dict) else beta) * s.weight for s in items}
    if t.spec is not None:
        out[t.name] = float(t.beta)
    return out


def build_representations(config: Config) -> dict[str, Representation]:
    """``{name: representation}`` of ``config.representations.items``."""
    reps: dict[str, Representation] = {}
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
    if not isinstance(teacher, Representation):
        raise ConfigError(f"teacher ({t.spec}): not an image model")  # embeddings: files returned above
    cache_options: dict[str, Any] = dict(
        batch_size=t.batch_size, num_workers=config.data.num_workers, progress=config.trainer.progress_bar
    )
    if t.view == "augmented" and t.cached_views > 0:
        if data is None or data.full is None or data.augmentation is None:
            raise ConfigError("teacher.cached_views: the stored views need the run's data (build_data)")
        bank = AugmentedViewBank(
            data.full,
            size=config.data.image_size,
            augmentation=data.augmentation,
            count=t.cached_views,
            seed=config.trainer.seed,
        )
        return CachedSource(
            teacher_cache_dir(config),
            {t.name: teacher},
            dataset=bank,
            image_size=config.data.image_size,
            **cache_options,
        )
    if t.view == "augmented" or not t.cache:
        return LiveSource({t.name: teacher})
    return CachedSource(
        teacher_cache_dir(config),
        {t.name: teacher},
        dataset=dataset,
        image_size=config.data.image_size,
        **cache_options,
    )


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
    cached = {
        k: v
        for k, v in reps.items()
        if k not in on_aug and r.cache_dir is not None and getattr(v, "deterministic", False)
    }
    live = {k: v for k, v in reps.items() if k not in cached and k not in on_aug}
    clean: list[FeatureSource] = []
    augmented: list[FeatureSource] = []
    if cached and r.cache_dir is not None:
        clean.append(
            CachedSource(
                r.cache_dir,
                cached,
                dataset=dataset,
                image_size=config.data.image_size,
                project_dim=r.project_dim,
                seed=seed,
                batch_size=max(64, config.data.batch_size),
                num_workers=config.data.num_workers,
                progress=config.trainer.progress_bar,
            )
        )
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
    out: list[tuple[str, str, str, str]] = [
        (s.name, s.objective, s.view, f"representations.items[{i}]") for i, s in enumerate(config.representations.items)
    ]
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
            hint = (
                "set representations.project_dim (e.g. 1024) to regress its seeded projection"
                if key != "teacher"
                else "reduce the teacher's embedding"
            )
            raise ConfigError(
                f"{key}.objective: a cosine head to {name!r} would predict {dims[name]:,} values per "
                f"image (more than regression.max_target_dim={g.max_target_dim}); {hint}, or raise "
                f"regression.max_target_dim"
            )
    betas = effective_betas(config)
    weights = {n: g.weight * (betas if isinstance(betas, float) else betas[n]) for n, _ in regressed}
    return TargetRegression(
        in_dim,
        {n: dims[n] for n, _ in regressed},
        weights=weights,
        depth=g.depth,
        width=g.width,
        target_norm=g.target_norm,
        gather_distributed=config.loss.gather_distributed,
    )
