"""MV-MR (paper section 4): the clean view and an augmented view, L1 + L2 + L3 against fixed targets."""

from __future__ import annotations

from torch import nn

from mvmr.config import Config
from mvmr.data.views import TwoViews
from mvmr.errors import ConfigError
from mvmr.losses import MVMRLoss
from mvmr.methods.base import Method
from mvmr.methods.registry import register_method

__all__ = ["MVMR", "effective_betas", "mvmr_loss"]


def effective_betas(config: Config) -> float | dict[str, float]:
    """beta_k = loss.beta (or loss.beta[name]) x the item's weight, and teacher.beta for the
    teacher; a float when all are equal."""
    beta, items, t = config.loss.beta, config.representations.items, config.teacher
    teacher_plain = t.spec is None or (not isinstance(beta, dict) and t.beta == beta)
    if not isinstance(beta, dict) and all(s.weight == 1.0 for s in items) and teacher_plain:
        return float(beta)
    out = {s.name: (beta[s.name] if isinstance(beta, dict) else beta) * s.weight for s in items}
    if t.spec is not None:
        out[t.name] = float(t.beta)
    return out


def mvmr_loss(config: Config) -> nn.Module:
    """The :class:`~mvmr.losses.MVMRLoss` of ``config.loss`` (paper eqs. 4-10); its L3 holds the fixed
    targets whose objective includes ``dcor`` (the others are regressed by heads, see
    :class:`~mvmr.models.TargetRegression`)."""
    if config.method_kwargs:
        raise ConfigError(f"method_kwargs: MV-MR takes its settings from the loss section, not method_kwargs "
                          f"(got {sorted(config.method_kwargs)})")
    c, beta = config.loss, effective_betas(config)
    if isinstance(beta, dict):
        objectives = {s.name: s.objective for s in config.representations.items}
        if config.teacher.spec is not None:
            objectives[config.teacher.name] = config.teacher.objective
        beta = {name: value for name, value in beta.items() if "dcor" in objectives[name]}
    return MVMRLoss(lambda_=c.lambda_, mu=c.mu, alpha=c.alpha, beta=beta, gamma=c.gamma, eps=c.eps,
                    l3=c.l3, squared=c.squared, mse=c.mse, gather_distributed=c.gather_distributed)


MVMR = register_method(Method(
    name="mvmr", views=TwoViews, build_loss=mvmr_loss, uses_targets=True,
    description="MV-MR: clean + augmented view; MSE + variance, dCor between the views and to each representation",
))
