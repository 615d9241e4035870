"""``MVMRModel``: normalisation + encoder + projector, a plain ``nn.Module`` usable without a trainer."""

from __future__ import annotations

from pathlib import Path
from typing import Sequence

import torch
from torch import nn

from mvmr.errors import ConfigError
from mvmr.models.encoder import EncoderSpec, build_encoder, encoder_spec
from mvmr.models.projector import Projector
from mvmr.transforms.normalization import default_mean_std

__all__ = ["MVMRModel", "build_model"]


class MVMRModel(nn.Module):
    """The network MV-MR trains: images in [0, 1] -> normalise -> encoder -> projector.

    Args:
        encoder: maps normalised (B, C, H, W) to pooled features (B, F).
        projector: maps (B, F) to embeddings (B, D) (``Projector("", F)`` for none).
        mean, std: per-channel normalisation, stored as buffers (saved with the model).
    """

    mean: torch.Tensor
    std: torch.Tensor

    def __init__(self, encoder: nn.Module, projector: nn.Module, *, mean: Sequence[float], std: Sequence[float]) -> None:
        super().__init__()
        mean_t = torch.as_tensor(tuple(mean), dtype=torch.float32)
        std_t = torch.as_tensor(tuple(std), dtype=torch.float32)
        if mean_t.ndim != 1 or mean_t.shape != std_t.shape or len(mean_t) == 0:
            raise ConfigError(f"mean and std must be equal-length sequences of floats, got mean={mean!r}, std={std!r}")
        if any(float(v) <= 0 for v in std):  # on the Python values: the module may be built on the meta device
            raise ConfigError(f"std must be positive, got {std!r}")
        self.encoder = encoder
        self.projector = projector
        #: the normalisation as given (exact floats, for exports); the buffers below apply it
        self.mean_values: tuple[float, ...] = tuple(float(v) for v in mean)
        self.std_values: tuple[float, ...] = tuple(float(v) for v in std)
        self.register_buffer("mean", mean_t.view(1, -1, 1, 1))
        self.register_buffer("std", std_t.view(1, -1, 1, 1))

    @property
    def channels(self) -> int:
        """The number of input channels the normalisation expects."""
        return int(self.mean.shape[1])

    @property
    def spec(self) -> EncoderSpec | None:
        """The encoder's build spec (None for an encoder not made by ``build_encoder``)."""
        return encoder_spec(self.encoder)

    def normalize(self, x: torch.Tensor) -> torch.Tensor:
        """(x - mean) / std, after checking that ``x`` is a (B, C, H, W) float batch."""
        if x.ndim != 4 or x.shape[1] != self.channels or not x.is_floating_point():
            raise ValueError(
                f"expected float images in [0, 1] of shape (B, {self.channels}, H, W), "
                f"got {tuple(x.shape)} {x.dtype}"
            )
        return (x - self.mean.to(x.dtype)) / self.std.to(x.dtype)

    def features(self, x: torch.Tensor) -> torch.Tensor:
        """Pooled encoder features (B, F) of images in [0, 1] (what downstream tasks use)."""
        return self.encoder(self.normalize(x))

    def forward_with_features(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """``(features, embeddings)`` in one pass (the online probe reads the features)."""
        h = self.features(x)
        return h, self.projector(h)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Embeddings z (B, D) of images in [0, 1]."""
        return self.projector(self.features(x))

    def backbone_state_dict(self) -> dict[str, torch.Tensor]:
        """The encoder's state dict alone (keys as in the bare encoder, e.g. torchvision's)."""
        return self.encoder.state_dict()


def build_model(
    encoder: str = "resnet18",
    projector: str = "8192-8192-8192",
    *,
    small_images: bool = False,
    in_chans: int = 3,
    mean: Sequence[float] | None = None,
    std: Sequence[float] | None = None,
    weights: str | Path | None = None,
) -> MVMRModel:
    """Build encoder + projector into an :class:`MVMRModel`.

    ``mean``/``std`` default to ImageNet's for 3 channels and 0.5 otherwise. ``weights`` is an
    optional local encoder weight file (see :func:`build_encoder`).
    """
    enc, dim = build_encoder(encoder, small_images=small_images, in_chans=in_chans, weights=weights)
    default_mean, default_std = default_mean_std(in_chans)
    mean = default_mean if mean is None else tuple(mean)
    std = default_std if std is None else tuple(std)
    if len(mean) != in_chans or len(std) != in_chans:
        raise ConfigError(f"mean/std need {in_chans} values (in_chans={in_chans}), got mean={mean!r}, std={std!r}")
    return MVMRModel(enc, Projector(projector, dim), mean=mean, std=std)
