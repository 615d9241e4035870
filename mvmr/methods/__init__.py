"""Self-supervised methods by name: ``method: mvmr`` (default), ``vicreg``, ``barlow_twins``, ``byol``, or a plugin.

A :class:`Method` owns what it trains beside the model (heads, a predictor, a momentum copy), its
views and its step; one Lightning module runs any of them (:mod:`mvmr.training.module`). Register
your own with ``@register_method``, or from another package through the ``mvmr.methods`` entry-point
group (see :mod:`mvmr.plugins`).
"""

from mvmr.methods.base import Method, StepOutput
from mvmr.methods.byol import BYOL
from mvmr.methods.lightly_methods import BarlowTwins, LightlyPairMethod, VICReg
from mvmr.methods.mvmr import MVMR, mvmr_loss
from mvmr.methods.registry import available_methods, get_method, register_method
from mvmr.methods.targets import effective_betas

__all__ = [
    "BYOL",
    "BarlowTwins",
    "LightlyPairMethod",
    "MVMR",
    "Method",
    "StepOutput",
    "VICReg",
    "available_methods",
    "effective_betas",
    "get_method",
    "mvmr_loss",
    "register_method",
]
