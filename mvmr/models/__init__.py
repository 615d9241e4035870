"""Encoders, projectors, the MV-MR model (:mod:`~mvmr.models.mvmr_model`), the training-only regression
heads (:mod:`~mvmr.models.regression_heads`), weight files and backbone
export/import (:mod:`~mvmr.models.state_io`, the one ``torch.load``, always ``weights_only=True``).

``IMAGENET_MEAN`` / ``IMAGENET_STD`` are :mod:`mvmr.transforms.normalization`'s, re-exported for
code that builds an :class:`MVMRModel` by hand.
"""

from __future__ import annotations

from mvmr.models.mvmr_model import (
    TORCHVISION_ENCODERS,
    EncoderSpec,
    MVMRModel,
    Projector,
    build_encoder,
    build_model,
    encoder_spec,
    parse_projector_spec,
)
from mvmr.models.regression_heads import TARGET_NORMS, RegressionHead, TargetRegression, normalize_targets
from mvmr.models.state_io import (
    FORMAT_VERSION,
    load_backbone,
    load_backbone_model,
    load_state_dict_strict,
    read_checkpoint,
    read_lightning_checkpoint,
    read_state_dict,
    save_backbone,
)
from mvmr.transforms.normalization import IMAGENET_MEAN, IMAGENET_STD

__all__ = [
    "EncoderSpec",
    "FORMAT_VERSION",
    "IMAGENET_MEAN",
    "IMAGENET_STD",
    "MVMRModel",
    "Projector",
    "TORCHVISION_ENCODERS",
    "build_encoder",
    "build_model",
    "encoder_spec",
    "load_backbone",
    "load_backbone_model",
    "load_state_dict_strict",
    "parse_projector_spec",
    "read_checkpoint",
    "read_lightning_checkpoint",
    "read_state_dict",
    "save_backbone",
    "RegressionHead",
    "TargetRegression",
    "TARGET_NORMS",
    "normalize_targets",
]
