"""The projector: an MLP from encoder features to the embeddings the loss sees.

Spec strings follow the paper (section 7: "two linear layers of the size 8192 followed by batch
normalization and ReLU and output linear layer"): ``"a-b-c"`` builds

    Linear(in, a) + BatchNorm1d(a) + ReLU,  Linear(a, b) + BatchNorm1d(b) + ReLU,  Linear(b, c)

i.e. every size but the last is a hidden Linear-BN-ReLU block and the last is a plain Linear
(with bias). The hidden Linears have no bias: the batch norm right after cancels it.
``"8192-8192-8192"`` is the paper's projector; ``"512"`` is a single Linear; ``""`` is the
identity (the loss then sees the encoder features).
"""

from __future__ import annotations

import torch
from torch import nn

from mvmr.errors import ConfigError

__all__ = ["Projector", "parse_projector_spec"]


def parse_projector_spec(spec: str) -> list[int]:
    """``"8192-8192-8192"`` -> ``[8192, 8192, 8192]``; ``""`` -> ``[]``.

    Raises:
        ConfigError: naming the spec when it is not dash-separated positive integers.
    """
    if not isinstance(spec, str):
        raise ConfigError(f"projector spec must be a string like '8192-8192-8192', got {spec!r}")
    text = spec.strip()
    if not text:
        return []
    sizes: list[int] = []
    for part in text.split("-"):
        part = part.strip()
        if not (part.isascii() and part.isdigit()) or int(part) <= 0:
            raise ConfigError(
                f"invalid projector spec {spec!r}: expected dash-separated positive sizes like '8192-8192-8192' "
                f"(or '' for none), got the part {part!r}"
            )
        sizes.append(int(part))
    return sizes


class Projector(nn.Module):
    """MLP projector built from a spec string (see the module docstring).

    Args:
        spec: e.g. ``"8192-8192-8192"``; ``""`` for the identity.
        in_dim: the encoder's feature dimension.

    Attributes:
        sizes: the parsed sizes.
        out_dim: the embedding dimension (``in_dim`` for the identity).
        layers: the ``nn.Sequential`` of layers.
    """

    def __init__(self, spec: str, in_dim: int) -> None:
        super().__init__()
        if isinstance(in_dim, bool) or not isinstance(in_dim, int) or in_dim <= 0:
            raise ConfigError(f"projector in_dim must be a positive int, got {in_dim!r}")
        self.spec = spec
        self.sizes = parse_projector_spec(spec)
        self.in_dim = in_dim
        layers: list[nn.Module] = []
        prev = in_dim
        for size in self.sizes[:-1]:
            layers += [nn.Linear(prev, size, bias=False), nn.BatchNorm1d(size), nn.ReLU(inplace=True)]
            prev = size
        if self.sizes:
            layers.append(nn.Linear(prev, self.sizes[-1]))
        self.layers = nn.Sequential(*layers)
        self.out_dim = self.sizes[-1] if self.sizes else in_dim

    def forward(self, h: torch.Tensor) -> torch.Tensor:
        """(B, in_dim) features -> (B, out_dim) embeddings."""
        if h.ndim != 2 or h.shape[1] != self.in_dim:
            raise ValueError(f"projector expects features of shape (B, {self.in_dim}), got {tuple(h.shape)}")
        return self.layers(h)

    def extra_repr(self) -> str:
        return f"spec={self.spec!r}, in_dim={self.in_dim}, out_dim={self.out_dim}"
