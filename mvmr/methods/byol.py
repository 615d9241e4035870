"""BYOL (Grill et al., NeurIPS 2020) from lightly's parts, as a peer method (the paper's Table 2 compares it).

The online network (encoder + ``BYOLProjectionHead``, the model that is exported) and a
``BYOLPredictionHead`` predict the embedding a momentum copy gives of the other view; the loss is
lightly's ``NegativeCosineSimilarity``, symmetrised; after every optimiser step the copy moves
towards the online network by ``update_momentum`` with lightly's ``cosine_schedule`` from
``momentum_start`` to ``momentum_end``. ``model.projector: "H-D"`` sets the projection head (hidden H,
output D). ``method_kwargs``: ``momentum_start`` (default 0.99, solo-learn's CIFAR setting; the paper
uses 0.996), ``momentum_end`` (1.0), ``predictor_hidden`` (default H). Needs ``pip install 'mvmr[bench]'``.
"""

from __future__ import annotations

import copy
from typing import Any

import torch
from torch import Tensor, nn

from mvmr.config import Config
from mvmr.data import PretrainData
from mvmr.errors import ConfigError
from mvmr.losses import PairLoss
from mvmr.methods.base import Method, StepOutput
from mvmr.methods.registry import register_method
from mvmr.models import MVMRModel, build_model, parse_projector_spec

__all__ = ["BYOL"]

SETTINGS = {"momentum_start": 0.99, "momentum_end": 1.0, "predictor_hidden": None}


def _lightly() -> Any:
    try:
        import lightly
        import lightly.loss
        import lightly.models.modules
        import lightly.models.utils
        import lightly.utils.scheduler
    except ImportError as err:  # the [bench] extra is optional
        raise ConfigError("method: 'byol' needs the 'lightly' package: pip install 'mvmr[bench]'") from err
    return lightly


class _SymmetricNegativeCosine(nn.Module):
    """``(-cos(p_a, t_b) - cos(p_b, t_a)) / 2``, batch-averaged, with lightly's ``NegativeCosineSimilarity``."""

    def __init__(self) -> None:
        super().__init__()
        self.criterion = _lightly().loss.NegativeCosineSimilarity()

    def forward(self, p_a: Tensor, p_b: Tensor, t_a: Tensor, t_b: Tensor) -> Tensor:
        return 0.5 * (self.criterion(p_a, t_b) + self.criterion(p_b, t_a))


@register_method
class BYOL(Method):
    """BYOL: a predictor and a momentum copy of the model; see the module docstring.

    Args:
        model: the online network (its ``projector`` is the projection head), copied for the momentum network.
        predictor: maps the online embeddings (B, D) to predictions (B, D).
        loss: ``loss(p_a, p_b, t_a, t_b) -> (scalar, terms)``.
        momentum_start, momentum_end: the momentum's cosine schedule over the run's optimiser steps.
    """

    momentum_value: Tensor

    name = "byol"
    description = "BYOL (lightly): two augmented views; a predictor regresses a momentum network's embedding"

    def __init__(
        self,
        model: MVMRModel,
        predictor: nn.Module,
        loss: nn.Module,
        *,
        momentum_start: float = 0.99,
        momentum_end: float = 1.0,
    ) -> None:
        super().__init__()
        if not 0.0 <= momentum_start <= momentum_end <= 1.0:
            raise ConfigError(
                f"method_kwargs: need 0 <= momentum_start <= momentum_end <= 1, got {momentum_start}, {momentum_end}"
            )
        self.predictor = predictor
        self.loss_fn = loss
        self.momentum = copy.deepcopy(model)
        _lightly().models.utils.deactivate_requires_grad(self.momentum)  # saved and resumed, never optimised
        self.momentum_start, self.momentum_end = float(momentum_start), float(momentum_end)
        self.register_buffer("momentum_value", torch.tensor(float(momentum_start)))  # the last one used, logged

    @staticmethod
    def _sizes(config: Config) -> tuple[int, int]:
        sizes = parse_projector_spec(config.model.projector)
        if len(sizes) != 2:
            raise ConfigError(
                f"model.projector: BYOL's projection head is hidden-output, e.g. '4096-256'; got "
                f"{config.model.projector!r}"
            )
        return sizes[0], sizes[1]

    @classmethod
    def build_model(cls, config: Config, channels: int) -> MVMRModel:
        hidden, out = cls._sizes(config)
        m = config.model
        model = build_model(m.encoder, "", small_images=m.small_images, in_chans=channels, mean=m.mean, std=m.std)
        model.projector = _lightly().models.modules.BYOLProjectionHead(model.projector.in_dim, hidden, out)
        return model

    @classmethod
    def from_config(cls, config: Config, *, model: MVMRModel, data: PretrainData, feature_dim: int) -> Method:
        unknown = set(config.method_kwargs) - set(SETTINGS)
        if unknown:
            raise ConfigError(f"method_kwargs: BYOL takes {sorted(SETTINGS)}, not {sorted(unknown)}")
        kw = {**SETTINGS, **config.method_kwargs}
        hidden, out = cls._sizes(config)
        predictor = _lightly().models.modules.BYOLPredictionHead(out, int(kw["predictor_hidden"] or hidden), out)
        loss = PairLoss(_SymmetricNegativeCosine(), gather_distributed=config.loss.gather_distributed)
        return cls(
            model, predictor, loss, momentum_start=float(kw["momentum_start"]), momentum_end=float(kw["momentum_end"])
        )

    def step(self, model: MVMRModel, batch: Any) -> StepOutput:
        x_a, x_b = batch[0], batch[1]
        features, z_a = model.forward_with_features(x_a)
        _, z_b = model.forward_with_features(x_b)
        with torch.no_grad():
            t_a, t_b = self.momentum(x_a), self.momentum(x_b)
        p_a, p_b = self.predictor(z_a), self.predictor(z_b)
        with torch.autocast(device_type=z_a.device.type, enabled=False):  # the loss in float32, even under AMP
            loss, terms = self.loss_fn(p_a.float(), p_b.float(), t_a.float(), t_b.float())
        terms["momentum"] = self.momentum_value.clone()
        return StepOutput(loss=loss, terms=terms, features=features, embeddings=z_a)

    @torch.no_grad()
    def after_optimizer_step(self, model: MVMRModel, step: int, total_steps: int) -> None:
        lightly = _lightly()
        m = lightly.utils.scheduler.cosine_schedule(
            min(step, total_steps), max(total_steps, 1), self.momentum_start, self.momentum_end
        )
        self.momentum_value.fill_(m)
        lightly.models.utils.update_momentum(model, self.momentum, m=m)
