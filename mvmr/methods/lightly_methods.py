"""VICReg and Barlow Twins with the losses of the ``lightly`` package, as peer methods.

Both take two augmented views of each image (their published recipe) from the same augmentation
that gives MV-MR its augmented view; ``method_kwargs`` go to the loss (e.g. VICReg's
``lambda_param``, ``mu_param``, ``nu_param``; Barlow Twins' ``lambda_param``), except ``loss_scale``,
which multiplies it (solo-learn scales Barlow Twins' loss by 0.1 for CIFAR). Under DDP they see the
global batch when ``loss.gather_distributed`` is on (the default), like MV-MR. lightly is imported
when such a method is built (``pip install 'mvmr[bench]'``).
"""

from __future__ import annotations

from typing import Any, ClassVar

import torch
from torch import nn

from mvmr.config import Config
from mvmr.data import PretrainData
from mvmr.errors import ConfigError
from mvmr.losses import PairLoss
from mvmr.methods.base import Method, StepOutput
from mvmr.methods.registry import register_method
from mvmr.models import MVMRModel

__all__ = ["LightlyPairMethod", "VICReg", "BarlowTwins", "lightly_loss"]


def lightly_loss(class_name: str, config: Config) -> PairLoss:
    """``lightly.loss.<class_name>(**config.method_kwargs)`` on the global batch (``loss.gather_distributed``)."""
    try:
        import lightly.loss
    except ImportError as err:  # the [bench] extra is optional
        raise ConfigError(f"method: {config.method!r} needs the 'lightly' package: pip install 'mvmr[bench]'") from err
    if "gather_distributed" in config.method_kwargs:
        raise ConfigError(
            "method_kwargs.gather_distributed: set loss.gather_distributed instead (mvmr gathers the "
            "embeddings with their gradients, so the loss sees the global batch)"
        )
    kwargs = dict(config.method_kwargs)
    scale = kwargs.pop("loss_scale", 1.0)
    if isinstance(scale, bool) or not isinstance(scale, int | float) or not scale > 0:
        raise ConfigError(f"method_kwargs.loss_scale: expected a positive number, got {scale!r}")
    try:
        return PairLoss(
            getattr(lightly.loss, class_name)(**kwargs),
            gather_distributed=config.loss.gather_distributed,
            scale=float(scale),
        )
    except TypeError as err:
        raise ConfigError(f"method_kwargs: {err}") from None


class LightlyPairMethod(Method):
    """Two augmented views through the model; lightly's ``loss_class`` on their embeddings."""

    loss_class: ClassVar[str] = ""

    def __init__(self, loss: nn.Module) -> None:
        super().__init__()
        self.loss_fn = loss

    @classmethod
    def from_config(cls, config: Config, *, model: MVMRModel, data: PretrainData, feature_dim: int) -> Method:
        return cls(lightly_loss(cls.loss_class, config))

    def step(self, model: MVMRModel, batch: Any) -> StepOutput:
        features, z_a = model.forward_with_features(batch[0])
        _, z_b = model.forward_with_features(batch[1])
        with torch.autocast(device_type=z_a.device.type, enabled=False):  # the loss in float32, even under AMP
            loss, terms = self.loss_fn(z_a.float(), z_b.float())
        return StepOutput(loss=loss, terms=terms, features=features, embeddings=z_a)


@register_method
class VICReg(LightlyPairMethod):
    name = "vicreg"
    description = "VICReg (lightly): two augmented views; invariance/variance/covariance (25/25/1 by default)"
    loss_class = "VICRegLoss"


@register_method
class BarlowTwins(LightlyPairMethod):
    name = "barlow_twins"
    description = "Barlow Twins (lightly): two augmented views; cross-correlation to identity (lambda 5e-3 by default)"
    loss_class = "BarlowTwinsLoss"
