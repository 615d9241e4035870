"""Feature sources: how the fixed representations z*_k of a batch's clean images reach the loss.

Every :class:`FeatureSource` maps ``(clean images, dataset indices) -> {name: (B, D_k)}``:
:class:`LiveSource` computes on the device, :class:`CachedSource` reads a feature cache and
:class:`PrecomputedSource` embeddings computed elsewhere; a frozen teacher runs live or cached.
"""

from mvmr.sources.base import FeatureSource
from mvmr.sources.cached import CachedSource
from mvmr.sources.live import LiveSource
from mvmr.sources.precomputed import PrecomputedSource

__all__ = ["CachedSource", "FeatureSource", "LiveSource", "PrecomputedSource"]
