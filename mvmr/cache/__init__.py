"""The feature cache: the deterministic representations of a dataset, computed once, read by index.

- :func:`build_cache` / :func:`open_or_build`: the one way to make a cache, shared by every rank
  of a run (:mod:`mvmr.cache.build`);
- :class:`FeatureCache`: memory-mapped float16 rows by dataset index (:mod:`mvmr.cache.store`);
- the on-disk format and how it is compared with a configuration (:mod:`mvmr.cache.manifest`);
- the checks of every file's size and every chunk of rows against the build's checksums
  (:mod:`mvmr.cache.integrity`), and how the build writes the files so that a full disk is a
  clear error (:mod:`mvmr.cache.writing`).
"""

from mvmr.cache.build import build_cache, open_or_build
from mvmr.cache.integrity import CorruptCacheError
from mvmr.cache.manifest import (CacheError, CacheMismatchError, IncompleteCacheError, dataset_fingerprint,
                                 describe_representation, expected_manifest)
from mvmr.cache.store import CachedDataset, FeatureCache

__all__ = ["CacheError", "CacheMismatchError", "CorruptCacheError", "CachedDataset", "FeatureCache", "IncompleteCacheError", "build_cache",
           "dataset_fingerprint", "describe_representation", "expected_manifest", "open_or_build"]
