"""Representations read from a feature cache by dataset index."""

from __future__ import annotations

import json
import os
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch
from torch import Tensor

from mvmr.cache import FeatureCache, open_or_build
from mvmr.representations.base import Representation
from mvmr.sources.base import FeatureSource
from mvmr.utils.distributed import ProcessGroup

__all__ = ["CachedSource"]


class CachedSource(FeatureSource):
    """Deterministic representations (hand-crafted ones or a frozen teacher), computed once into a
    feature cache (:meth:`prepare`: :func:`mvmr.cache.open_or_build`, every rank computing its share)
    and read back by the batch's dataset indices.

    Args:
        representations: ``{name: representation}``, all deterministic.
        dataset: the clean images at ``image_size``, indexed like the training batches' ``index``.
        project_dim, seed: the cache's random projection (see :mod:`mvmr.cache.build`).
        rebuild: replace a cache built for another configuration instead of refusing it.
        check_all: check every chunk of an existing cache before using it (a full read) and rebuild
            it if one is damaged; otherwise a damaged chunk stops the reader when first read.
        build_options: :func:`mvmr.cache.build_cache` options (batch_size, num_workers, progress).
    """

    def __init__(
        self,
        root: str | os.PathLike[str],
        representations: Mapping[str, Representation],
        *,
        dataset: Any,
        image_size: int,
        project_dim: int | None = None,
        seed: int = 0,
        rebuild: bool = False,
        check_all: bool = False,
        **build_options: Any,
    ) -> None:
        self.root = Path(root)
        self.representations = dict(representations)
        self.dataset, self.image_size, self.project_dim, self.seed = dataset, int(image_size), project_dim, int(seed)
        self.rebuild, self.check_all, self.build_options = rebuild, check_all, build_options
        self.cache: FeatureCache | None = None
        self.build_seconds: float | None = None  # spent building the cache (None: an existing one was opened)

    @property
    def names(self) -> list[str]:
        return list(self.representations)

    def dims(self, channels: int, height: int, width: int) -> dict[str, int]:
        out = {}
        for name, rep in self.representations.items():
            dim = int(rep.output_dim(channels, height, width))
            out[name] = dim if self.project_dim is None or dim <= self.project_dim else self.project_dim
        return out

    def prepare(self, device: torch.device | str = "cpu", *, group: ProcessGroup | None = None) -> None:
        if self.cache is not None:
            return
        before = _build_id(self.root)
        start = time.perf_counter()
        self.cache = open_or_build(
            self.root,
            dataset=self.dataset,
            representations=self.representations,
            image_size=self.image_size,
            project_dim=self.project_dim,
            seed=self.seed,
            rebuild=self.rebuild,
            check_all=self.check_all,
            device=device,
            group=group,
            **self.build_options,
        )
        if self.cache.manifest.get("build_id") != before:
            self.build_seconds = time.perf_counter() - start
        for rep in self.representations.values():
            rep.to("cpu")  # not needed on the accelerator any more

    def __call__(self, images: Tensor, index: Tensor) -> dict[str, Tensor]:
        if self.cache is None:
            raise RuntimeError(f"{self!r} is not prepared: call prepare() first (the trainer does it in setup)")
        return self.cache.get(index, names=self.names, device=images.device)

    def __repr__(self) -> str:
        return f"CachedSource({', '.join(self.names)}; {str(self.root)!r})"


def _build_id(root: Path) -> str | None:
    """The build id of the cache at ``root`` (None: no readable manifest)."""
    try:
        return json.loads((root / "manifest.json").read_text(encoding="utf-8")).get("build_id")
    except (OSError, ValueError):
        return None
