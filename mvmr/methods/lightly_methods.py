"""VICReg and Barlow Twins with the losses of the ``lightly`` package, as peer methods.

Both take two augmented views of each image (their published recipe) from the same augmentation
that gives MV-MR its augmented view; ``method_kwargs`` go to the loss (e.g. VICReg's
``lambda_param``, ``mu_param``, ``nu_param``; Barlow Twins' ``lambda_param``). Under DDP they see the
global batch when ``loss.gather_distributed`` is on (the default), like MV-MR. lightly is imported
when such a method is built (``pip install 'mvmr[bench]'``).
"""

from __future__ import annotations

from functools import partial

from torch import nn

from mvmr.config import Config
from mvmr.data.views import TwoAugmentedViews
from mvmr.errors import ConfigError
from mvmr.methods.base import Method, PairLoss
from mvmr.methods.registry import register_method

__all__ = ["VICREG", "BARLOW_TWINS"]


def _lightly_loss(class_name: str, config: Config) -> nn.Module:
    try:
        import lightly.loss
    except ImportError as err:  # the [bench] extra is optional
        raise ConfigError(f"method: {config.method!r} needs the 'lightly' package: pip install 'mvmr[bench]'") from err
    if "gather_distributed" in config.method_kwargs:
        raise ConfigError("method_kwargs.gather_distributed: set loss.gather_distributed instead (mvmr gathers the "
                          "embeddings with their gradients, so the loss sees the global batch)")
    try:
        return PairLoss(getattr(lightly.loss, class_name)(**config.method_kwargs),
                        gather_distributed=config.loss.gather_distributed)
    except TypeError as err:
        raise ConfigError(f"method_kwargs: {err}") from None


VICREG = register_method(Method(
    name="vicreg", views=TwoAugmentedViews, build_loss=partial(_lightly_loss, "VICRegLoss"),
    description="VICReg (lightly): two augmented views; invariance 25, variance 25, covariance 1",
))
BARLOW_TWINS = register_method(Method(
    name="barlow_twins", views=TwoAugmentedViews, build_loss=partial(_lightly_loss, "BarlowTwinsLoss"),
    description="Barlow Twins (lightly): two augmented views; cross-correlation to the identity, lambda 5e-3",
))
