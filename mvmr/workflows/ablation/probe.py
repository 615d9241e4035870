"""How every row of an ablation is evaluated: the same labelled data and the same probes.

:class:`ProbeSettings` is stored with each row's result (rows are only reused for identical
settings); :func:`probe_datasets` builds its labelled data.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from torch.utils.data import Dataset

from mvmr.data import build_dataset, random_subset
from mvmr.evaluation.knn import KNNConfig
from mvmr.evaluation.linear import LinearConfig

__all__ = ["ProbeSettings", "probe_datasets"]


@dataclass
class ProbeSettings:
    """Evaluation data and protocol, identical for every row."""

    kind: str | None = None  # dataset kind; None = the pretraining config's
    root: str | None = None  # dataset root; None = the pretraining config's
    train_split: str = "train"
    test_split: str = "test"
    train_size: int | None = None  # fixed (seed 0) random subset of the probe's training split
    test_size: int | None = None
    image_size: int | None = None  # None = the pretraining config's
    epochs: int = 100  # paper: 100 epochs, Adam, lr 1e-4, batch 256
    lr: float = 1e-4
    batch_size: int = 256
    val_fraction: float = 0.1
    knn_k: int = 20
    seed: int = 0
    device: str = "auto"

    def linear_config(self) -> LinearConfig:
        """The linear probe (epoch chosen on a ``val_fraction`` hold-out of the training split)."""
        return LinearConfig(epochs=self.epochs, lr=self.lr, batch_size=self.batch_size, val_fraction=self.val_fraction,
                            seed=self.seed, device=self.device, progress=False)

    def knn_config(self) -> KNNConfig:
        """Weighted k-NN with ``knn_k`` neighbours."""
        return KNNConfig(k=self.knn_k, device=self.device, progress=False)


def probe_datasets(probe: ProbeSettings, config: Any = None) -> tuple[Dataset, Dataset]:
    """The labelled (train, test) datasets of the probe (fixed random subsets when sizes are given).

    What the probe leaves as None comes from the pretraining ``config``.
    """
    kind = probe.kind or config.data.kind
    root = probe.root if probe.root is not None else config.data.root
    size = probe.image_size or config.data.image_size
    channels = config.data.channels if config is not None else 3
    train = build_dataset(kind, root, split=probe.train_split, size=size, channels=channels)
    test = build_dataset(kind, root, split=probe.test_split, size=size, channels=channels)
    return random_subset(train, probe.train_size, probe.seed), random_subset(test, probe.test_size, probe.seed + 1)
