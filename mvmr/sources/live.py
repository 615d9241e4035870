"""Representations computed on the device at every step."""

from __future__ import annotations

from collections.abc import Mapping

import torch
from torch import Tensor, nn

from mvmr.errors import ConfigError
from mvmr.representations.projection import RandomProjection
from mvmr.sources.base import FeatureSource
from mvmr.utils.distributed import ProcessGroup

__all__ = ["LiveSource", "MAX_PROJECTION_BYTES"]

#: The largest projection matrix (float32) a live source keeps on the device.
MAX_PROJECTION_BYTES = 4 * 2**30


class LiveSource(FeatureSource):
    """Computes its representations (``{name: module}``, (B, C, H, W) in [0, 1] -> (B, ...)) of the
    clean images at every step, on their device, under ``no_grad`` in float32, flattened to (B, D_k):
    for representations that cannot be cached (``augmented_pixels``) or without a cache folder.

    ``project_dim`` compresses every representation wider than it with the seeded Gaussian
    projection the feature cache applies (:class:`~mvmr.representations.RandomProjection`, keyed by
    the name), so that cached and live features agree. The matrix is kept on the device; one larger
    than :data:`MAX_PROJECTION_BYTES` is refused with a message.
    """

    def __init__(
        self, representations: Mapping[str, nn.Module], *, project_dim: int | None = None, seed: int = 0
    ) -> None:
        self.representations = dict(representations)
        self.project_dim, self.seed = project_dim, int(seed)
        self._projections: dict[str, RandomProjection] = {}

    @property
    def names(self) -> list[str]:
        return list(self.representations)

    def dims(self, channels: int, height: int, width: int) -> dict[str, int]:
        out = {}
        for name, rep in self.representations.items():
            dim = int(rep.output_dim(channels, height, width))  # type: ignore[operator]
            out[name] = dim if self.project_dim is None or dim <= self.project_dim else self.project_dim
        return out

    def prepare(self, device: torch.device | str = "cpu", *, group: ProcessGroup | None = None) -> None:
        for rep in self.representations.values():
            rep.to(device).eval()

    def projection(self, name: str, in_dim: int) -> RandomProjection | None:
        """The projection applied to ``name``'s ``in_dim`` features (None: kept as they are)."""
        if self.project_dim is None or in_dim <= self.project_dim:
            return None
        proj = self._projections.get(name)
        if proj is None or proj.in_dim != in_dim:
            size = in_dim * self.project_dim * 4
            if size > MAX_PROJECTION_BYTES:
                raise ConfigError(
                    f"representations.project_dim: projecting {name!r} ({in_dim:,} values per image) to "
                    f"{self.project_dim} at every step needs a {size / 2**30:.1f} GiB matrix on the device; cache it "
                    f"(representations.cache_dir), lower project_dim, or leave the representation out"
                )
            proj = self._projections[name] = RandomProjection(
                in_dim, self.project_dim, self.seed, key=name, materialize=True
            )
        return proj

    @torch.no_grad()
    def __call__(self, images: Tensor, index: Tensor) -> dict[str, Tensor]:
        out: dict[str, Tensor] = {}
        with torch.autocast(device_type=images.device.type, enabled=False):
            x = images.float()
            for name, rep in self.representations.items():
                features = rep(x).flatten(1).float()
                proj = self.projection(name, features.shape[1])
                out[name] = features if proj is None else proj(features)
        return out
