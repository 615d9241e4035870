"""The sections of a config that say how a run trains: the optimiser and its schedule, the Lightning
trainer, and the online probe."""

from __future__ import annotations

import re
from dataclasses import field
from typing import Annotated, Literal

from pydantic import Field

from .fields import FRACTION_OR_COUNT, Bool, Float, Int, Text, section, valid

__all__ = ["OptimConfig", "TrainerConfig", "ProbeConfig"]


@section
class OptimConfig:
    """Optimiser and learning-rate schedule (linear warm-up then cosine, stepped per optimiser step)."""

    optimizer: Annotated[Literal["adam", "adamw", "lars"], Field(description="the optimiser")] = "adam"
    lr: Annotated[Float, Field(gt=0.0, description="base learning rate")] = 1e-4
    weight_decay: Annotated[Float, Field(ge=0.0, description="weight decay")] = 0.0
    betas: Annotated[
        list[Float],
        valid(lambda b: len(b) == 2 and all(0.0 <= x < 1.0 for x in b), "expected two numbers in [0, 1)"),
        Field(description="Adam's two betas, in [0, 1)"),
    ] = field(default_factory=lambda: [0.9, 0.999])
    momentum: Annotated[Float, Field(ge=0.0, lt=1.0, description="LARS momentum")] = 0.9
    trust_coefficient: Annotated[Float, Field(gt=0.0, description="LARS eta")] = 0.001
    lars_clip_lr: Annotated[
        Bool, Field(description="LARS: cap the adaptive rate at lr, min(eta*||p||/||g|| / lr, 1) (solo-learn's clip)")
    ] = False
    scheduler: Annotated[Literal["cosine", "constant"], Field(description="schedule after the warm-up")] = "cosine"
    warmup_epochs: Annotated[Float, Field(ge=0.0, description="linear warm-up, < trainer.max_epochs")] = 0.0
    min_lr: Annotated[Float, Field(ge=0.0, description="the cosine's final learning rate, <= lr")] = 0.0
    lr_scaling: Annotated[
        Literal["none", "linear", "sqrt"],
        Field(description="scale lr by (effective batch / base_batch_size) or its square root"),
    ] = "none"
    base_batch_size: Annotated[Int, Field(ge=1, description="the batch size lr is given for")] = 256


@section
class TrainerConfig:
    """Lightning Trainer settings."""

    max_epochs: Annotated[Int, Field(ge=1, description="training epochs")] = 1000
    max_steps: Annotated[Int, Field(ge=-1, description="optimiser steps; -1 = no limit")] = -1
    accelerator: Annotated[Text, Field(description="Lightning accelerator: auto, cpu, gpu, ...")] = "auto"
    devices: Annotated[
        Int | Text,
        valid(
            lambda d: not isinstance(d, str) or d == "auto" or re.fullmatch(r"-1|\d+(,\d+)*,?", d),
            "expected a count, 'auto' or a list like '0,1'",
        ),
        valid(lambda d: not isinstance(d, int) or d > 0 or d == -1, "expected a positive count, -1 or 'auto'"),
        Field(description="a count, -1 (all), 'auto' or ids like '0,1'"),
    ] = "auto"
    num_nodes: Annotated[Int, Field(ge=1, description="machines")] = 1
    strategy: Annotated[Text, Field(description="Lightning strategy: auto, ddp, ...")] = "auto"
    precision: Annotated[
        Literal["64-true", "32-true", "16-mixed", "bf16-mixed", "16-true", "bf16-true"],
        Field(description="Lightning precision"),
    ] = "32-true"
    accumulate_grad_batches: Annotated[Int, Field(ge=1, description="batches per optimiser step")] = 1
    gradient_clip_val: Annotated[Float | None, Field(gt=0.0, description="gradient norm clip; null = none")] = None
    log_every_n_steps: Annotated[Int, Field(ge=1, description="logging interval in optimiser steps")] = 50
    checkpoint_every_n_epochs: Annotated[
        Int, Field(ge=1, description="keep a numbered checkpoint every N epochs (last.ckpt is rewritten every epoch)")
    ] = 1
    checkpoint_every_n_steps: Annotated[
        Int | None, Field(ge=1, description="also rewrite last.ckpt every N steps, to resume mid-epoch; null = off")
    ] = None
    skip_nonfinite_batches: Annotated[
        Int,
        Field(
            ge=0,
            description="skip up to N batches whose inputs or loss are NaN "
            "or inf (no optimiser update; counted and logged as "
            "train/skipped_nonfinite); the next one stops the "
            "run. 0 = stop at the first",
        ),
    ] = 0
    limit_train_batches: Annotated[
        Int | Float, FRACTION_OR_COUNT, Field(gt=0, description="batches (int) or a fraction <= 1.0")
    ] = 1.0
    limit_val_batches: Annotated[
        Int | Float, FRACTION_OR_COUNT, Field(ge=0, description="batches (int) or a fraction <= 1.0")
    ] = 1.0
    check_val_every_n_epoch: Annotated[Int, Field(ge=1, description="validation interval in epochs")] = 1
    seed: Annotated[Int, Field(description="seed of everything random, data subsets included")] = 0
    deterministic: Annotated[Bool, Field(description="deterministic PyTorch algorithms")] = False
    progress_bar: Annotated[Bool, Field(description="show Lightning's progress bar")] = True
    loggers: Annotated[
        list[Literal["tensorboard", "csv", "wandb", "mlflow"]],
        Field(
            description="where metrics go, each name once: csv/ and tensorboard/ in the run folder; "
            "wandb (mvmr[wandb]; WANDB_MODE=offline keeps it local) and mlflow (mvmr[mlflow]; "
            "MLFLOW_TRACKING_URI, else a file store in <run>/mlruns) log to the project or experiment "
            "named like the run"
        ),
    ] = field(default_factory=lambda: ["csv", "tensorboard"])


@section
class ProbeConfig:
    """Online linear probe on detached encoder features (a progress monitor, not the evaluation)."""

    enabled: Annotated[Bool, Field(description="train the probe during pretraining")] = True
    lr: Annotated[Float, Field(gt=0.0, description="learning rate")] = 1e-3
    weight_decay: Annotated[Float, Field(ge=0.0, description="weight decay")] = 0.0
    num_classes: Annotated[Int | None, Field(ge=2, description="classes; null = the dataset's class list")] = None
