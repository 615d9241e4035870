"""Self-supervised methods by name: ``method: mvmr`` (default), ``vicreg``, ``barlow_twins``, or a plugin.

A :class:`Method` brings its views and its loss; the trainer builds whichever the config names
(:func:`get_method`). Register your own with :func:`register_method`, or from another package
through the ``mvmr.methods`` entry-point group (see :mod:`mvmr.plugins`).
"""

from mvmr.methods.base import Method, PairLoss
from mvmr.methods.lightly_methods import BARLOW_TWINS, VICREG
from mvmr.methods.mvmr import MVMR, effective_betas, mvmr_loss
from mvmr.methods.registry import available_methods, get_method, register_method

__all__ = ["BARLOW_TWINS", "MVMR", "Method", "PairLoss", "VICREG", "available_methods", "effective_betas",
           "get_method", "mvmr_loss", "register_method"]
