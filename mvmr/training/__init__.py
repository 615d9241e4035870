"""Training: the Lightning module, optimisers, callbacks, and ``pretrain(config) -> run_dir``.

This is the only layer that knows Lightning. Import :func:`pretrain` from
:mod:`mvmr.training.trainer` (or from here).
"""

from __future__ import annotations

from typing import Any

__all__ = ["pretrain", "PretrainingModule"]


def __getattr__(name: str) -> Any:  # lazy: importing Lightning takes seconds
    if name == "pretrain":
        from mvmr.training.trainer import pretrain

        return pretrain
    if name == "PretrainingModule":
        from mvmr.training.module import PretrainingModule

        return PretrainingModule
    raise AttributeError(f"module 'mvmr.training' has no attribute {name!r}")
