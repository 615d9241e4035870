"""Reading a feature cache: memory-mapped float16 rows by dataset index.

A :class:`FeatureCache` pickles as its path and manifest and reopens its memory maps lazily in each
process, so DataLoader workers can read it. Every read is checked (:mod:`mvmr.cache.integrity`):
a damaged file raises :class:`~mvmr.cache.integrity.CorruptCacheError` and no row of a damaged
chunk is ever returned.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch.utils.data import Dataset

from mvmr.cache.integrity import ChunkVerifier, CorruptCacheError, check_file
from mvmr.cache.manifest import DTYPE, VIEWS_DTYPE, CacheError, IncompleteCacheError, check_manifest, read_manifest
from mvmr.utils.row_index import row_index

__all__ = ["FeatureCache", "CachedDataset", "StoredViewParameters"]


class FeatureCache:
    """Read-only, memory-mapped features of a dataset's deterministic representations: open with
    :meth:`open`; ``cache.get(indices)`` returns ``{name: float32 tensor (B, D_k)}``."""

    def __init__(self, root: str | os.PathLike[str], manifest: Mapping[str, Any], *, verify: bool = True) -> None:
        """Wrap an already validated cache; use :meth:`open` instead."""
        self.root = Path(root)
        self.manifest: dict[str, Any] = dict(manifest)
        self.verify = bool(verify)
        self._reps: dict[str, dict[str, Any]] = {r["name"]: r for r in self.manifest["representations"]}
        self._arrays: dict[str, np.ndarray] = {}
        self._verifiers: dict[str, ChunkVerifier] = {}
        self._pid = os.getpid()

    @classmethod
    def open(
        cls, root: str | os.PathLike[str], *, expect: Mapping[str, Any] | None = None, verify: bool = True
    ) -> FeatureCache:
        """Open a complete cache; with ``expect`` (:func:`~mvmr.cache.manifest.expected_manifest`),
        refuse one that does not match, naming the field (:class:`CacheMismatchError`).

        Every file's size and header are checked now (:class:`~mvmr.cache.integrity.CorruptCacheError`),
        each chunk of rows when it is first read. ``verify=False`` skips the checksums (sizes are
        still checked): for measuring what the checks cost, not for training. A missing cache raises
        FileNotFoundError, an interrupted build :class:`IncompleteCacheError`.
        """
        root = Path(root)
        cache = cls(root, read_manifest(root), verify=verify)
        if expect is not None:
            check_manifest(root, cache.manifest, expect)
        for name in cache.names:
            cache.array(name)  # every file present, with its size, header, shape and dtype
        if cache.view_columns is not None:
            cache._views_array()
        return cache

    @property
    def names(self) -> list[str]:
        """Representation names, in build order."""
        return list(self._reps)

    @property
    def view_columns(self) -> list[str] | None:
        """The columns of the stored views' parameters (:meth:`view_parameters`); None without stored views."""
        views = self.manifest.get("views")
        return None if not views else list(views["columns"])

    @property
    def dims(self) -> dict[str, int]:
        """Stored dimension ``D_k`` per representation (after projection)."""
        return {name: int(r["dim"]) for name, r in self._reps.items()}

    @property
    def raw_dims(self) -> dict[str, int]:
        """Dimension per representation before projection."""
        return {name: int(r["raw_dim"]) for name, r in self._reps.items()}

    @property
    def fingerprint(self) -> str:
        """The dataset fingerprint the cache was built for."""
        return str(self.manifest["dataset_fingerprint"])

    def __len__(self) -> int:
        return int(self.manifest["n"])

    def __repr__(self) -> str:
        dims = ", ".join(f"{k}={v}" for k, v in self.dims.items())
        return f"FeatureCache({str(self.root)!r}, n={len(self)}, {dims})"

    def __getstate__(self) -> dict[str, Any]:
        return {"root": str(self.root), "manifest": self.manifest, "verify": self.verify}

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__init__(state["root"], state["manifest"], verify=state.get("verify", True))  # type: ignore[misc]

    def array(self, name: str) -> np.ndarray:
        """The read-only ``(N, D_k)`` float16 memory map of one representation."""
        try:
            entry = self._reps[name]
        except KeyError:
            raise KeyError(f"no representation {name!r} in cache; it has {self.names}") from None
        return self._mapped(name, entry["file"], int(entry["dim"]), DTYPE)

    def _views_array(self) -> np.ndarray:
        """The read-only ``(N, P)`` float64 memory map of the stored views' parameters."""
        columns = self.view_columns
        if columns is None:
            raise CacheError(f"the feature cache at {self.root} stores no augmented views (no view parameters)")
        return self._mapped("\x00views", self.manifest["views"]["file"], len(columns), VIEWS_DTYPE)

    def _mapped(self, key: str, file: str, dim: int, dtype: type) -> np.ndarray:
        """The memory map of ``file`` (N, dim) of ``dtype``, checked when first opened, kept under ``key``."""
        if self._pid != os.getpid():  # a forked worker: its own memory maps, its own checks
            self._arrays, self._verifiers, self._pid = {}, {}, os.getpid()
        arr = self._arrays.get(key)
        if arr is None:
            path = self.root / file
            integrity = (self.manifest.get("integrity") or {}).get(file)
            if integrity is None:
                raise CorruptCacheError(
                    f"feature cache manifest {self.root / 'manifest.json'} has no integrity record "
                    f"for {file}; rebuild the cache"
                )
            check_file(path, integrity, header=self.verify)
            try:
                arr = np.load(path, mmap_mode="r")
            except (OSError, ValueError) as err:
                raise IncompleteCacheError(f"feature cache file {path} is unreadable ({err}); rebuild it") from None
            expected = (len(self), dim)
            if arr.shape != expected or arr.dtype != dtype:
                raise IncompleteCacheError(
                    f"feature cache file {path} has shape {arr.shape} / {arr.dtype}, "
                    f"expected {expected} / {np.dtype(dtype).name}; rebuild it"
                )
            if self.verify:
                self._verifiers[key] = ChunkVerifier(path, arr, integrity)
            self._arrays[key] = arr
        return arr

    def view_parameters(self, rows: np.ndarray | Sequence[int] | torch.Tensor) -> np.ndarray:
        """The stored parameters (``(len(rows), P)`` float64, columns :attr:`view_columns`) of the views in
        ``rows``, checked against their checksums like every read."""
        array = self._views_array()
        index = row_index(rows, len(self), what=f"a feature cache of {len(self)} views")
        unique, inverse = index.unique, index.inverse
        verifier = self._verifiers.get("\x00views")
        if verifier is not None:
            verifier.check_rows(unique)
        return np.array(array[unique], dtype=np.float64)[inverse]

    def verify_all(self, names: Sequence[str] | None = None) -> None:
        """Check every chunk of every file now (a full read), raising
        :class:`~mvmr.cache.integrity.CorruptCacheError` at the first damaged one."""
        for name in names if names is not None else self.names:
            self.array(name)
            verifier = self._verifiers.get(name)
            if verifier is not None:
                verifier.check_all()
        if names is None and self.view_columns is not None:
            self._views_array()
            verifier = self._verifiers.get("\x00views")
            if verifier is not None:
                verifier.check_all()

    def get(
        self,
        indices: torch.Tensor | np.ndarray | Sequence[int] | int,
        *,
        names: Sequence[str] | None = None,
        device: torch.device | str | None = None,
    ) -> dict[str, torch.Tensor]:
        """Cached features of the given dataset indices: ``{name: float32 (B, D_k)}``.

        Indices may be unordered and repeated (rows come back in the order asked); an int gives
        ``(D_k,)`` tensors. ``names`` selects representations (default: all); ``device`` moves
        the result (default: CPU).
        """
        rows = row_index(indices, len(self), what=f"a feature cache of {len(self)} items")
        unique, inverse = rows.unique, rows.inverse
        out: dict[str, torch.Tensor] = {}
        for name in names if names is not None else self.names:
            array = self.array(name)
            verifier = self._verifiers.get(name)
            if verifier is not None:
                verifier.check_rows(unique)  # the chunks of these rows, each once per process
            tensor = torch.from_numpy(np.asarray(array[unique], dtype=np.float32)[inverse])
            if rows.scalar:
                tensor = tensor[0]
            out[name] = tensor.to(device) if device is not None else tensor
        return out

    def __getitem__(self, index: int) -> dict[str, torch.Tensor]:
        """``cache.get(index)`` for one dataset index: ``{name: (D_k,)}``."""
        return self.get(int(index))


class CachedDataset(Dataset):
    """``dataset`` whose items get the cached features appended: ``(*item, {name: (D_k,)})``, so that
    DataLoader workers read the cache (the default collate makes ``{name: (B, D_k)}``)."""

    def __init__(self, dataset: Any, cache: FeatureCache) -> None:
        if len(dataset) != len(cache):
            raise CacheError(f"dataset has {len(dataset)} items but the cache has {len(cache)}")
        self.dataset, self.cache = dataset, cache

    def __len__(self) -> int:
        return len(self.dataset)

    def __getitem__(self, index: int) -> tuple[Any, ...]:
        item = self.dataset[index]
        item = tuple(item) if isinstance(item, (tuple, list)) else (item,)
        return (*item, self.cache[index])


class StoredViewParameters:
    """``rows -> (len(rows), P)`` float64: the stored views' parameters of the cache at ``root``, which is
    opened at the first call (it may be built after this reader is made: the training data exist
    before the run's feature sources build their caches). Pickles as its path, for DataLoader workers."""

    def __init__(self, root: str | os.PathLike[str]) -> None:
        self.root = Path(root)
        self._cache: FeatureCache | None = None

    def __getstate__(self) -> dict[str, Any]:
        return {"root": str(self.root)}

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__init__(state["root"])  # type: ignore[misc]

    def __call__(self, rows: np.ndarray) -> np.ndarray:
        if self._cache is None:
            try:
                self._cache = FeatureCache.open(self.root)
            except FileNotFoundError:
                raise CacheError(
                    f"no stored views at {self.root}: the teacher's feature source builds them before "
                    f"training (prepare())"
                ) from None
        return self._cache.view_parameters(rows)

    def __repr__(self) -> str:
        return f"StoredViewParameters({str(self.root)!r})"
