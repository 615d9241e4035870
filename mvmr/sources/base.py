"""The one interface through which target features z*_k reach a training step."""

from __future__ import annotations

from abc import ABC, abstractmethod

import torch
from torch import Tensor

from mvmr.utils.distributed import ProcessGroup

__all__ = ["FeatureSource"]


class FeatureSource(ABC):
    """Gives the fixed representations ``{name: (B, D_k)}`` of a batch of images.

    The images are the clean view (keyed by their dataset indices) for the targets that describe
    it, and the student's augmented view for those with ``view: augmented`` (keyed by the view's
    key: the dataset index, or the row of a stored view).

    The training module holds a list of sources and never asks which kind each one is. A source is
    not an ``nn.Module``: it stays out of the ``state_dict``, the checkpoints and the optimiser.
    """

    @property
    @abstractmethod
    def names(self) -> list[str]:
        """The representation names it gives, in order (the loss terms ``dcor/<name>``)."""

    @abstractmethod
    def dims(self, channels: int, height: int, width: int) -> dict[str, int]:
        """``{name: D_k}``: the width of each feature it gives for images of this shape (after any
        projection), known before :meth:`prepare` (the regression heads are built from it)."""

    def prepare(self, device: torch.device | str = "cpu", *, group: ProcessGroup | None = None) -> None:  # noqa: B027
        """Make the features available on ``device`` (move a model, open or build a cache); called once
        by every rank before training, ``group`` sharing any one-off work (default: ``torch.distributed``'s)."""

    @abstractmethod
    def __call__(self, images: Tensor, index: Tensor) -> dict[str, Tensor]:
        """``{name: float32 (B, D_k)}`` on ``images.device`` for ``images`` (B, C, H, W) in [0, 1], whose
        keys are ``index`` (B,): dataset indices, or the cache rows of stored views."""

    def __repr__(self) -> str:
        return f"{type(self).__name__}({', '.join(self.names)})"
