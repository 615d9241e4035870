"""Weighted k-nearest-neighbour classification on L2-normalised features.

The variant common in the self-supervised literature (InstDisc, DINO): the ``k`` training features
most cosine-similar to a query vote for their class with weight ``exp(similarity / temperature)``
(defaults k = 20, temperature = 0.07). The training set is the neighbour bank; the test set is
scored once, in query chunks so that the (queries x training set) similarity matrix stays bounded.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.data import Dataset

from mvmr.errors import ConfigError
from mvmr.evaluation.dataset_info import check_same_classes
from mvmr.evaluation.extraction import ExtractionSettings, extract_features, resolve_device
from mvmr.evaluation.metrics import classification_metrics
from mvmr.evaluation.results import ProtocolResult

__all__ = ["KNNConfig", "knn_scores", "knn_on_features", "knn_result", "run_knn"]


@dataclass
class KNNConfig(ExtractionSettings):
    """Settings of the weighted k-NN classifier (checked when built)."""

    k: int = 20
    temperature: float = 0.07
    max_similarity_elements: int = 1 << 26

    def __post_init__(self) -> None:
        if self.k < 1:
            raise ConfigError(f"k must be >= 1, got {self.k}")
        if not self.temperature > 0:
            raise ConfigError(f"temperature must be > 0, got {self.temperature}")
        if self.max_similarity_elements < 1:
            raise ConfigError("max_similarity_elements must be >= 1")

    def summary(self) -> dict[str, Any]:
        return {k: v for k, v in asdict(self).items() if k in ("k", "temperature")}


@torch.no_grad()
def knn_scores(
    train_features: torch.Tensor,
    train_labels: torch.Tensor,
    query_features: torch.Tensor,
    *,
    num_classes: int,
    k: int = 20,
    temperature: float = 0.07,
    max_similarity_elements: int = 1 << 26,
    device: str | torch.device = "cpu",
) -> torch.Tensor:
    """Class scores (Q, num_classes): summed ``exp(cos_sim / T)`` of each query's ``k`` nearest training points.

    ``k`` is capped at the training-set size. Queries are processed in chunks of at most
    ``max_similarity_elements // N_train`` rows.
    """
    if train_features.ndim != 2 or query_features.ndim != 2 or train_features.shape[1] != query_features.shape[1]:
        raise ValueError(
            f"expected train (N, F) and query (Q, F) features, got {tuple(train_features.shape)} "
            f"and {tuple(query_features.shape)}"
        )
    if train_labels.shape != (train_features.shape[0],):
        raise ValueError(f"expected {train_features.shape[0]} train labels, got shape {tuple(train_labels.shape)}")
    if train_features.shape[0] == 0:
        raise ValueError("the k-NN bank (training set) is empty")
    dev = torch.device(device)
    bank = F.normalize(train_features.float().to(dev), dim=1)
    bank_labels = train_labels.long().to(dev)
    k = min(k, bank.shape[0])
    chunk = max(1, max_similarity_elements // bank.shape[0])
    out = []
    for part in query_features.split(chunk):
        q = F.normalize(part.float().to(dev), dim=1)
        sim = q @ bank.T
        top_sim, top_idx = sim.topk(k, dim=1)
        weights = (top_sim / temperature).exp()
        scores = torch.zeros(q.shape[0], num_classes, device=dev, dtype=weights.dtype)
        scores.scatter_add_(1, bank_labels[top_idx], weights)
        out.append(scores.cpu())
    return torch.cat(out) if out else torch.zeros(0, num_classes)


def knn_on_features(
    train: tuple[torch.Tensor, torch.Tensor],
    test: tuple[torch.Tensor, torch.Tensor],
    *,
    num_classes: int,
    config: KNNConfig,
) -> dict[str, float]:
    """Score the test features once against the training bank: ``test_top1`` (and ``test_top5``)."""
    scores = knn_scores(
        *train,
        test[0],
        num_classes=num_classes,
        k=config.k,
        temperature=config.temperature,
        max_similarity_elements=config.max_similarity_elements,
        device=resolve_device(config.device),
    )
    return classification_metrics(scores, test[1].long(), prefix="test_")


def knn_result(
    train: tuple[torch.Tensor, torch.Tensor],
    test: tuple[torch.Tensor, torch.Tensor],
    *,
    classes: list[str],
    config: KNNConfig,
    encoder: str = "",
    dataset: str = "",
) -> ProtocolResult:
    """Score the test features once against the training bank, and record the settings and sizes."""
    metrics = knn_on_features(train, test, num_classes=len(classes), config=config)
    metrics.update(
        k=config.k,
        num_train=int(train[0].shape[0]),
        num_test=int(test[0].shape[0]),
        num_classes=len(classes),
        feature_dim=int(train[0].shape[1]),
    )
    return ProtocolResult(
        "knn", metrics, encoder=encoder, dataset=dataset, config=config.summary(), details={"classes": classes}
    )


def run_knn(
    extractor: nn.Module,
    train_dataset: Dataset,
    test_dataset: Dataset,
    *,
    config: KNNConfig | None = None,
    encoder: str = "",
    dataset: str = "",
) -> ProtocolResult:
    """k-NN evaluation of ``extractor``: the whole training set is the bank, the test set is scored once."""
    config = config or KNNConfig()
    classes = check_same_classes(train_dataset, test_dataset)
    train = extract_features(extractor, train_dataset, desc="train features", **config.extraction())
    test = extract_features(extractor, test_dataset, desc="test features", **config.extraction())
    return knn_result(train, test, classes=classes, config=config, encoder=encoder, dataset=dataset)
