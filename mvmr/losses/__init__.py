"""Losses: distance correlation, the MV-MR objective and the cosine regression of fixed targets.
Pure PyTorch, usable in any training loop."""

from mvmr.losses.cosine_regression import CosineRegressionLoss, cosine_regression_loss
from mvmr.losses.distance_correlation import (
    NonFiniteInputError,
    distance_correlation,
    distance_correlation_from_centered,
    distance_covariance,
    double_centered_distances,
    pairwise_distances,
)
from mvmr.losses.distributed import PairLoss, gather_no_grad, gather_with_grad, is_distributed
from mvmr.losses.mvmr_loss import PAPER, REFERENCE_CODE, MVMRLoss, variance_hinge

__all__ = [
    "distance_correlation",
    "distance_correlation_from_centered",
    "distance_covariance",
    "double_centered_distances",
    "pairwise_distances",
    "gather_with_grad",
    "gather_no_grad",
    "is_distributed",
    "MVMRLoss",
    "variance_hinge",
    "PAPER",
    "REFERENCE_CODE",
    "CosineRegressionLoss",
    "cosine_regression_loss",
    "NonFiniteInputError",
    "PairLoss",
]
