"""Teacher embeddings computed elsewhere (e.g. CLIP run on another machine): ``embeddings:<file.npy>``."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch

from mvmr.errors import DataError
from mvmr.representations.teachers.weights import weights_fingerprint
from mvmr.utils.row_index import row_index

__all__ = ["PrecomputedEmbeddings"]

_CHECK_ROWS = 65536


class PrecomputedEmbeddings:
    """Read-only, FeatureCache-like view of precomputed teacher embeddings (one row per index).

    Row ``i`` of the 2-D ``.npy`` array is the embedding of the clean ``dataset[i]`` (same dataset, same
    order, same clean preprocessing). It cannot embed images, so it is not a
    :class:`~mvmr.representations.Representation`; it reads like a :class:`~mvmr.cache.FeatureCache`:
    ``names == [name]``, ``get(indices) -> {name: float32 (B, D)}`` (the dataset indices of the batch, which
    ``TwoViews`` returns; unordered and repeated indices are fine) and ``emb[i] -> {name: (D,)}``, so
    ``CachedDataset(dataset, emb)`` works too. Training reads it through
    :class:`~mvmr.sources.PrecomputedSource` (loss term ``dcor/<name>``). The file is memory-mapped and
    reopened lazily after pickling, so DataLoader workers can read it.

    Args:
        path: a 2-D ``.npy`` file (float16/32/64), shape (N, D).
        name: the representation name (loss-term key ``dcor/<name>``).
        dataset_length: when given, N must equal it.
        check_finite: scan the file once for NaN / inf values (in chunks).

    Raises:
        DataError: missing or unreadable file, wrong shape or dtype, non-finite values, or N other than
            ``dataset_length``.
    """

    deterministic = True

    def __init__(
        self, path: str | Path, *, name: str = "teacher", dataset_length: int | None = None, check_finite: bool = True
    ) -> None:
        self.path = Path(path).expanduser()
        self.name = name
        if not self.path.is_file():
            raise DataError(
                f"teacher embeddings file not found: {self.path.resolve()}; expected a 2-D .npy array with "
                "one row per dataset item (row i = teacher embedding of dataset[i])"
            )
        self._array: np.ndarray | None = None
        array = self._rows()
        if array.ndim != 2 or array.shape[0] == 0 or array.shape[1] == 0:
            raise DataError(
                f"teacher embeddings {self.path} must be a non-empty 2-D array (N, D), got shape {array.shape}"
            )
        if not np.issubdtype(array.dtype, np.floating):
            raise DataError(f"teacher embeddings {self.path} must be floating point, got dtype {array.dtype}")
        if dataset_length is not None and int(dataset_length) != array.shape[0]:
            raise DataError(
                f"teacher embeddings {self.path} have {array.shape[0]} rows but the dataset has "
                f"{int(dataset_length)} items: row i must be the embedding of dataset[i]"
            )
        if check_finite:
            for start in range(0, array.shape[0], _CHECK_ROWS):
                block = np.asarray(array[start : start + _CHECK_ROWS])
                if not np.isfinite(block).all():
                    row = start + int(np.argwhere(~np.isfinite(block))[0][0])
                    raise DataError(f"teacher embeddings {self.path} contain a non-finite value in row {row}")
        self._n, self.dim = int(array.shape[0]), int(array.shape[1])
        self._dtype = str(array.dtype)
        self._fingerprint = weights_fingerprint(self.path)

    def _rows(self) -> np.ndarray:
        """The memory-mapped (N, D) array, opened on first use in each process."""
        if self._array is None:
            try:
                self._array = np.load(self.path, mmap_mode="r", allow_pickle=False)
            except (OSError, ValueError) as exc:
                raise DataError(f"cannot read teacher embeddings {self.path} (not a .npy array?): {exc}") from exc
        return self._array

    @property
    def names(self) -> list[str]:
        """``[name]``."""
        return [self.name]

    def __len__(self) -> int:
        return self._n

    def get(
        self, indices: torch.Tensor | np.ndarray | Sequence[int] | int, *, device: torch.device | str | None = None
    ) -> dict[str, torch.Tensor]:
        """``{name: float32 (B, D)}`` for the dataset indices (an int gives ``(D,)``)."""
        index = row_index(indices, self._n, what=f"teacher embeddings of {self._n} rows")
        unique, inverse = index.unique, index.inverse
        rows = torch.from_numpy(np.asarray(self._rows()[unique], dtype=np.float32)[inverse])
        rows = rows[0] if index.scalar else rows
        return {self.name: rows.to(device) if device is not None else rows}

    def __getitem__(self, index: int) -> dict[str, torch.Tensor]:
        return self.get(int(index))

    def config(self) -> dict[str, Any]:
        """JSON-able description (file, shape, dtype and fingerprint)."""
        return {
            "spec": f"embeddings:{self.path}",
            "kind": "embeddings",
            "embed_dim": self.dim,
            "rows": self._n,
            "dtype": self._dtype,
            "file": self._fingerprint,
        }

    def __getstate__(self) -> dict[str, Any]:
        state = dict(self.__dict__)
        state["_array"] = None  # reopened lazily in each process
        return state

    def __repr__(self) -> str:
        return f"PrecomputedEmbeddings({str(self.path)!r}, name={self.name!r}, rows={self._n}, dim={self.dim})"
