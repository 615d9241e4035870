"""The one thing the evaluation protocols evaluate: a :class:`FeatureExtractor`, built by
:mod:`mvmr.evaluation.encoders`."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
from torch import nn

from mvmr.transforms.normalization import IMAGENET_MEAN, IMAGENET_STD

__all__ = ["FeatureExtractor"]


class FeatureExtractor(nn.Module):
    """Normalise, run a backbone and pool: images (B, C, H, W) in [0, 1] -> features (B, F).

    Args:
        backbone: the encoder (or representation); its output may be (B, F), a feature map
            (B, F, h, w) (average-pooled) or tokens (B, T, F) (averaged).
        mean, std: per-channel input normalisation; ``None`` feeds the raw [0, 1] image.
        description: how the extractor was made (e.g. ``"random:resnet18"``), used in reports.
        feature_dim: F when known in advance; ``trainable``: False for fixed maps (representations).
        metadata: free-form details (checkpoint metadata, architecture, ...), saved with results.
    """

    mean: torch.Tensor | None  # buffers (1, C, 1, 1), both None or both set
    std: torch.Tensor | None

    def __init__(
        self,
        backbone: nn.Module,
        *,
        mean: Sequence[float] | None = IMAGENET_MEAN,
        std: Sequence[float] | None = IMAGENET_STD,
        description: str = "encoder",
        feature_dim: int | None = None,
        trainable: bool = True,
        metadata: dict[str, Any] | None = None,
    ) -> None:
        super().__init__()
        if (mean is None) != (std is None):
            raise ValueError("give both mean and std, or neither")
        self.backbone = backbone
        mean_t = std_t = None
        if mean is not None and std is not None:
            mean_t = torch.as_tensor([float(m) for m in mean], dtype=torch.float32)
            std_t = torch.as_tensor([float(s) for s in std], dtype=torch.float32)
            if mean_t.shape != std_t.shape or mean_t.ndim != 1:
                raise ValueError(f"mean and std must be 1-D of equal length, got {list(mean)} and {list(std)}")
            if bool((std_t <= 0).any()):
                raise ValueError(f"std must be positive, got {list(std)}")
            mean_t, std_t = mean_t.view(1, -1, 1, 1), std_t.view(1, -1, 1, 1)
        self.register_buffer("mean", mean_t, persistent=False)
        self.register_buffer("std", std_t, persistent=False)
        self.description = description
        self.feature_dim = feature_dim
        self.trainable = trainable
        self.metadata = dict(metadata or {})

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        """Features (B, F) of images (B, C, H, W) in [0, 1]; grey images feed a 3-channel backbone."""
        if images.ndim != 4:
            raise ValueError(f"expected images of shape (B, C, H, W), got {tuple(images.shape)}")
        x = images
        if self.mean is not None and self.std is not None:
            channels = self.mean.shape[1]
            if x.shape[1] == 1 and channels == 3:
                x = x.expand(-1, 3, -1, -1)
            elif x.shape[1] != channels:
                raise ValueError(f"{self.description} expects {channels}-channel images, got {x.shape[1]} channels")
            x = (x - self.mean) / self.std
        out = self.backbone(x)
        if isinstance(out, (tuple, list)):
            out = out[0]
        if isinstance(out, dict):
            raise ValueError(f"{self.description} returned a dict; wrap it to return a feature tensor")
        if out.ndim == 4:
            out = out.mean(dim=(2, 3))
        elif out.ndim == 3:
            out = out.mean(dim=1)
        elif out.ndim != 2:
            raise ValueError(f"{self.description} returned features of shape {tuple(out.shape)}")
        return out

    def extra_repr(self) -> str:
        """How the extractor was made, shown by ``repr``."""
        return f"description={self.description!r}, feature_dim={self.feature_dim}, trainable={self.trainable}"
