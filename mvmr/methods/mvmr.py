"""MV-MR (paper section 4): the clean view and an augmented view, L1 + L2 + L3 against fixed targets."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import torch
from torch import Tensor, nn
from torch.utils.data import Dataset

from mvmr.cache import StoredViewParameters
from mvmr.config import Config
from mvmr.data import PretrainData, StoredViews, TwoViews
from mvmr.errors import ConfigError
from mvmr.losses import MVMRLoss, distance_correlation
from mvmr.methods.base import Method, StepOutput
from mvmr.methods.registry import register_method
from mvmr.methods.targets import build_regression, build_sources, effective_betas, target_settings, teacher_cache_dir
from mvmr.models import MVMRModel, TargetRegression
from mvmr.sources import FeatureSource
from mvmr.transforms import PaperAugmentation

__all__ = ["MVMR", "mvmr_loss"]

OBJECTIVES = ("dcor", "cosine", "dcor+cosine")


def mvmr_loss(config: Config) -> MVMRLoss:
    """The :class:`~mvmr.losses.MVMRLoss` of ``config.loss`` (paper eqs. 4-10); its L3 holds the fixed
    targets whose objective includes ``dcor`` (the others are regressed by heads, see
    :class:`~mvmr.models.TargetRegression`)."""
    if config.method_kwargs:
        raise ConfigError(
            f"method_kwargs: MV-MR takes its settings from the loss section, not method_kwargs "
            f"(got {sorted(config.method_kwargs)})"
        )
    c, beta = config.loss, effective_betas(config)
    if isinstance(beta, dict):
        objectives = {name: objective for name, objective, _, _ in target_settings(config)}
        beta = {name: value for name, value in beta.items() if "dcor" in objectives[name]}
    return MVMRLoss(
        lambda_=c.lambda_,
        mu=c.mu,
        alpha=c.alpha,
        beta=beta,
        gamma=c.gamma,
        eps=c.eps,
        l3=c.l3,
        squared=c.squared,
        mse=c.mse,
        gather_distributed=c.gather_distributed,
    )


@register_method
class MVMR(Method):
    """MV-MR: the loss on the projector outputs of the clean and the augmented view, with fixed targets.

    ``loss(z, z_aug, targets)`` with the fixed targets z*_k from the feature sources (paper section
    4.1). Each target has an objective: ``dcor`` targets go to ``loss`` (L3), ``cosine`` ones to
    ``regression`` (a head per target on the augmented view, 2 - 2 cos), ``dcor+cosine`` ones to both;
    every target is logged as ``dcor/<name>`` (a monitor where it is not in the loss) and, with a
    head, ``cos/<name>``.

    Args:
        loss: ``loss(z_a, z_b, targets) -> (scalar, terms)`` (:class:`~mvmr.losses.MVMRLoss`).
        sources: the targets that describe the clean view, keyed by dataset index (:mod:`mvmr.sources`),
            prepared in :meth:`setup` (call it yourself without a trainer).
        augmented_sources: the targets that describe the student's augmented view, keyed by the
            batch's view keys (the stored view's row, else the dataset index).
        objectives: ``{name: "dcor" | "cosine" | "dcor+cosine"}``; missing names are ``dcor``.
        regression: the heads of the targets with a cosine objective (None without any); trained with
            the model, saved in checkpoints, never exported.
        regression_input: what the heads read of the augmented view: ``features`` (encoder) or
            ``embedding`` (projector).
        order: the order of the targets in the loss and the logs (default: the sources' order).
    """

    name = "mvmr"
    description = "MV-MR: clean + augmented view; MSE + variance, dCor between the views and to each representation"
    uses_targets = True

    def __init__(
        self,
        loss: nn.Module,
        sources: Sequence[FeatureSource] = (),
        *,
        augmented_sources: Sequence[FeatureSource] = (),
        objectives: Mapping[str, str] | None = None,
        regression: TargetRegression | None = None,
        regression_input: str = "features",
        order: Sequence[str] | None = None,
    ) -> None:
        super().__init__()
        self.loss_fn = loss
        self.sources = list(sources)  # a plain list: the sources are not trained, saved or moved by Lightning
        self.augmented_sources = list(augmented_sources)
        names = [name for source in self.sources + self.augmented_sources for name in source.names]
        if len(set(names)) != len(names):
            raise ValueError(f"two feature sources give the same representation: {names}")
        self.order = list(order) if order is not None else names
        if sorted(self.order) != sorted(names):
            raise ValueError(f"order {self.order} must list each of the representations {sorted(names)} once")
        self.objectives = {name: (objectives or {}).get(name, "dcor") for name in names}
        if any(v not in OBJECTIVES for v in self.objectives.values()) or set(objectives or {}) - set(names):
            raise ValueError(
                f"objectives must map the targets {names} to dcor, cosine or dcor+cosine, got {objectives}"
            )
        regressed = [n for n in self.order if "cosine" in self.objectives[n]]
        if (regression is None) != (not regressed) or (
            regression is not None and set(regression.names) != set(regressed)
        ):
            raise ValueError(
                f"the regression heads must cover exactly the cosine targets {regressed}, got "
                f"{None if regression is None else regression.names}"
            )
        if regression_input not in ("features", "embedding"):
            raise ValueError(f"regression_input must be 'features' or 'embedding', got {regression_input!r}")
        self.regression = regression
        self.regression_input = regression_input

    @classmethod
    def views(cls, config: Config, full: Dataset, *, augmentation: PaperAugmentation, seed: int) -> Dataset:
        """The clean view and an augmented one; with ``teacher.cached_views: K`` one of K stored views."""
        t, size = config.teacher, config.data.image_size
        if t.spec is not None and t.cached_views > 0:
            return StoredViews(
                full,
                size=size,
                augmentation=augmentation,
                count=t.cached_views,
                seed=seed,
                parameters=StoredViewParameters(teacher_cache_dir(config)),
            )
        return TwoViews(full, size=size, augmentation=augmentation, seed=seed)

    @classmethod
    def from_config(cls, config: Config, *, model: MVMRModel, data: PretrainData, feature_dim: int) -> MVMR:
        sources = build_sources(config, data)
        if config.regression.input == "features":
            in_dim = feature_dim
        else:
            out_dim = getattr(getattr(model, "projector", None), "out_dim", None)
            if out_dim is None:
                raise ConfigError("regression.input: 'embedding' needs a model with a projector (projector.out_dim)")
            in_dim = int(out_dim)
        settings = target_settings(config)
        return cls(
            mvmr_loss(config),
            sources.clean,
            augmented_sources=sources.augmented,
            objectives={name: objective for name, objective, _, _ in settings},
            regression=build_regression(config, sources, in_dim=int(in_dim), channels=data.channels),
            regression_input=config.regression.input,
            order=[name for name, *_ in settings] or None,
        )

    def setup(self, device: torch.device) -> None:
        for source in self.sources + self.augmented_sources:
            source.prepare(device)

    @torch.no_grad()
    def targets(
        self, x_clean: Tensor, index: Tensor, x_aug: Tensor | None = None, view_key: Tensor | None = None
    ) -> dict[str, Tensor]:
        """``{name: float32 (B, D_k)}`` in ``order``: the clean sources' features of ``x_clean`` (by
        ``index``) and the augmented sources' of ``x_aug`` (by ``view_key``, default ``index``)."""
        out: dict[str, Tensor] = {}
        for source in self.sources:
            out.update(source(x_clean, index))
        if self.augmented_sources:
            if x_aug is None:
                raise ValueError("targets of the augmented view need x_aug")
            for source in self.augmented_sources:
                out.update(source(x_aug, index if view_key is None else view_key))
        return {name: out[name] for name in self.order}

    def step(self, model: MVMRModel, batch: Any) -> StepOutput:
        x_a, x_b, index, *extra, _ = batch
        view_key = extra[0] if extra else None
        features, z_a = model.forward_with_features(x_a)
        h_b, z_b = model.forward_with_features(x_b)
        targets = self.targets(x_a, index, x_b, view_key)
        with torch.autocast(device_type=z_a.device.type, enabled=False):  # the losses in float32, even under AMP
            dcor_targets = {n: t for n, t in targets.items() if "dcor" in self.objectives[n]}
            loss, terms = self.loss_fn(z_a.float(), z_b.float(), dcor_targets)
            terms = dict(terms)
            squared = bool(getattr(self.loss_fn, "squared", True))
            for name in (n for n in self.order if n not in dcor_targets):  # monitored, not trained
                terms[f"dcor/{name}"] = distance_correlation(z_b.detach().float(), targets[name], squared=squared)
            if self.regression is not None:
                student = h_b if self.regression_input == "features" else z_b
                regression, regression_terms = self.regression(
                    student.float(), {n: targets[n] for n in self.regression.names}
                )
                loss = loss + regression
                terms.update(regression_terms)
                terms["loss"] = loss.detach()
        return StepOutput(loss=loss, terms=terms, features=features, embeddings=z_a)
