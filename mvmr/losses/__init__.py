"""Losses: distance correlation and the MV-MR objective. Pure PyTorch, usable in any training loop."""

from mvmr.losses.distance_correlation import (distance_correlation, distance_correlation_from_centered,
                                              distance_covariance, double_centered_distances, pairwise_distances)
from mvmr.losses.distributed import gather_no_grad, gather_with_grad, is_distributed
from mvmr.losses.mvmr_loss import PAPER, REFERENCE_CODE, MVMRLoss, variance_hinge

__all__ = ["distance_correlation", "distance_correlation_from_centered", "distance_covariance",
           "double_centered_distances", "pairwise_distances", "gather_with_grad", "gather_no_grad", "is_distributed",
           "MVMRLoss", "variance_hinge", "PAPER", "REFERENCE_CODE"]
