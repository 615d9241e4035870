"""Encoders, projectors, the MV-MR model, and backbone export/import.

- :func:`build_encoder` -> ``(encoder, feature_dim)``: torchvision resnet18/34/50 or ``timm:<name>``
- :class:`Projector` (spec ``"8192-8192-8192"``: Linear-BN-ReLU blocks + final Linear; ``""`` identity)
- :class:`MVMRModel` / :func:`build_model`: images in [0, 1] -> normalise -> encoder -> projector
- :func:`save_backbone`, :func:`load_backbone`, :func:`load_backbone_model`
- :func:`read_checkpoint` (the one ``torch.load``, always ``weights_only=True``), :func:`read_state_dict`,
  :func:`load_state_dict_strict`

``IMAGENET_MEAN`` / ``IMAGENET_STD`` are :mod:`mvmr.transforms.normalization`'s, re-exported for
code that builds an :class:`MVMRModel` by hand.
"""

from __future__ import annotations

from mvmr.models.checkpoint_io import FORMAT_VERSION, load_backbone, load_backbone_model, save_backbone
from mvmr.models.encoder import TORCHVISION_ENCODERS, EncoderSpec, build_encoder, encoder_spec
from mvmr.models.mvmr_model import MVMRModel, build_model
from mvmr.models.projector import Projector, parse_projector_spec
from mvmr.models.state_io import load_state_dict_strict, read_checkpoint, read_lightning_checkpoint, read_state_dict
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
]
