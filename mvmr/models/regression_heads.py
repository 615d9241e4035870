"""Regression heads: small MLPs on the student that predict fixed targets, for training only.

A fixed target with a ``cosine`` objective (a teacher's embedding, or a hand-crafted representation,
possibly through the cache's seeded projection) is learnt as in SimReg (Navaneet et al., BMVC 2021):
a head on the student regresses it with 2 - 2 cos (:func:`mvmr.losses.cosine_regression_loss`), and
the head is thrown away afterwards. The heads are parts of the training module, never of the
:class:`~mvmr.models.MVMRModel`: checkpoints hold them (training resumes exactly), exports and
``from_pretrained`` never carry them.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Literal

import torch
from torch import Tensor, nn

from mvmr.losses.cosine_regression import cosine_regression_loss
from mvmr.losses.distributed import gather_no_grad, gather_with_grad

__all__ = ["RegressionHead", "TargetRegression", "normalize_targets", "TARGET_NORMS"]

#: How a target is normalised before the cosine: ``none``; ``center``: minus its mean over the batch;
#: ``standardize``: also divided by each dimension's batch standard deviation.
TARGET_NORMS = ("none", "center", "standardize")


def normalize_targets(
    target: Tensor, how: Literal["none", "center", "standardize"], *, eps: float = 1e-5, gather_distributed: bool = True
) -> Tensor:
    """``target`` (B, D) centred or standardised with the statistics of its batch (the global batch
    under ``torch.distributed`` when ``gather_distributed``), without gradient.

    Why: many targets share a large common component (a teacher's pooled post-ReLU features are
    non-negative: their mean direction alone has a cosine of about 0.5 with each of them), and
    2 - 2 cos against the raw target is then mostly satisfied by predicting that mean.
    """
    if how == "none":
        return target
    if how not in TARGET_NORMS:
        raise ValueError(f"target normalisation must be one of {TARGET_NORMS}, got {how!r}")
    with torch.no_grad():
        batch = gather_no_grad(target) if gather_distributed else target
        if batch.shape[0] < 2:
            raise ValueError(
                f"normalising targets with batch statistics needs at least 2 samples, got {batch.shape[0]}"
            )
        out = target - batch.mean(dim=0, keepdim=True)
        if how == "standardize":
            out = out / torch.sqrt(batch.var(dim=0, keepdim=True) + eps)
        return out


class RegressionHead(nn.Module):
    """An MLP from the student's ``in_dim`` values to a target's ``out_dim``.

    ``depth`` Linear layers: every one but the last is Linear (no bias) - BatchNorm1d - ReLU of
    ``width`` units, as in the projector; ``depth=1`` is a single Linear map.
    """

    def __init__(self, in_dim: int, out_dim: int, *, depth: int = 2, width: int = 2048) -> None:
        super().__init__()
        for key, value in (("in_dim", in_dim), ("out_dim", out_dim), ("depth", depth), ("width", width)):
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"{key} must be a positive int, got {value!r}")
        layers: list[nn.Module] = []
        prev = in_dim
        for _ in range(depth - 1):
            layers += [nn.Linear(prev, width, bias=False), nn.BatchNorm1d(width), nn.ReLU(inplace=True)]
            prev = width
        layers.append(nn.Linear(prev, out_dim))
        self.layers = nn.Sequential(*layers)
        self.in_dim, self.out_dim, self.depth, self.width = in_dim, out_dim, depth, width

    def forward(self, x: Tensor) -> Tensor:
        """(B, in_dim) -> (B, out_dim)."""
        if x.ndim != 2 or x.shape[1] != self.in_dim:
            raise ValueError(f"regression head expects (B, {self.in_dim}), got {tuple(x.shape)}")
        return self.layers(x)

    def extra_repr(self) -> str:
        return f"in_dim={self.in_dim}, out_dim={self.out_dim}, depth={self.depth}, width={self.width}"


def _module_key(name: str) -> str:
    """A target name as a ModuleDict key (which may not contain '.')."""
    return "t_" + re.sub(r"[^A-Za-z0-9_]", "_", name)


class TargetRegression(nn.Module):
    """One :class:`RegressionHead` per target: ``sum_k w_k * (2 - 2 cos(head_k(s), z*_k))``.

    Args:
        in_dim: the width of the student's input to the heads (encoder features or embeddings).
        target_dims: ``{name: D_k}``, the targets it regresses, in order.
        weights: ``w_k`` of every target (float), or ``{name: w_k}``.
        depth, width: each head's shape (:class:`RegressionHead`).
        target_norm: how each target is normalised first (:func:`normalize_targets`).
        gather_distributed: under torch.distributed, compute the loss on the global batch (the predictions
            gathered with their gradients, the targets centred with the global batch's statistics), so
            that loss and gradients equal a single process on the concatenated batch.

    ``forward(student, targets) -> (loss, terms)``: ``targets`` must hold exactly the regressed names;
    ``terms`` has ``cos/<name>``, the mean cosine between prediction and target (1 = perfect), and
    ``regression``, the weighted sum of the losses (both detached).
    """

    def __init__(
        self,
        in_dim: int,
        target_dims: Mapping[str, int],
        *,
        weights: float | Mapping[str, float] = 1.0,
        depth: int = 2,
        width: int = 2048,
        target_norm: str = "center",
        gather_distributed: bool = True,
    ) -> None:
        super().__init__()
        if target_norm not in TARGET_NORMS:
            raise ValueError(f"target_norm must be one of {TARGET_NORMS}, got {target_norm!r}")
        self.target_norm, self.gather_distributed = target_norm, gather_distributed
        if not target_dims:
            raise ValueError("TargetRegression needs at least one target")
        self.names = list(target_dims)
        keys = [_module_key(n) for n in self.names]
        if len(set(keys)) != len(keys):
            raise ValueError(f"target names {self.names} collide as module keys {keys}")
        self._keys = dict(zip(self.names, keys, strict=True))
        self.heads = nn.ModuleDict(
            {k: RegressionHead(in_dim, int(target_dims[n]), depth=depth, width=width) for n, k in self._keys.items()}
        )
        if isinstance(weights, Mapping):
            missing = sorted(set(self.names) - set(weights))
            if missing:
                raise ValueError(f"no regression weight for {missing}")
            self.weights = {n: float(weights[n]) for n in self.names}
        else:
            self.weights = {n: float(weights) for n in self.names}
        for n, w in self.weights.items():
            if not w >= 0:
                raise ValueError(f"regression weight of {n!r} must be >= 0, got {w}")
        self.in_dim = in_dim

    def extra_repr(self) -> str:
        return f"targets={self.names}, target_norm={self.target_norm!r}, weights={self.weights}"

    def head(self, name: str) -> RegressionHead:
        """The head that regresses ``name``."""
        return self.heads[self._keys[name]]  # type: ignore[return-value]

    def forward(self, student: Tensor, targets: Mapping[str, Tensor]) -> tuple[Tensor, dict[str, Tensor]]:
        if set(targets) != set(self.names):
            raise ValueError(f"TargetRegression regresses {self.names}, got targets {sorted(targets)}")
        total = student.new_zeros((), dtype=torch.float32)
        terms: dict[str, Tensor] = {}
        for name in self.names:
            target = targets[name]
            if target.ndim != 2 or target.shape[0] != student.shape[0]:
                raise ValueError(f"target {name!r} has shape {tuple(target.shape)}, expected ({student.shape[0]}, D)")
            prediction = self.head(name)(student)
            if self.gather_distributed:  # the global batch on every rank: the loss and gradients of one process
                prediction, target = gather_with_grad(prediction), gather_no_grad(target)
            target = normalize_targets(target, self.target_norm, gather_distributed=False)  # type: ignore[arg-type]
            loss, cos = cosine_regression_loss(prediction, target)
            total = total + self.weights[name] * loss
            terms[f"cos/{name}"] = cos.detach()
        terms["regression"] = total.detach()
        return total, terms
