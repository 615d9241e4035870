"""Seeded Gaussian random projection (Johnson-Lindenstrauss) that never stores its matrix.

Pairwise distances are preserved within a relative error of about ``sqrt(log(n) / out_dim)`` for ``n``
points, so distance correlation is nearly unchanged by the projection.

The matrix is a pure function of ``(seed, key, in_dim, out_dim)``: it is generated in blocks of
:data:`BLOCK_ROWS` input dimensions, each by its own CPU ``torch.Generator`` seeded (SHA-256, not
Python's salted ``hash``) from ``(seed, key, block index)``. Hence the same arguments give the same
matrix in every process and on every device (for a given PyTorch version), different ``key`` s give
independent matrices, and the matrix never has to exist in memory at once: a ScatNet-sized projection
(140k x 4096 float32 = 2.3 GB) is applied block by block, regenerating each block at every call (about
the cost of the product, so apply it to large batches); a small one is kept in memory.
"""

from __future__ import annotations

import hashlib

import torch
from torch import nn

__all__ = ["BLOCK_ROWS", "RandomProjection", "derive_seed"]

#: Rows (input dimensions) per independently seeded block. Part of the matrix definition:
#: changing it changes every projection, so it is recorded in cache manifests.
BLOCK_ROWS: int = 1024


def derive_seed(seed: int, key: str = "", block: int | None = None) -> int:
    """A 63-bit generator seed derived from ``(seed, key[, block])``, stable across processes."""
    if not isinstance(seed, int) or isinstance(seed, bool):
        raise TypeError(f"seed must be an int, got {type(seed).__name__}")
    text = f"mvmr-random-projection\x00{seed}\x00{key}"
    if block is not None:
        text += f"\x00{block}"
    digest = hashlib.sha256(text.encode("utf-8")).digest()
    return int.from_bytes(digest[:8], "little") & ((1 << 63) - 1)


class RandomProjection(nn.Module):
    """Gaussian random projection ``x -> x @ W`` with ``W[i, j] ~ N(0, 1/out_dim)``.

    Args:
        in_dim, out_dim: the input feature dimension and the JL target dimension (e.g. 4096).
        seed: the user-facing seed.
        key: a label mixed into the seed (the feature cache passes the representation name), so
            that different representations get independent matrices for the same ``seed``.
        materialize: keep the whole matrix in memory after first use, as a non-persistent buffer
            (not in the ``state_dict``). ``None`` (default): when it takes at most ``max_matrix_bytes``
            as float32.

    ``forward`` accepts any floating ``(..., in_dim)`` tensor on any device and returns
    ``(..., out_dim)`` in float64 for float64 input and float32 otherwise.
    """

    weight: torch.Tensor | None  # the materialized matrix (a non-persistent buffer), made at first use

    def __init__(
        self,
        in_dim: int,
        out_dim: int,
        seed: int = 0,
        *,
        key: str = "",
        materialize: bool | None = None,
        max_matrix_bytes: int = 256 * 2**20,
    ) -> None:
        super().__init__()
        for label, value in (("in_dim", in_dim), ("out_dim", out_dim)):
            if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                raise ValueError(f"RandomProjection {label} must be a positive int, got {value!r}")
        self.in_dim = in_dim
        self.out_dim = out_dim
        self.seed = seed
        self.key = key
        derive_seed(seed, key)  # checks the seed now rather than at the first call
        self.materialize = in_dim * out_dim * 4 <= max_matrix_bytes if materialize is None else bool(materialize)
        self.register_buffer("weight", None, persistent=False)

    @property
    def num_blocks(self) -> int:
        """How many :data:`BLOCK_ROWS`-row blocks make up the matrix."""
        return -(-self.in_dim // BLOCK_ROWS)

    def block(self, index: int) -> torch.Tensor:
        """Rows ``[index * BLOCK_ROWS, ...)`` of the matrix, float32 on the CPU."""
        if not 0 <= index < self.num_blocks:
            raise IndexError(f"block {index} out of range for {self.num_blocks} blocks")
        start = index * BLOCK_ROWS
        rows = min(BLOCK_ROWS, self.in_dim - start)
        generator = torch.Generator(device="cpu")
        generator.manual_seed(derive_seed(self.seed, self.key, index))
        block = torch.randn(rows, self.out_dim, generator=generator, dtype=torch.float32)
        return block.mul_(self.out_dim**-0.5)

    def matrix(self) -> torch.Tensor:
        """The full ``(in_dim, out_dim)`` float32 CPU matrix (mind the memory for big inputs)."""
        if self.weight is not None:
            return self.weight.detach().to("cpu", torch.float32)
        return torch.cat([self.block(i) for i in range(self.num_blocks)], dim=0)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Project the last dimension of ``x`` from ``in_dim`` to ``out_dim``."""
        if not isinstance(x, torch.Tensor) or not x.is_floating_point():
            raise ValueError("RandomProjection expects a floating-point tensor")
        if x.ndim == 0 or x.shape[-1] != self.in_dim:
            raise ValueError(f"RandomProjection expects (..., {self.in_dim}) features, got {tuple(x.shape)}")
        dtype = torch.float64 if x.dtype == torch.float64 else torch.float32
        x = x.to(dtype)
        if self.materialize:
            if self.weight is None:
                self.weight = self.matrix()
            if self.weight.device != x.device:
                self.weight = self.weight.to(x.device)
            return x @ self.weight.to(dtype)
        flat = x.reshape(-1, self.in_dim)
        out = flat.new_zeros(flat.shape[0], self.out_dim)
        for index in range(self.num_blocks):
            start = index * BLOCK_ROWS
            block = self.block(index).to(device=x.device, dtype=dtype)
            out.addmm_(flat[:, start : start + block.shape[0]], block)
        return out.reshape(*x.shape[:-1], self.out_dim)

    def extra_repr(self) -> str:
        return f"in_dim={self.in_dim}, out_dim={self.out_dim}, seed={self.seed}, key={self.key!r}"
