"""Peer self-supervised methods (VICReg, Barlow Twins) on MV-MR's training stack, for comparisons.

Only the loss differs from an MV-MR run: the encoder + projector (:class:`~mvmr.models.MVMRModel`),
the data, the augmentation (:class:`~mvmr.transforms.augmentation.PaperAugmentation`), the
optimiser and schedule, the Lightning trainer and the checkpoints all come from the same config
through :mod:`mvmr.training.trainer`. The two methods take two *augmented* views of each image
(their published recipe), drawn from the same augmentation that gives MV-MR its augmented view.

The losses come from the ``lightly`` package (``pip install 'mvmr[bench]'``), imported only when
a peer is built:

- ``vicreg``: :class:`lightly.loss.VICRegLoss` (invariance 25, variance 25, covariance 1)
- ``barlow_twins``: :class:`lightly.loss.BarlowTwinsLoss` (lambda 5e-3)
"""

from __future__ import annotations

import dataclasses
import os
from pathlib import Path
from typing import Any, Mapping

import torch
from torch import Tensor, nn
from torch.utils.data import Dataset

from mvmr.config import Config, save_config, to_dict, validate
from mvmr.errors import ConfigError
from mvmr.training.module import BaseSSLModule, StepOutput

__all__ = ["PEER_METHODS", "build_peer_loss", "PeerModule", "TwoAugmentedViews", "pretrain_peer"]

PEER_METHODS = ("vicreg", "barlow_twins")


def build_peer_loss(method: str, **kwargs: Any) -> nn.Module:
    """The peer method's loss from ``lightly`` (a clear error when lightly is not installed)."""
    if method not in PEER_METHODS:
        raise ConfigError(f"method: expected one of {', '.join(PEER_METHODS)}, got {method!r}")
    try:
        from lightly.loss import BarlowTwinsLoss, VICRegLoss
    except ImportError as err:  # pragma: no cover - depends on the environment
        raise ImportError(
            f"the {method} baseline needs the 'lightly' package: pip install 'mvmr[bench]' (or pip install lightly)"
        ) from err
    if method == "vicreg":
        return VICRegLoss(**kwargs)
    return BarlowTwinsLoss(**kwargs)


class PeerModule(BaseSSLModule):
    """A two-view method whose loss is ``loss_fn(z1, z2)`` on the projector outputs."""

    def __init__(self, model: nn.Module, loss_fn: nn.Module, *, method: str, **kwargs: Any) -> None:
        super().__init__(model, **kwargs)
        self.loss_fn = loss_fn
        self.method = method

    def ssl_step(self, batch: Any) -> StepOutput:
        x1, x2 = batch[0], batch[1]
        features, z1 = self.model.forward_with_features(x1)
        z2 = self.model(x2)
        with torch.autocast(device_type=z1.device.type, enabled=False):
            loss = self.loss_fn(z1.float(), z2.float())
        return StepOutput(loss=loss, terms={"loss": loss.detach()}, features=features, embeddings=z1)


class TwoAugmentedViews(Dataset):
    """``(x_aug1, x_aug2, index, label)``: two independent draws of the views' augmentation.

    Wraps a :class:`~mvmr.data.TwoViews` (and its seeding: with an int seed each draw is a
    function of ``(seed, epoch, index, draw)``).
    """

    def __init__(self, views: Any) -> None:
        self.views = views

    def set_epoch(self, epoch: int) -> None:
        self.views.set_epoch(epoch)

    def __len__(self) -> int:
        return len(self.views)

    def __getitem__(self, index: int) -> tuple[Tensor, Tensor, int, int]:
        from mvmr.data.image_utils import to_float

        image, label = self.views.dataset[index]
        image = to_float(image)
        aug = self.views.augmentation
        if self.views.seed is None:
            a, b = aug(image), aug(image)
        else:
            g = self.views._generator(int(index))
            a, b = aug(image, generator=g), aug(image, generator=g)  # one generator, two successive draws
        return a.to(torch.float32), b.to(torch.float32), int(index), int(label)


def pretrain_peer(config: Config, method: str, *, resume: str | os.PathLike[str] | None = "auto",
                  loss_kwargs: Mapping[str, Any] | None = None, trainer_overrides: Mapping[str, Any] | None = None) -> Path:
    """Pretrain the configured encoder + projector with a peer method; returns the run folder.

    Everything but the loss (and the two augmented views) is what :func:`mvmr.training.trainer.pretrain`
    would build from ``config``; ``loss``/``representations`` sections are ignored.
    """
    import lightning as L

    from mvmr.models import build_model
    from mvmr.training import trainer as tr

    config = validate(config)
    loss_fn = build_peer_loss(method, **dict(loss_kwargs or {}))
    run_dir = Path(config.output_dir).expanduser()
    run_dir.mkdir(parents=True, exist_ok=True)
    L.seed_everything(config.trainer.seed, workers=True, verbose=False)
    ckpt = tr.find_resume_checkpoint(run_dir, resume)
    data = tr.build_data(config)
    data = dataclasses.replace(data, views=TwoAugmentedViews(data.views))
    m = config.model
    model = build_model(m.encoder, m.projector, small_images=m.small_images, in_chans=data.channels, mean=m.mean, std=m.std)
    hparams = to_dict(config)
    hparams["method"] = method
    module = PeerModule(model, loss_fn, method=method, feature_dim=model.spec.feature_dim, optim=config.optim,
                        probe=config.probe, num_classes=data.num_classes, batch_size=config.data.batch_size,
                        seed=config.trainer.seed, hparams=hparams)
    trainer = tr.build_trainer(config, run_dir, **dict(trainer_overrides or {}))
    if trainer.is_global_zero:
        save_config(config, run_dir / "config.yaml")
    trainer.fit(module, datamodule=tr.PretrainDataModule(data, config), ckpt_path=ckpt, weights_only=True)
    return run_dir
