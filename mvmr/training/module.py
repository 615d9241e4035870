"""The one Lightning module that pretrains with any method: :class:`PretrainingModule`.

It owns what every method shares: the optimiser and schedule, the online linear probe on detached
features, the bad-batch guard, lr and throughput logs. The :class:`~mvmr.methods.Method` owns the
rest: its parts (heads, a predictor, a momentum copy, as ``method.*``), its views and its step
(:meth:`~mvmr.methods.Method.step`), and what follows an optimiser step. Training batches are what the
method's views yield, ``(view_1, ..., view_N, index, label)``; validation batches ``(image, label)``;
label -1 is unlabelled.
"""

from __future__ import annotations

import math
import time
import warnings
from collections.abc import Mapping
from typing import Any

import lightning as L
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from mvmr.config import OptimConfig, ProbeConfig
from mvmr.losses import NonFiniteInputError
from mvmr.methods import Method, StepOutput
from mvmr.models import MVMRModel
from mvmr.training.bad_batches import BadBatches
from mvmr.training.callbacks import STOP_ADVICE, NonFiniteLossError, nonfinite_loss_message
from mvmr.training.optim import DeferredLambdaLR, build_optimizer, effective_lr, lr_schedule, split_decay_params
from mvmr.training.sampling import mix_seed

__all__ = ["PretrainingModule", "StepOutput", "migrate_state_dict"]

#: state-dict prefixes of checkpoints written before methods owned their parts (MVMRModule), and where
#: those parts live now
LEGACY_PREFIXES = {"regression.": "method.regression.", "loss_fn.": "method.loss_fn."}


def migrate_state_dict(state: dict[str, Any]) -> None:
    """Rename, in place, the keys of a checkpoint written by the former ``MVMRModule`` (MV-MR's heads at
    ``regression.*``) to the method's (``method.regression.*``), so that such a run resumes; the load
    that follows stays strict."""
    for key in [k for k in state if k.startswith(tuple(LEGACY_PREFIXES))]:
        old = next(p for p in LEGACY_PREFIXES if key.startswith(p))
        state[LEGACY_PREFIXES[old] + key[len(old) :]] = state.pop(key)


class PretrainingModule(L.LightningModule):
    """Pretrain ``model`` with ``method``: the method's step, optimisation, the online probe and logging.

    Args:
        model: the network under training and exported: ``features(x) -> (B, F)`` (F = ``feature_dim``)
            and ``forward_with_features(x) -> (features, embeddings)`` (:class:`~mvmr.models.MVMRModel`).
        method: the :class:`~mvmr.methods.Method`: its step, and its own parts (saved as ``method.*``).
        probe: the online probe, a linear layer trained with cross-entropy on DETACHED clean-view
            features of the labelled training images (it never changes the encoder), validated on
            labelled training images held out; ``num_classes=None`` disables it.
        batch_size: per-process batch size, for the lr scaling rule and throughput.
        seed: each batch reseeds the global RNG from ``(seed, epoch, batch, rank)``, so random
            representations (e.g. augmented pixels) are the same after a resume.
        hparams: plain-dict hyper-parameters stored in checkpoints (the resolved config).
        skip_nonfinite_batches: skip up to this many batches whose inputs or loss are NaN/inf
            (see :mod:`mvmr.training.bad_batches`); 0 stops at the first.
    """

    def __init__(
        self,
        model: MVMRModel,
        method: Method,
        *,
        feature_dim: int,
        optim: OptimConfig,
        probe: ProbeConfig,
        num_classes: int | None,
        batch_size: int,
        seed: int = 0,
        hparams: Mapping[str, Any] | None = None,
        skip_nonfinite_batches: int = 0,
    ) -> None:
        super().__init__()
        if hparams is not None:
            self.save_hyperparameters(dict(hparams))
        self.model = model
        self.method = method
        self.optim_cfg = optim
        self.probe_cfg = probe
        self.batch_size = int(batch_size)
        self.seed = int(seed)
        self.classifier: nn.Linear | None = None
        if probe.enabled and num_classes is not None:
            self.classifier = nn.Linear(feature_dim, num_classes)
        self.last_terms: dict[str, Tensor] = {}
        self._last_batch_end: float | None = None
        self.bad_batches = BadBatches(skip_nonfinite_batches)
        self._skipping = False  # the current batch is a skipped bad one
        self._accumulated = False  # a kept batch contributed gradients to the current accumulation window
        self._stepped = 0  # optimiser steps the method has been told about

    def setup(self, stage: str) -> None:
        if stage == "fit":
            self.method.setup(self.trainer.strategy.root_device)

    def ssl_step(self, batch: Any) -> StepOutput:
        """The method's step on a training batch; non-finite inputs (a typed
        :class:`~mvmr.losses.NonFiniteInputError` from the distance correlation) become a
        :class:`~mvmr.training.callbacks.NonFiniteLossError` that names the step."""
        try:
            return self.method.step(self.model, batch)
        except NonFiniteInputError as err:
            where = (
                f"optimiser step {self.global_step} (epoch {self.current_epoch}, batch "
                f"{self.trainer.fit_loop.epoch_loop.batch_idx})"
                if self._trainer is not None
                else "a step"
            )
            raise NonFiniteLossError(f"non-finite values at {where} before the loss: {err}. {STOP_ADVICE}") from err

    def trained_parts(self) -> list[nn.Module]:
        """What the optimiser trains besides the online probe: the model and the method's own parts."""
        return [self.model, self.method]

    def _probe_loss(self, features: Tensor, labels: Tensor) -> tuple[Tensor, Tensor, int]:
        """Cross-entropy and accuracy over the labelled rows (label >= 0); (0, 0, 0) without any."""
        assert self.classifier is not None
        logits = self.classifier(features.float())
        mask = labels >= 0
        n = int(mask.sum())
        if n == 0:  # keep the classifier in the graph (DDP expects every parameter to get a grad)
            return logits.sum() * 0.0, logits.new_zeros(()), 0
        loss = F.cross_entropy(logits[mask], labels[mask])
        acc = (logits[mask].argmax(dim=1) == labels[mask]).float().mean()
        return loss, acc, n

    def on_train_batch_start(self, batch: Any, batch_idx: int) -> None:
        torch.manual_seed(mix_seed("step", self.seed, self.current_epoch, batch_idx, self.global_rank))

    def training_step(self, batch: Any, batch_idx: int) -> Tensor:
        policy = self.bad_batches
        if not policy.active(self._trainer):  # one process, no skipping: NonFiniteGuard stops a bad step
            loss, log = self._loss_and_log(batch)
            self._log_step(log)
            return loss
        self._skipping = False
        saved = policy.snapshot(self)
        problem: str | None = None
        try:
            loss, log = self._loss_and_log(batch)
            if not bool(torch.isfinite(loss.detach())):
                problem = nonfinite_loss_message(self.trainer, self, loss)
        except NonFiniteLossError as err:  # non-finite values before the loss (inputs, features, targets)
            problem = str(err)
        if not policy.any_rank(self.trainer, problem is not None, self.device):  # every rank decides alike
            if policy.limit:
                log["train/skipped_nonfinite"] = float(policy.skipped)
            self._log_step(log)
            self._accumulated = True
            return loss
        policy.restore(self, saved)
        message = policy.skip(
            self.trainer, self.method.batch_images(batch), self.method.batch_index(batch), batch_idx, problem
        )  # raises past the limit
        warnings.warn(message, stacklevel=2)
        self.log(
            "train/skipped_nonfinite", float(policy.skipped), on_step=True, on_epoch=False, batch_size=self.batch_size
        )
        self._skipping = True  # optimizer_step drops the update
        return policy.zero_loss(self)  # gradient 0 for every parameter: all ranks run the same backward pass

    def optimizer_step(self, epoch: int, batch_idx: int, optimizer: Any, optimizer_closure: Any = None) -> None:
        """Lightning's step, except that a window of only skipped bad batches updates nothing (the
        closure returns None, so the optimiser and an AMP grad scaler skip every parameter); then the
        method's :meth:`~mvmr.methods.Method.after_optimizer_step` (before any checkpoint of this step)."""
        if not self.bad_batches.active(self._trainer):
            super().optimizer_step(epoch, batch_idx, optimizer, optimizer_closure)
            self._after_optimizer_step()
            return

        def closure() -> Tensor | None:
            loss = optimizer_closure()
            skipped, had_good = self._skipping, self._accumulated
            self._skipping = self._accumulated = False
            if skipped and not had_good:
                for p in self.parameters():
                    p.grad = None
                return None
            return loss

        optimizer.step(closure=closure)
        self._after_optimizer_step()

    def _after_optimizer_step(self) -> None:
        self._stepped += 1
        self.method.after_optimizer_step(self.model, self._stepped, self.schedule_total_steps)

    def _loss_and_log(self, batch: Any) -> tuple[Tensor, dict[str, Tensor | float]]:
        """The step's total loss (method + probe) and what to log about it (logged once it is kept)."""
        out = self.ssl_step(batch)
        self.last_terms = out.terms
        loss = out.loss
        log: dict[str, Tensor | float] = {f"train/{k}": v for k, v in out.terms.items()}
        if out.embeddings is not None:
            log["train/z_std"] = out.embeddings.detach().float().std(dim=0).mean()
        if self.classifier is not None:
            labels = batch[-1]
            probe_loss, probe_acc, n = self._probe_loss(out.features.detach(), labels)
            loss = loss + probe_loss
            if n:
                log["train/probe_loss"] = probe_loss.detach()
                log["train/probe_acc"] = probe_acc
        optimizer = self.optimizers(use_pl_optimizer=False) if self._trainer is not None else None
        if isinstance(optimizer, torch.optim.Optimizer):
            log["train/lr"] = float(optimizer.param_groups[0]["lr"])
        log["_loss_epoch"] = out.terms.get("loss", out.loss).detach()
        return loss, log

    def _log_step(self, log: dict[str, Tensor | float]) -> None:
        epoch_loss = log.pop("_loss_epoch")
        self.log_dict(log, on_step=True, on_epoch=False, batch_size=self.batch_size)
        self.log(
            "train/loss_epoch", epoch_loss, on_step=False, on_epoch=True, batch_size=self.batch_size, sync_dist=True
        )

    def on_save_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        checkpoint.update(self.bad_batches.state_dict())

    def on_load_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        self.bad_batches.load_state_dict(checkpoint)
        migrate_state_dict(checkpoint.get("state_dict", {}))

    def on_train_batch_end(self, outputs: Any, batch: Any, batch_idx: int) -> None:
        now = time.perf_counter()
        if self._last_batch_end is not None and now > self._last_batch_end:
            images = self.batch_size * self.trainer.world_size
            self.log(
                "train/images_per_s",
                images / (now - self._last_batch_end),
                on_step=True,
                on_epoch=False,
                batch_size=self.batch_size,
            )
        self._last_batch_end = now

    def on_train_epoch_start(self) -> None:
        self._last_batch_end = None

    def validation_step(self, batch: Any, batch_idx: int) -> None:
        if self.classifier is None:
            return
        images, labels = batch[0], batch[-1]
        features = self.model.features(images)
        loss, acc, n = self._probe_loss(features, labels)
        if n:
            self.log("val/probe_loss", loss, on_epoch=True, batch_size=n, sync_dist=True)
            self.log("val/probe_acc", acc, on_epoch=True, batch_size=n, sync_dist=True)

    def configure_optimizers(self) -> Any:
        cfg, trainer = self.optim_cfg, self.trainer
        effective_batch = self.batch_size * trainer.world_size * trainer.accumulate_grad_batches
        self.base_lr = effective_lr(cfg, effective_batch)
        groups = [group for part in self.trained_parts() for group in split_decay_params(part, cfg.weight_decay)]
        if self.classifier is not None:
            groups.append(
                {
                    "params": list(self.classifier.parameters()),
                    "lr": self.probe_cfg.lr,
                    "weight_decay": self.probe_cfg.weight_decay,
                    "lars_exclude": True,
                }
            )
        optimizer = build_optimizer(cfg, groups, self.base_lr)
        self._scheduler = DeferredLambdaLR(optimizer)  # bound in on_train_start, see DeferredLambdaLR
        return {
            "optimizer": optimizer,
            "lr_scheduler": {"scheduler": self._scheduler, "interval": "step", "frequency": 1},
        }

    def on_train_start(self) -> None:
        trainer = self.trainer
        total = trainer.estimated_stepping_batches
        per_epoch = math.ceil(trainer.num_training_batches / trainer.accumulate_grad_batches)
        if not math.isfinite(float(total)):
            total = per_epoch * max(1, trainer.max_epochs or 1)
        self.schedule_total_steps = int(total)
        self._stepped = trainer.global_step  # a resumed run continues from its checkpoint's step
        self._scheduler.bind(
            lr_schedule(self.optim_cfg, total_steps=int(total), steps_per_epoch=per_epoch, base_lr=self.base_lr)
        )
