"""What a self-supervised method is: the parts it trains beside the model, its views, and its step.

One Lightning module (:class:`mvmr.training.module.PretrainingModule`) runs any method. It owns what
every method shares (the optimiser and schedule, the online probe, the bad-batch guard, logging) and
asks the method for everything else. A method is one subclass of :class:`Method` plus a
``@register_method`` line; see ``docs/architecture.md`` ("Adding a method").
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, ClassVar

import torch
from torch import Tensor, nn
from torch.utils.data import Dataset

from mvmr.data import PretrainData, TwoAugmentedViews
from mvmr.errors import ConfigError
from mvmr.models import MVMRModel, build_model

if TYPE_CHECKING:  # annotations only
    from mvmr.config import Config
    from mvmr.transforms import PaperAugmentation

__all__ = ["Method", "StepOutput"]


@dataclass
class StepOutput:
    """What :meth:`Method.step` returns."""

    loss: Tensor  #: the scalar to minimise
    terms: dict[str, Tensor]  #: detached values to log as ``train/<name>`` (at least ``"loss"``)
    features: Tensor  #: encoder features (B, F) of the first view, for the online probe (detached there)
    embeddings: Tensor | None = None  #: embeddings (B, D) of the first view, for the ``train/z_std`` monitor


class Method(nn.Module):
    """A self-supervised method. Subclass it, set :attr:`name`, and register it with ``@register_method``.

    The module passes the model (encoder + projector, :class:`~mvmr.models.MVMRModel`, the part that is
    exported) to :meth:`step`; the method itself holds only what else it trains or keeps (heads, a
    predictor, a momentum copy), so that its parameters and buffers are checkpointed under
    ``method.*``, resumed exactly, and never exported. Parameters with ``requires_grad=False`` (a
    momentum copy) are saved but not optimised.

    A training batch is what :meth:`views` yields, collated: ``(view_1, ..., view_N, index, label)``,
    where :attr:`num_views` is N; with stored views an extra key sits before the label.
    """

    #: the registry key, ``method: <name>`` in a config
    name: ClassVar[str] = ""
    #: one line for ``mvmr info`` and the registry listing
    description: ClassVar[str] = ""
    #: whether the run's ``representations`` and ``teacher`` feed the method (False: it ignores them)
    uses_targets: ClassVar[bool] = False
    #: N, the number of image views in a training batch
    num_views: ClassVar[int] = 2

    # ------------------------------------------------------------------ built from a config
    @classmethod
    def build_model(cls, config: Config, channels: int) -> MVMRModel:
        """The model to train and export (default: ``config.model``'s encoder + projector)."""
        m = config.model
        return build_model(
            m.encoder, m.projector, small_images=m.small_images, in_chans=channels, mean=m.mean, std=m.std
        )

    @classmethod
    def views(cls, config: Config, full: Dataset, *, augmentation: PaperAugmentation, seed: int) -> Dataset:
        """The training items of ``full`` (images at full resolution): two augmented views by default."""
        return TwoAugmentedViews(full, size=config.data.image_size, augmentation=augmentation, seed=seed)

    @classmethod
    def from_config(cls, config: Config, *, model: MVMRModel, data: PretrainData, feature_dim: int) -> Method:
        """The method of ``config`` for ``model`` (whose encoder gives ``feature_dim`` features) on ``data``."""
        if config.method_kwargs:
            raise ConfigError(f"method_kwargs: method {cls.name!r} takes none, got {sorted(config.method_kwargs)}")
        return cls()

    # ------------------------------------------------------------------ training
    def setup(self, device: torch.device) -> None:
        """Called once before training on ``device`` (e.g. to prepare feature sources)."""

    def step(self, model: MVMRModel, batch: Any) -> StepOutput:
        """The loss of one training batch (see the class docstring for its layout)."""
        raise NotImplementedError

    def after_optimizer_step(self, model: MVMRModel, step: int, total_steps: int) -> None:
        """Called after each optimiser step; ``step`` counts them from 1 (e.g. a momentum update)."""

    # ------------------------------------------------------------------ batch layout
    def batch_images(self, batch: Any) -> list[Tensor]:
        """The N image views of a training batch."""
        return list(batch[: self.num_views])

    def batch_index(self, batch: Any) -> Tensor:
        """The dataset indices of a training batch's images."""
        return batch[self.num_views]
