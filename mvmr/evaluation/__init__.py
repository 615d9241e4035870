"""Evaluation protocols of the paper (sec. 5.1, 6.1, 7) for any encoder.

- :func:`resolve_encoder`: checkpoint / exported backbone / ``random:`` / ``torchvision:`` /
  ``timm:`` (local weights) / hand-crafted representation -> :class:`FeatureExtractor`
- :func:`evaluate_frozen`: linear probe (epoch chosen on a train hold-out) + k-NN on frozen
  features extracted once; :func:`run_linear`: the linear probe alone, also on augmented views
- :func:`run_knn`: weighted k-NN on L2-normalised features
- :func:`run_finetune`: semi-supervised fine-tuning on 1% / 10% of the labels
- :func:`run_voc07`: VOC2007 multi-label linear classification, mAP
- :func:`run_embed`: t-SNE / UMAP map of the test features
- :func:`save_result`, :func:`load_results`, :func:`build_report`: ``results.md`` + JSON, reports
"""

from __future__ import annotations

from mvmr.evaluation.dataset_info import check_same_classes
from mvmr.evaluation.embed import EmbedConfig, embed_2d, plot_embedding, run_embed
from mvmr.evaluation.encoders import resolve_encoder
from mvmr.evaluation.extraction import extract_features
from mvmr.evaluation.extractor import FeatureExtractor
from mvmr.evaluation.finetune import FinetuneConfig, run_finetune
from mvmr.evaluation.frozen import FrozenEvaluation, evaluate_frozen, run_linear
from mvmr.evaluation.knn import KNNConfig, knn_scores, run_knn
from mvmr.evaluation.linear import LinearConfig, fit_with_selection
from mvmr.evaluation.metrics import average_precision, mean_average_precision, topk_accuracy
from mvmr.evaluation.report import build_report, write_report
from mvmr.evaluation.results import ProtocolResult, load_results, save_result
from mvmr.evaluation.subsets import balanced_subset, read_subset_file, stratified_split
from mvmr.evaluation.voc07 import VOC2007Classification, run_voc07

__all__ = [
    "EmbedConfig",
    "FeatureExtractor",
    "FinetuneConfig",
    "FrozenEvaluation",
    "KNNConfig",
    "LinearConfig",
    "ProtocolResult",
    "VOC2007Classification",
    "average_precision",
    "balanced_subset",
    "build_report",
    "check_same_classes",
    "embed_2d",
    "evaluate_frozen",
    "extract_features",
    "fit_with_selection",
    "knn_scores",
    "load_results",
    "mean_average_precision",
    "plot_embedding",
    "read_subset_file",
    "resolve_encoder",
    "run_embed",
    "run_finetune",
    "run_knn",
    "run_linear",
    "run_voc07",
    "save_result",
    "stratified_split",
    "topk_accuracy",
    "write_report",
]
