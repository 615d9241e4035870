"""Optimisers (Adam, AdamW, LARS) and the warm-up + cosine learning-rate schedule.

The schedule counts OPTIMISER steps (one per ``accumulate_grad_batches`` per-process batches):
Lightning's ``trainer.estimated_stepping_batches``, read by :class:`~mvmr.training.module.PretrainingModule`.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable
from typing import Any

import torch
from torch import nn
from torch.optim import Optimizer

from mvmr.config import OptimConfig

__all__ = [
    "LARS",
    "split_decay_params",
    "build_optimizer",
    "effective_lr",
    "warmup_cosine",
    "lr_schedule",
    "DeferredLambdaLR",
]


class LARS(Optimizer):
    """SGD with momentum and layer-wise adaptive rate scaling (You et al., 2017).

    In a group whose ``lars_exclude`` is False, ``g <- g + weight_decay * p`` then ``g <- g * r`` with
    the adaptive rate ``r = trust_coefficient * ||p|| / ||g||`` (when both norms are > 0); with
    ``clip_lr``, ``r <- min(r / lr, 1)`` instead, so that a layer never steps faster than plain SGD at
    ``lr`` (solo-learn's ``clip_lars_lr``, used in its CIFAR recipes). Excluded groups (biases and norm
    parameters) get neither. Then ``buf <- momentum * buf + g`` and ``p <- p - lr * buf``.
    """

    def __init__(
        self,
        params: Iterable[Any],
        lr: float,
        *,
        momentum: float = 0.9,
        weight_decay: float = 0.0,
        trust_coefficient: float = 0.001,
        clip_lr: bool = False,
        eps: float = 1e-8,
    ) -> None:
        if lr <= 0:
            raise ValueError(f"LARS lr must be > 0, got {lr}")
        super().__init__(
            params,
            dict(
                lr=lr,
                momentum=momentum,
                weight_decay=weight_decay,
                trust_coefficient=trust_coefficient,
                clip_lr=clip_lr,
                eps=eps,
                lars_exclude=False,
            ),
        )

    @torch.no_grad()
    def step(self, closure: Callable[[], Any] | None = None) -> Any:
        loss = None
        if closure is not None:
            with torch.enable_grad():
                loss = closure()
        for group in self.param_groups:
            for p in group["params"]:
                if p.grad is None:
                    continue
                g = p.grad
                if not group["lars_exclude"]:
                    if group["weight_decay"]:
                        g = g.add(p, alpha=group["weight_decay"])
                    p_norm, g_norm = torch.linalg.vector_norm(p), torch.linalg.vector_norm(g)
                    trust = torch.where(
                        (p_norm > 0) & (g_norm > 0),
                        group["trust_coefficient"] * p_norm / (g_norm + group["eps"]),
                        torch.ones_like(p_norm),
                    )
                    if group["clip_lr"] and group["lr"] > 0:  # at lr 0 (a warm-up's first step) nothing moves
                        trust = torch.clamp(trust / group["lr"], max=1.0)
                    g = g * trust
                state = self.state[p]
                if "momentum_buffer" not in state:
                    state["momentum_buffer"] = torch.clone(g).detach()
                else:
                    state["momentum_buffer"].mul_(group["momentum"]).add_(g)
                p.add_(state["momentum_buffer"], alpha=-group["lr"])
        return loss


def split_decay_params(module: nn.Module, weight_decay: float) -> list[dict[str, Any]]:
    """Two parameter groups: weights (with ``weight_decay``) and biases/norm parameters (any with
    fewer than two dimensions; without weight decay, and excluded from LARS adaptation)."""
    decay: list[nn.Parameter] = []
    no_decay: list[nn.Parameter] = []
    for name, param in module.named_parameters():
        if param.requires_grad:
            (no_decay if param.ndim < 2 or name.endswith(".bias") else decay).append(param)
    groups = [
        {"params": decay, "weight_decay": weight_decay, "lars_exclude": False},
        {"params": no_decay, "weight_decay": 0.0, "lars_exclude": True},
    ]
    return [g for g in groups if g["params"]]


def effective_lr(cfg: OptimConfig, effective_batch_size: int) -> float:
    """``cfg.lr`` scaled by the effective batch (batch x processes x accumulation) when asked."""
    ratio = effective_batch_size / cfg.base_batch_size
    if cfg.lr_scaling == "linear":
        return cfg.lr * ratio
    if cfg.lr_scaling == "sqrt":
        return cfg.lr * math.sqrt(ratio)
    return cfg.lr


def build_optimizer(cfg: OptimConfig, groups: list[dict[str, Any]], lr: float) -> Optimizer:
    """The configured optimiser over parameter ``groups`` (a group may carry its own ``lr``)."""
    if cfg.optimizer == "lars":
        return LARS(
            groups,
            lr=lr,
            momentum=cfg.momentum,
            weight_decay=cfg.weight_decay,
            trust_coefficient=cfg.trust_coefficient,
            clip_lr=cfg.lars_clip_lr,
        )
    # Adam/AdamW do not know the LARS flag
    clean = [{k: v for k, v in g.items() if k != "lars_exclude"} for g in groups]
    betas = (cfg.betas[0], cfg.betas[1])
    if cfg.optimizer == "adamw":
        return torch.optim.AdamW(clean, lr=lr, betas=betas, weight_decay=cfg.weight_decay)
    return torch.optim.Adam(clean, lr=lr, betas=betas, weight_decay=cfg.weight_decay)


def warmup_cosine(total_steps: int, warmup_steps: int, min_ratio: float = 0.0) -> Callable[[int], float]:
    """The lr multiplier at optimiser step ``s`` (0-based): linear warm-up from 1/warmup to 1 over
    ``warmup_steps``, then a cosine from 1 down to ``min_ratio`` at ``total_steps``."""
    total_steps = max(1, int(total_steps))
    warmup_steps = max(0, min(int(warmup_steps), total_steps - 1))

    def factor(step: int) -> float:
        if step < warmup_steps:
            return (step + 1) / warmup_steps
        progress = min(1.0, (step - warmup_steps) / max(1, total_steps - warmup_steps))
        return min_ratio + (1.0 - min_ratio) * 0.5 * (1.0 + math.cos(math.pi * progress))

    return factor


def lr_schedule(
    cfg: OptimConfig, *, total_steps: int, steps_per_epoch: float, base_lr: float
) -> Callable[[int], float]:
    """The lr multiplier per optimiser step: warm-up (``cfg.warmup_epochs``) then cosine down to
    ``cfg.min_lr`` at ``total_steps``, or constant after the warm-up with ``scheduler="constant"``."""
    warmup = int(round(cfg.warmup_epochs * steps_per_epoch))
    min_ratio = 1.0 if cfg.scheduler == "constant" else min(1.0, cfg.min_lr / base_lr if base_lr > 0 else 0.0)
    return warmup_cosine(total_steps, warmup, min_ratio)


class DeferredLambdaLR(torch.optim.lr_scheduler.LambdaLR):
    """A LambdaLR whose multiplier is bound later (:meth:`bind`, in the module's ``on_train_start``),
    once Lightning can count the optimiser steps (counting them in ``configure_optimizers`` would set
    the data up before a checkpoint restores the loader's position); until then it is 1. The state
    dict holds only the step counter, so a resumed run follows its (possibly changed) config.
    """

    def __init__(self, optimizer: Optimizer) -> None:
        self._factor: Callable[[int], float] | None = None
        super().__init__(optimizer, lambda step: self._factor(step) if self._factor is not None else 1.0)

    def bind(self, factor: Callable[[int], float]) -> None:
        """Use ``factor`` from now on and set the current lr of every group accordingly."""
        self._factor = factor
        for group, base in zip(self.optimizer.param_groups, self.base_lrs, strict=True):
            group["lr"] = base * factor(self.last_epoch)
        self._last_lr = [group["lr"] for group in self.optimizer.param_groups]

    def state_dict(self) -> dict[str, Any]:
        state = super().state_dict()
        state.pop("_factor", None)
        return state

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        factor = self._factor
        super().load_state_dict({k: v for k, v in state_dict.items() if k != "_factor"})
        self._factor = factor
