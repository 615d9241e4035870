"""Per-channel input normalisation statistics, defined once for the whole library.

- :data:`IMAGENET_MEAN` / :data:`IMAGENET_STD`: the ImageNet statistics that torchvision and timm
  ImageNet models expect, and mvmr's default for RGB encoders;
- :data:`HALF_MEAN` / :data:`HALF_STD`: ``(x - 0.5) / 0.5``, i.e. inputs in [-1, 1] (TF-style models
  such as EfficientNet-Lite), and mvmr's default per channel for images that are not RGB.
"""

from __future__ import annotations

__all__ = ["IMAGENET_MEAN", "IMAGENET_STD", "HALF_MEAN", "HALF_STD", "default_mean_std"]

IMAGENET_MEAN: tuple[float, float, float] = (0.485, 0.456, 0.406)
IMAGENET_STD: tuple[float, float, float] = (0.229, 0.224, 0.225)
HALF_MEAN: tuple[float, float, float] = (0.5, 0.5, 0.5)
HALF_STD: tuple[float, float, float] = (0.5, 0.5, 0.5)


def default_mean_std(in_chans: int) -> tuple[tuple[float, ...], tuple[float, ...]]:
    """The ImageNet statistics for 3 channels, the "half" normalisation on each channel otherwise."""
    if in_chans == 3:
        return IMAGENET_MEAN, IMAGENET_STD
    return (HALF_MEAN[0],) * in_chans, (HALF_STD[0],) * in_chans
