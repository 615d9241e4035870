"""The frozen teacher: a pretrained network seen as a deterministic :class:`Representation`."""

from __future__ import annotations

import itertools
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from mvmr.representations.base import Representation
from mvmr.representations.teachers.preprocess import ImagePreprocess

__all__ = ["Teacher"]


class Teacher(Representation):
    """A frozen pretrained encoder that embeds the clean view for MV-MR distillation.

    ``teacher(images)`` takes float images (B, C, H, W) in [0, 1] of any size (C = 1 or 3),
    applies the teacher's own :class:`ImagePreprocess` (resize, centre crop, normalisation) and
    returns float32 embeddings (B, ``embed_dim``). It always runs under ``torch.no_grad()``
    (not ``inference_mode``: the result is then used in the student's autograd graph), and its
    parameters never require gradients. It stays in eval mode: :meth:`train` is a no-op, so
    batch-norm statistics and dropout are frozen even inside a module put in training mode.
    Being deterministic, its embeddings can be stored in a :class:`~mvmr.cache.FeatureCache`.

    Args:
        net: maps a preprocessed batch (B, 3, S, S) to embeddings (B, embed_dim).
        spec: the spec the teacher was built from (e.g. ``"open_clip:ViT-B-16"``).
        settings: JSON-able description of the weights and options (for :meth:`config`, which
            identifies the teacher in a cache manifest).
        head: optional classifier from embeddings to class logits (a sanity check, see
            :meth:`logits`; not part of the embedding).
        l2_normalize: divide each embedding by its L2 norm.
        name: the loss-term key (``dcor/<name>``).
    """

    deterministic = True

    def __init__(
        self,
        *,
        net: nn.Module,
        preprocess: ImagePreprocess,
        embed_dim: int,
        spec: str,
        settings: dict[str, Any] | None = None,
        head: nn.Module | None = None,
        l2_normalize: bool = False,
        name: str = "teacher",
    ) -> None:
        super().__init__()
        if isinstance(embed_dim, bool) or not isinstance(embed_dim, int) or embed_dim < 1:
            raise ValueError(f"embed_dim must be a positive int, got {embed_dim!r}")
        self.net = net
        self.head = head
        self.preprocess = preprocess
        self.embed_dim = int(embed_dim)
        self.spec = spec
        self.settings = dict(settings or {})
        self.l2_normalize = bool(l2_normalize)
        self.name = name
        self.requires_grad_(False)
        super().train(False)

    def train(self, mode: bool = True) -> Teacher:
        """Keep the teacher in eval mode whatever ``mode`` is (frozen BN statistics, no dropout)."""
        return super().train(False)

    @property
    def input_size(self) -> int:
        """Side of the square image the network receives."""
        return self.preprocess.input_size

    @property
    def mean(self) -> tuple[float, float, float]:
        """Per-channel mean subtracted from the [0, 1] input."""
        return self.preprocess.mean

    @property
    def std(self) -> tuple[float, float, float]:
        """Per-channel standard deviation the input is divided by."""
        return self.preprocess.std

    @property
    def num_parameters(self) -> int:
        """Parameters of the embedding network (the optional classifier head excluded)."""
        return sum(p.numel() for p in self.net.parameters())

    def output_dim(self, channels: int, height: int, width: int) -> int:
        """``embed_dim`` for any image size (the teacher resizes); channels must be 1 or 3."""
        if channels not in (1, 3):
            raise ValueError(f"a teacher takes 1- or 3-channel images, got {channels} channels")
        if height < 1 or width < 1:
            raise ValueError(f"image size must be positive, got {height}x{width}")
        return self.embed_dim

    def config(self) -> dict[str, Any]:
        """JSON-able settings identifying this teacher (recorded in feature-cache manifests)."""
        return {
            "spec": self.spec,
            "embed_dim": self.embed_dim,
            "l2_normalize": self.l2_normalize,
            "preprocess": self.preprocess.to_dict(),
            **self.settings,
        }

    def extra_repr(self) -> str:
        return (
            f"name={self.name!r}, spec={self.spec!r}, embed_dim={self.embed_dim}, "
            f"input_size={self.input_size}, mean={self.mean}, std={self.std}"
        )

    def prepare(self, images: torch.Tensor) -> torch.Tensor:
        """The network input for ``images``: moved to the teacher's device and dtype, preprocessed."""
        self.check_images(images)
        ref = next(itertools.chain(self.net.parameters(), self.net.buffers()), None)
        if ref is not None and ref.is_floating_point():
            images = images.to(device=ref.device, dtype=ref.dtype)
        return self.preprocess(images)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        """Embeddings (B, embed_dim), float32, without gradients."""
        with torch.no_grad():
            out = self.net(self.prepare(images))
            if isinstance(out, (tuple, list)):
                out = out[0]
            out = out.reshape(out.shape[0], -1)
            if out.shape[1] != self.embed_dim:
                raise RuntimeError(
                    f"teacher {self.spec!r} produced embeddings of shape {tuple(out.shape)}, "
                    f"expected (B, {self.embed_dim})"
                )
            if self.l2_normalize:
                out = F.normalize(out, dim=1)
            return out.float()

    def logits(self, images: torch.Tensor) -> torch.Tensor:
        """Class logits of the teacher's original classifier (to check that it is really pretrained).

        Uses the raw (un-normalised) embedding. Raises ValueError for teachers without a head
        (CLIP image towers).
        """
        if self.head is None:
            raise ValueError(f"teacher {self.spec!r} has no classifier head")
        with torch.no_grad():
            feats = self.net(self.prepare(images))
            return self.head(feats.reshape(feats.shape[0], -1)).float()
