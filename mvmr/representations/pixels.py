"""The flattened image itself (paper section 7, appendix B: "original image")."""

from __future__ import annotations

import torch

from mvmr.representations.base import Representation, register

__all__ = ["Pixels"]


@register("pixels")
class Pixels(Representation):
    """The original image flattened into a feature vector (paper section 7, table 6 "Original image").

    ``forward`` maps (B, C, H, W) in [0, 1] to (B, C * H * W) float32, in channel-major (C, H, W) order.
    """

    name = "pixels"
    deterministic = True

    def config(self) -> dict[str, object]:
        """The settings (none), for feature-cache manifests."""
        return {}

    def output_dim(self, channels: int, height: int, width: int) -> int:
        if min(channels, height, width) < 1:
            raise ValueError(f"Pixels: empty image shape ({channels}, {height}, {width})")
        return channels * height * width

    @torch.no_grad()
    def forward(self, images: torch.Tensor) -> torch.Tensor:
        self.check_images(images)
        return images.reshape(images.shape[0], -1).float()
