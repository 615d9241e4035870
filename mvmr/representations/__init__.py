"""Representations: fixed maps from an image batch (B, C, H, W) in [0, 1] to features (B, D).

The hand-crafted representations of paper section 7 (appendix B, table 6) are registered on import
and can be built by name (``build("hog", orientations=24)``), e.g. from a config:

- ``pixels``: :class:`Pixels`, the flattened image;
- ``scatnet``: :class:`ScatNet`, the scattering transform (kymatio, J = 2, L = 8);
- ``hog``: :class:`HOG`, histograms of oriented gradients (24 bins, 8-pixel cells; equals skimage);
- ``local_std``: :class:`LocalStd`, the local standard deviation filter (3 x 3);
- ``augmented_pixels``: :class:`AugmentedPixels`, a randomly augmented copy (not deterministic).

:class:`mvmr.cache.FeatureCache` stores the deterministic ones of a dataset on disk. A frozen teacher for
distillation is a representation too (``build("teacher", spec="efficientnet-lite0")``, see
:func:`build_teacher`).
"""

from mvmr.representations.augmented_pixels import AugmentedPixels
from mvmr.representations.base import Representation, available, build, register
from mvmr.representations.hog import HOG
from mvmr.representations.local_std import LocalStd
from mvmr.representations.pixels import Pixels
from mvmr.representations.projection import RandomProjection
from mvmr.representations.scatnet import ScatNet
from mvmr.representations.teachers import PrecomputedEmbeddings, Teacher, build_teacher

__all__ = [
    "AugmentedPixels",
    "HOG",
    "LocalStd",
    "Pixels",
    "PrecomputedEmbeddings",
    "RandomProjection",
    "Representation",
    "ScatNet",
    "Teacher",
    "available",
    "build",
    "build_teacher",
    "register",
]
