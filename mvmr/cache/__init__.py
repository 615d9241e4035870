"""The feature cache: the deterministic representations of a dataset, computed once, read by index.

:func:`build_cache` / :func:`open_or_build` make one, shared by every rank (:mod:`mvmr.cache.build`);
:class:`FeatureCache` reads memory-mapped float16 rows (:mod:`mvmr.cache.store`); the format is
:mod:`mvmr.cache.manifest`, its checksums :mod:`mvmr.cache.integrity`, its writes :mod:`mvmr.cache.writing`.
"""

from mvmr.cache.build import build_cache, open_or_build
from mvmr.cache.integrity import CorruptCacheError
from mvmr.cache.manifest import (
    CacheError,
    CacheMismatchError,
    IncompleteCacheError,
    dataset_fingerprint,
    describe_representation,
    expected_manifest,
)
from mvmr.cache.store import CachedDataset, FeatureCache, StoredViewParameters

__all__ = [
    "CacheError",
    "CacheMismatchError",
    "CorruptCacheError",
    "CachedDataset",
    "FeatureCache",
    "IncompleteCacheError",
    "StoredViewParameters",
    "build_cache",
    "dataset_fingerprint",
    "describe_representation",
    "expected_manifest",
    "open_or_build",
]
