"""The Lightning modules: a base that optimises and runs an online linear probe, and the method module.

:class:`BaseSSLModule` owns what every method shares (optimiser, schedule, online probe on detached
features, lr and throughput logs); a method implements :meth:`BaseSSLModule.ssl_step`.
:class:`MVMRModule` adds the method's loss and the fixed targets' objectives on top of
:class:`~mvmr.models.MVMRModel`. Training batches are ``(x_clean, x_aug, index, label)``, or
``(x_clean, x_aug, index, view_row, label)`` with stored views; validation batches ``(image, label)``;
label -1 is unlabelled.
"""

from __future__ import annotations

import math
import time
import warnings
from dataclasses import dataclass
from typing import Any, Mapping, Sequence

import lightning as L
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from mvmr.config import OptimConfig, ProbeConfig
from mvmr.losses import NonFiniteInputError, distance_correlation
from mvmr.models import TargetRegression
from mvmr.sources import FeatureSource
from mvmr.training.bad_batches import BadBatches
from mvmr.training.callbacks import STOP_ADVICE, NonFiniteLossError, nonfinite_loss_message
from mvmr.training.optim import DeferredLambdaLR, build_optimizer, effective_lr, lr_schedule, split_decay_params
from mvmr.training.sampling import mix_seed

__all__ = ["StepOutput", "BaseSSLModule", "MVMRModule"]


@dataclass
class StepOutput:
    """What a method's :meth:`BaseSSLModule.ssl_step` returns."""

    loss: Tensor
    terms: dict[str, Tensor]
    features: Tensor  # clean-view encoder features (B, F), for the online probe
    embeddings: Tensor | None = None  # clean-view embeddings (B, D), for the std monitor


class BaseSSLModule(L.LightningModule):
    """Optimisation, online linear probe and common logging for a self-supervised method.

    Args:
        model: a module with ``features(x) -> (B, F)`` (the encoder under training); F = ``feature_dim``.
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
        model: nn.Module,
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

    def ssl_step(self, batch: Any) -> StepOutput:
        """Compute the method's loss on a training batch."""
        raise NotImplementedError

    def trained_parts(self) -> list[nn.Module]:
        """What the optimiser trains besides the online probe (the model; a method adds its heads)."""
        return [self.model]

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
        message = policy.skip(self.trainer, batch, batch_idx, problem)  # raises past the limit
        warnings.warn(message, stacklevel=2)
        self.log("train/skipped_nonfinite", float(policy.skipped), on_step=True, on_epoch=False,
                 batch_size=self.batch_size)
        self._skipping = True  # optimizer_step drops the update
        return policy.zero_loss(self)  # gradient 0 for every parameter: all ranks run the same backward pass

    def optimizer_step(self, epoch: int, batch_idx: int, optimizer: Any, optimizer_closure: Any = None) -> None:
        """Lightning's step, except that a window of only skipped bad batches updates nothing (the
        closure returns None, so the optimiser and an AMP grad scaler skip every parameter)."""
        if not self.bad_batches.active(self._trainer):
            return super().optimizer_step(epoch, batch_idx, optimizer, optimizer_closure)

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
        if optimizer is not None:
            log["train/lr"] = float(optimizer.param_groups[0]["lr"])
        log["_loss_epoch"] = out.terms.get("loss", out.loss).detach()
        return loss, log

    def _log_step(self, log: dict[str, Tensor | float]) -> None:
        epoch_loss = log.pop("_loss_epoch")
        self.log_dict(log, on_step=True, on_epoch=False, batch_size=self.batch_size)
        self.log("train/loss_epoch", epoch_loss, on_step=False, on_epoch=True, batch_size=self.batch_size,
                 sync_dist=True)

    def on_save_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        checkpoint.update(self.bad_batches.state_dict())

    def on_load_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        self.bad_batches.load_state_dict(checkpoint)

    def on_train_batch_end(self, outputs: Any, batch: Any, batch_idx: int) -> None:
        now = time.perf_counter()
        if self._last_batch_end is not None and now > self._last_batch_end:
            images = self.batch_size * self.trainer.world_size
            self.log("train/images_per_s", images / (now - self._last_batch_end), on_step=True, on_epoch=False,
                     batch_size=self.batch_size)
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
            groups.append({"params": list(self.classifier.parameters()), "lr": self.probe_cfg.lr,
                           "weight_decay": self.probe_cfg.weight_decay, "lars_exclude": True})
        optimizer = build_optimizer(cfg, groups, self.base_lr)
        self._scheduler = DeferredLambdaLR(optimizer)  # bound in on_train_start, see DeferredLambdaLR
        return {"optimizer": optimizer, "lr_scheduler": {"scheduler": self._scheduler, "interval": "step", "frequency": 1}}

    def on_train_start(self) -> None:
        trainer = self.trainer
        total = trainer.estimated_stepping_batches
        per_epoch = math.ceil(trainer.num_training_batches / trainer.accumulate_grad_batches)
        if not math.isfinite(float(total)):
            total = per_epoch * max(1, trainer.max_epochs or 1)
        self.schedule_total_steps = int(total)
        self._scheduler.bind(lr_schedule(self.optim_cfg, total_steps=int(total), steps_per_epoch=per_epoch,
                                         base_lr=self.base_lr))


class MVMRModule(BaseSSLModule):
    """A method's loss on the projector outputs of its two views, with fixed targets.

    MV-MR (paper section 4.1) is the general case, ``loss(z, z_aug, targets)`` with the fixed targets
    z*_k from the feature sources; VICReg and Barlow Twins use no sources. Each target has an
    objective: ``dcor`` targets go to ``loss`` (L3), ``cosine`` ones to ``regression`` (a head per
    target on the augmented view, 2 - 2 cos), ``dcor+cosine`` ones to both; every target is logged
    as ``dcor/<name>`` (a monitor where it is not in the loss) and, with a head, ``cos/<name>``.

    Args:
        model: an encoder + projector (:class:`~mvmr.models.MVMRModel`).
        loss: ``loss(z_a, z_b, targets) -> (scalar, terms)`` (:class:`~mvmr.losses.MVMRLoss`, or a
            method's, see :mod:`mvmr.methods`).
        sources: the targets that describe the clean view, keyed by dataset index
            (:mod:`mvmr.sources`), prepared in :meth:`setup` (call ``source.prepare(device)`` yourself
            without a trainer).
        augmented_sources: the targets that describe the student's augmented view, keyed by the
            batch's view keys (the stored view's row, else the dataset index).
        objectives: ``{name: "dcor" | "cosine" | "dcor+cosine"}``; missing names are ``dcor``.
        regression: the heads of the targets with a cosine objective (None without any); trained with
            the model, saved in checkpoints, never exported.
        regression_input: what the heads read of the augmented view: ``features`` (encoder) or
            ``embedding`` (projector).
        order: the order of the targets in the loss and the logs (default: the sources' order).
        **kwargs: :class:`BaseSSLModule` arguments.
    """

    def __init__(self, model: nn.Module, loss: nn.Module, sources: Sequence[FeatureSource] = (), *,
                 augmented_sources: Sequence[FeatureSource] = (), objectives: Mapping[str, str] | None = None,
                 regression: TargetRegression | None = None, regression_input: str = "features",
                 order: Sequence[str] | None = None, **kwargs: Any) -> None:
        super().__init__(model, **kwargs)
        self.loss_fn = loss
        self.sources = list(sources)
        self.augmented_sources = list(augmented_sources)
        names = [name for source in self.sources + self.augmented_sources for name in source.names]
        if len(set(names)) != len(names):
            raise ValueError(f"two feature sources give the same representation: {names}")
        self.order = list(order) if order is not None else names
        if sorted(self.order) != sorted(names):
            raise ValueError(f"order {self.order} must list each of the representations {sorted(names)} once")
        self.objectives = {name: (objectives or {}).get(name, "dcor") for name in names}
        unknown = {k: v for k, v in self.objectives.items() if v not in ("dcor", "cosine", "dcor+cosine")}
        if unknown or set(objectives or {}) - set(names):
            raise ValueError(f"objectives must map the targets {names} to dcor, cosine or dcor+cosine, got {objectives}")
        regressed = [n for n in self.order if "cosine" in self.objectives[n]]
        if (regression is None) != (not regressed) or (regression is not None and set(regression.names) != set(regressed)):
            raise ValueError(f"the regression heads must cover exactly the cosine targets {regressed}, got "
                             f"{None if regression is None else regression.names}")
        if regression_input not in ("features", "embedding"):
            raise ValueError(f"regression_input must be 'features' or 'embedding', got {regression_input!r}")
        self.regression = regression
        self.regression_input = regression_input

    def trained_parts(self) -> list[nn.Module]:
        return [self.model] + ([self.regression] if self.regression is not None else [])

    def setup(self, stage: str) -> None:
        if stage == "fit":
            for source in self.sources + self.augmented_sources:
                source.prepare(self.trainer.strategy.root_device)

    @torch.no_grad()
    def targets(self, x_clean: Tensor, index: Tensor, x_aug: Tensor | None = None,
                view_key: Tensor | None = None) -> dict[str, Tensor]:
        """``{name: float32 (B, D_k)}`` in ``order``: the clean sources' features of ``x_clean`` (by
        ``index``) and the augmented sources' of ``x_aug`` (by ``view_key``, default ``index``)."""
        out: dict[str, Tensor] = {}
        for source in self.sources:
            out.update(source(x_clean, index))
        if self.augmented_sources:
            if x_aug is None:
                raise ValueError("targets of the augmented view need x_aug")
            for source in self.augmented_sources:
                out.update(source(x_aug, index if view_key is None else view_key))
        return {name: out[name] for name in self.order}

    def ssl_step(self, batch: Any) -> StepOutput:
        x_a, x_b, index, *extra, _ = batch
        view_key = extra[0] if extra else None
        features, z_a = self.model.forward_with_features(x_a)
        h_b, z_b = self.model.forward_with_features(x_b)
        targets = self.targets(x_a, index, x_b, view_key)
        with torch.autocast(device_type=z_a.device.type, enabled=False):  # the losses in float32, even under AMP
            try:
                dcor_targets = {n: t for n, t in targets.items() if "dcor" in self.objectives[n]}
                loss, terms = self.loss_fn(z_a.float(), z_b.float(), dcor_targets)
                terms = dict(terms)
                squared = bool(getattr(self.loss_fn, "squared", True))
                for name in (n for n in self.order if n not in dcor_targets):  # monitored, not trained
                    terms[f"dcor/{name}"] = distance_correlation(z_b.detach().float(), targets[name], squared=squared)
                if self.regression is not None:
                    student = h_b if self.regression_input == "features" else z_b
                    regression, regression_terms = self.regression(
                        student.float(), {n: targets[n] for n in self.regression.names})
                    loss = loss + regression
                    terms.update(regression_terms)
                    terms["loss"] = loss.detach()
            except NonFiniteInputError as err:
                raise NonFiniteLossError(
                    f"non-finite values at optimiser step {self.global_step} (epoch {self.current_epoch}, "
                    f"batch {self.trainer.fit_loop.epoch_loop.batch_idx}) before the loss: {err}. {STOP_ADVICE}"
                ) from err
        return StepOutput(loss=loss, terms=terms, features=features, embeddings=z_a)
