"""The MV-MR objective, eqs. (4)-(10) of the paper."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Literal

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from mvmr.losses.distance_correlation import distance_correlation_from_centered, double_centered_distances
from mvmr.losses.distributed import gather_no_grad, gather_with_grad

__all__ = ["MVMRLoss", "variance_hinge", "REFERENCE_CODE", "PAPER"]

#: The paper's choices (the defaults of :class:`MVMRLoss`).
PAPER: dict[str, object] = {"l3": "maximize", "squared": True, "mse": "mean"}

#: The choices of the authors' public code, where they differ from the paper: it *adds* the
#: distance correlation to the hand-crafted representations (minimising it) and its dCor is R,
#: the square root of eq. (2). Its MSE is the per-element mean, like ours. Use as
#: ``MVMRLoss(**REFERENCE_CODE)``.
REFERENCE_CODE: dict[str, object] = {"l3": "minimize", "squared": False, "mse": "mean"}


def variance_hinge(z: Tensor, *, gamma: float = 1.0, eps: float = 1e-4) -> Tensor:
    """v(Z) of eq. (5): mean over dimensions of max(0, gamma - sqrt(Var(z[:, d]) + eps)).

    The variance is the unbiased batch variance, as in VICReg.
    """
    std = torch.sqrt(z.var(dim=0) + eps)
    return F.relu(gamma - std).mean()


class MVMRLoss(nn.Module):
    """MV-MR loss: L = L1 + L2 + L3 (eq. 10).

    - L1 = lambda * d(Z, Z~) + mu * [v(Z) + v(Z~)]      (eqs. 4-7): invariance and variance
    - L2 = alpha * (1 - dCor(Z~, Z))                      (eq. 8): dependence between the views
    - L3 = sum_k beta_k * (1 - dCor(Z~, Z*_k))            (eq. 9): dependence on representations

    ``Z`` is the clean-view embedding, ``Z~`` the augmented-view embedding and ``Z*_k`` fixed
    representations of the clean view (hand-crafted features or a frozen teacher's embedding), of
    any dimension. The double-centred distance matrix of ``Z~`` is computed once per call and
    shared by all K + 1 distance correlations.

    Args:
        lambda_, mu, alpha: the weights of the MSE, of each view's variance hinge and of L2.
        beta: weight of every representation (float), or a mapping from representation name to
            weight. With a mapping, every representation passed to ``forward`` needs a weight.
        gamma: target standard deviation of each embedding dimension (eq. 5).
        eps: added to the variance before the square root (eq. 6).
        l3: ``"maximize"`` (paper): beta_k * (1 - dCor); ``"minimize"`` (authors' code):
            beta_k * dCor, which pushes the embedding *away* from the representations.
        squared: dCor as R^2, eq. (2) (paper), or R (authors' code).
        mse: ``"mean"`` over all B*D elements (VICReg, authors' code), or ``"sum"``: eq. (4) read
            literally, (1/B) sum_i ||z_i - z~_i||^2, which is D times larger.
        gather_distributed: under torch.distributed with several processes, all-gather the
            embeddings (with gradients) and the representations first, so that dCor and the
            variance see the global batch. The result then equals a single process on the
            concatenated batch.

    Example:
        >>> loss_fn = MVMRLoss(lambda_=1.0, mu=1.0, alpha=1.0, beta=1.0)
        >>> loss, terms = loss_fn(z, z_aug, {"hog": hog(x), "pixels": x})
        >>> loss.backward(); logger.log_dict(terms)
    """

    def __init__(
        self,
        *,
        lambda_: float = 1.0,
        mu: float = 1.0,
        alpha: float = 1.0,
        beta: float | Mapping[str, float] = 1.0,
        gamma: float = 1.0,
        eps: float = 1e-4,
        l3: Literal["maximize", "minimize"] = "maximize",
        squared: bool = True,
        mse: Literal["mean", "sum"] = "mean",
        gather_distributed: bool = False,
    ) -> None:
        super().__init__()
        if l3 not in ("maximize", "minimize"):
            raise ValueError(f"l3 must be 'maximize' or 'minimize', got {l3!r}")
        if mse not in ("mean", "sum"):
            raise ValueError(f"mse must be 'mean' or 'sum', got {mse!r}")
        if eps <= 0:
            raise ValueError(f"eps must be > 0, got {eps}")
        weights = {"lambda_": lambda_, "mu": mu, "alpha": alpha, "gamma": gamma}
        weights.update({f"beta[{k}]": v for k, v in beta.items()} if isinstance(beta, Mapping) else {"beta": beta})
        for key, value in weights.items():
            if not isinstance(value, (int, float)) or value != value or value < 0:
                raise ValueError(f"{key} must be a finite number >= 0, got {value!r}")
        self.lambda_, self.mu, self.alpha, self.gamma, self.eps = lambda_, mu, alpha, gamma, eps
        self.beta = dict(beta) if isinstance(beta, Mapping) else float(beta)
        self.l3, self.squared, self.mse, self.gather_distributed = l3, squared, mse, gather_distributed

    def weight(self, name: str) -> float:
        """beta_k for the representation ``name``."""
        if isinstance(self.beta, float):
            return self.beta
        if name not in self.beta:
            raise ValueError(f"no beta weight for representation {name!r}; weights are given for {sorted(self.beta)}")
        return float(self.beta[name])

    def forward(
        self, z: Tensor, z_aug: Tensor, representations: Mapping[str, Tensor] | None = None
    ) -> tuple[Tensor, dict[str, Tensor]]:
        """``(loss, terms)`` for the clean-view embedding ``z`` (B, D), the augmented-view ``z_aug``
        (B, D) and ``representations`` ``{name: (B, ...)}`` of the clean view; ``terms`` holds the
        detached ``mse``, ``var_z``, ``var_z_aug``, ``l1``, ``dcor_views``, ``dcor/<name>``, ``l2``,
        ``l3`` and ``loss``."""
        representations = dict(representations or {})
        if z.ndim != 2 or z.shape != z_aug.shape:
            raise ValueError(
                f"z and z_aug must both be (B, D) with the same shape, got {tuple(z.shape)} and {tuple(z_aug.shape)}"
            )
        for name, rep in representations.items():
            if rep.ndim == 0 or rep.shape[0] != z.shape[0]:
                raise ValueError(
                    f"representation {name!r} has batch size {tuple(rep.shape)[:1]}, expected {z.shape[0]}"
                )
            self.weight(name)  # fail early on a missing weight
        if isinstance(self.beta, dict):
            unused = sorted(set(self.beta) - set(representations))
            if unused:
                raise ValueError(f"beta names representations that were not passed: {unused}")

        if self.gather_distributed:
            z, z_aug = gather_with_grad(z), gather_with_grad(z_aug)
            representations = {k: gather_no_grad(v) for k, v in representations.items()}
        if z.shape[0] < 2:
            raise ValueError(f"MV-MR needs a batch of at least 2 samples (got B={z.shape[0]}); use drop_last=True")

        with torch.autocast(device_type=z.device.type, enabled=False):
            z, z_aug = (t if t.dtype == torch.float64 else t.float() for t in (z, z_aug))
            mse = F.mse_loss(z, z_aug) if self.mse == "mean" else (z - z_aug).pow(2).sum(dim=1).mean()
            var_z = variance_hinge(z, gamma=self.gamma, eps=self.eps)
            var_z_aug = variance_hinge(z_aug, gamma=self.gamma, eps=self.eps)
            l1 = self.lambda_ * mse + self.mu * (var_z + var_z_aug)

            a = double_centered_distances(z_aug, name="z_aug")
            a_var = (a * a).mean()
            b = double_centered_distances(z, name="z")
            dcor_views = distance_correlation_from_centered(a, b, squared=self.squared, a_var=a_var)
            l2 = self.alpha * (1.0 - dcor_views)

            terms: dict[str, Tensor] = {}
            l3 = z.new_zeros(())
            for name, rep in representations.items():
                b = double_centered_distances(rep.detach(), name=f"representation {name!r}")
                dcor = distance_correlation_from_centered(a, b, squared=self.squared, a_var=a_var)
                terms[f"dcor/{name}"] = dcor
                l3 = l3 + self.weight(name) * ((1.0 - dcor) if self.l3 == "maximize" else dcor)

            loss = l1 + l2 + l3
        terms = {
            "mse": mse,
            "var_z": var_z,
            "var_z_aug": var_z_aug,
            "l1": l1,
            "dcor_views": dcor_views,
            **terms,
            "l2": l2,
            "l3": l3,
            "loss": loss,
        }
        return loss, {k: v.detach() for k, v in terms.items()}

    def extra_repr(self) -> str:
        return (
            f"lambda_={self.lambda_}, mu={self.mu}, alpha={self.alpha}, beta={self.beta}, gamma={self.gamma}, "
            f"eps={self.eps}, l3={self.l3!r}, squared={self.squared}, mse={self.mse!r}, "
            f"gather_distributed={self.gather_distributed}"
        )
