"""2-D maps of test features (t-SNE, or UMAP when ``umap-learn`` is installed), coloured by class.

Figures are drawn with Matplotlib's Agg canvas directly (no pyplot global state), so this works
headless and in threads.
"""

from __future__ import annotations

import importlib.util
import os
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn
from torch.utils.data import Dataset

from mvmr.data.loaders import DatasetSubset
from mvmr.errors import ConfigError
from mvmr.evaluation.dataset_info import dataset_classes, dataset_labels
from mvmr.evaluation.extraction import ExtractionSettings, extract_features
from mvmr.evaluation.results import ProtocolResult
from mvmr.evaluation.subsets import stratified_limit
from mvmr.utils.atomic import atomic_write

__all__ = ["EmbedConfig", "embed_2d", "plot_embedding", "embed_on_features", "embed_result", "run_embed"]


@dataclass
class EmbedConfig(ExtractionSettings):
    """Settings of the 2-D map."""

    method: str = "auto"
    max_points: int = 5000
    perplexity: float = 30.0
    seed: int = 0

    def resolved_method(self) -> str:
        """``tsne`` for ``auto``; ``umap`` only when the ``umap-learn`` package is installed."""
        if self.method == "auto":
            return "tsne"
        if self.method not in ("tsne", "umap"):
            raise ConfigError(f"embedding method must be tsne, umap or auto, got {self.method!r}")
        if self.method == "umap" and importlib.util.find_spec("umap") is None:
            raise ConfigError("UMAP needs the umap-learn package (pip install umap-learn); use --method tsne")
        return self.method

    def summary(self) -> dict[str, Any]:
        kept = {k: v for k, v in asdict(self).items() if k in ("max_points", "perplexity", "seed")}
        return kept | {"method": self.resolved_method()}


def embed_2d(
    features: np.ndarray | torch.Tensor, *, method: str = "tsne", seed: int = 0, perplexity: float = 30.0
) -> np.ndarray:
    """(N, 2) coordinates of ``features`` (N, F). t-SNE's perplexity is capped below N."""
    x = features.numpy() if isinstance(features, torch.Tensor) else np.asarray(features)
    x = x.astype(np.float32, copy=False)
    n = x.shape[0]
    if n < 3:
        raise ValueError(f"a 2-D map needs at least 3 points, got {n}")
    if method == "umap":
        import umap

        return np.asarray(umap.UMAP(n_components=2, random_state=seed).fit_transform(x))
    if method != "tsne":
        raise ConfigError(f"unknown embedding method {method!r}")
    from sklearn.manifold import TSNE

    perp = float(min(perplexity, max(1.0, (n - 1) / 3.0)))
    tsne = TSNE(n_components=2, perplexity=perp, init="pca", random_state=seed, learning_rate="auto")
    return np.asarray(tsne.fit_transform(x))


def plot_embedding(
    coords: np.ndarray,
    labels: Sequence[int] | np.ndarray,
    path: str | os.PathLike[str],
    *,
    class_names: Sequence[str] | None = None,
    title: str = "",
    dpi: int = 120,
) -> Path:
    """Scatter ``coords`` (N, 2) coloured by ``labels`` with a class legend; write a PNG to ``path``."""
    import matplotlib
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    coords, labels = np.asarray(coords), np.asarray(labels)
    if coords.ndim != 2 or coords.shape[1] != 2 or labels.shape != (coords.shape[0],):
        raise ValueError(f"expected coords (N, 2) and labels (N,), got {coords.shape} and {labels.shape}")
    fig = Figure(figsize=(7.5, 6.5))
    FigureCanvasAgg(fig)
    ax = fig.add_subplot(1, 1, 1)
    classes = np.unique(labels)
    cmap = matplotlib.colormaps["tab10" if len(classes) <= 10 else "tab20"]
    for i, c in enumerate(classes):
        mask = labels == c
        name = class_names[int(c)] if class_names is not None and 0 <= int(c) < len(class_names) else str(int(c))
        ax.scatter(coords[mask, 0], coords[mask, 1], s=6, alpha=0.8, color=cmap(i % cmap.N), label=name, linewidths=0)
    ax.set_xticks([])
    ax.set_yticks([])
    if title:
        ax.set_title(title, fontsize=10)
    if len(classes) <= 20:
        ax.legend(loc="center left", bbox_to_anchor=(1.0, 0.5), fontsize=8, markerscale=2.5, frameon=False)
    fig.tight_layout()
    return atomic_write(path, lambda f: fig.savefig(f, dpi=dpi, format="png"))


def embed_on_features(
    features: torch.Tensor,
    labels: torch.Tensor,
    path: str | os.PathLike[str],
    *,
    config: EmbedConfig,
    class_names: Sequence[str] | None = None,
    title: str = "",
) -> tuple[Path, int]:
    """Subsample (class-balanced, ``max_points``), embed and plot; returns (PNG path, points drawn)."""
    lab = labels.numpy().astype(np.int64)
    keep = stratified_limit(lab, config.max_points, seed=config.seed)
    method = config.resolved_method()
    coords = embed_2d(features[keep], method=method, seed=config.seed, perplexity=config.perplexity)
    out = plot_embedding(coords, lab[keep], path, class_names=class_names, title=title or f"{method} of test features")
    return out, int(keep.size)


def embed_result(
    features: torch.Tensor,
    labels: torch.Tensor,
    out_dir: str | os.PathLike[str],
    *,
    config: EmbedConfig,
    class_names: Sequence[str],
    encoder: str = "",
    dataset: str = "",
) -> ProtocolResult:
    """Draw the map of test features into ``out_dir/plots/embed-<method>.png`` and record it as a result."""
    method = config.resolved_method()
    out, n = embed_on_features(
        features,
        labels,
        Path(out_dir) / "plots" / f"embed-{method}.png",
        config=config,
        class_names=class_names,
        title=f"{method}: {encoder}",
    )
    metrics: dict[str, float] = {"num_test": n, "feature_dim": int(features.shape[1])}
    return ProtocolResult(
        protocol="embed",
        variant=method,
        metrics=metrics,
        encoder=encoder,
        dataset=dataset,
        config=config.summary(),
        artifacts={"map": str(out)},
    )


def run_embed(
    extractor: nn.Module,
    test_dataset: Dataset,
    out_dir: str | os.PathLike[str],
    *,
    config: EmbedConfig | None = None,
    encoder: str = "",
    dataset: str = "",
) -> ProtocolResult:
    """Extract features of (a class-balanced sample of) the test set and draw their 2-D map."""
    config = config or EmbedConfig()
    config.resolved_method()  # an unavailable method fails before any image is read
    keep = stratified_limit(dataset_labels(test_dataset), config.max_points, seed=config.seed)
    feats, labs = extract_features(
        extractor, DatasetSubset(test_dataset, keep), desc="test features", **config.extraction()
    )
    return embed_result(
        feats, labs, out_dir, config=config, class_names=dataset_classes(test_dataset), encoder=encoder, dataset=dataset
    )
