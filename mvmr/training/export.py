"""A run's checkpoint: where it is, read back into an :class:`~mvmr.models.MVMRModel`, and exported."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from mvmr.config import Config, from_dict, save_config
from mvmr.errors import CheckpointError, ConfigError

__all__ = [
    "LAST_CHECKPOINT",
    "TrainedModel",
    "last_checkpoint",
    "read_trained_model",
    "model_from_checkpoint",
    "export_checkpoint",
]

#: The checkpoint a run rewrites every epoch, relative to its run folder.
LAST_CHECKPOINT = Path("checkpoints") / "last.ckpt"


def last_checkpoint(run_dir: str | Path) -> Path:
    """``<run_dir>/checkpoints/last.ckpt``; CheckpointError when the run has not written it (yet)."""
    path = Path(run_dir) / LAST_CHECKPOINT
    if not path.is_file():
        raise CheckpointError(f"no checkpoint at {path}: train the run first")
    return path


@dataclass(frozen=True)
class TrainedModel:
    """What an ``mvmr pretrain`` checkpoint holds: the model, its config, and how far it trained."""

    model: Any  #: the MVMRModel, in eval mode
    config: Config
    epochs: int  #: epochs whose batches were all trained
    steps: int  #: optimiser steps


def read_trained_model(path: str | os.PathLike[str]) -> TrainedModel:
    """The model, config and progress of an ``mvmr pretrain`` checkpoint; the load is strict.

    The checkpoint is read by :func:`mvmr.models.read_lightning_checkpoint` (``weights_only=True``).
    """
    from mvmr.methods import get_method
    from mvmr.models import load_state_dict_strict, read_lightning_checkpoint

    ckpt = read_lightning_checkpoint(path)
    if not isinstance(ckpt.get("hyper_parameters"), dict):
        raise CheckpointError(f"{path} is not an mvmr pretraining checkpoint (no hyper_parameters with the config)")
    try:
        config = from_dict(ckpt["hyper_parameters"])
    except ConfigError as err:
        raise CheckpointError(f"{path}: the config stored in the checkpoint is invalid: {err}") from err
    state = {k[len("model.") :]: v for k, v in ckpt["state_dict"].items() if k.startswith("model.")}
    if "mean" not in state:
        raise CheckpointError(f"{path}: no model.mean buffer; not an MVMRModel checkpoint")
    model = get_method(config.method).build_model(config, int(state["mean"].shape[1]))  # the model the method trained
    load_state_dict_strict(model, state, source=f"checkpoint {path}")
    epochs = ckpt.get("loops", {}).get("fit_loop", {}).get("epoch_progress", {}).get("total", {}).get("processed")
    return TrainedModel(
        model.eval(),
        config,
        int(epochs if epochs is not None else ckpt.get("epoch", 0)),
        int(ckpt.get("global_step", 0)),
    )


def model_from_checkpoint(path: str | os.PathLike[str]) -> tuple[Any, Config]:
    """``(MVMRModel with the weights of an ``mvmr pretrain`` checkpoint, its Config)``; the load is strict."""
    trained = read_trained_model(path)
    return trained.model, trained.config


def export_checkpoint(path: str | os.PathLike[str], out_dir: str | os.PathLike[str]) -> list[Path]:
    """Write ``backbone.safetensors``, ``backbone.pt`` and ``config.yaml`` of a checkpoint into ``out_dir``."""
    from mvmr.models import save_backbone

    model, config = model_from_checkpoint(path)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    meta = {"source": "mvmr pretrain", "checkpoint": str(Path(path).name), "projector": config.model.projector}
    return [
        save_backbone(model, out / "backbone.safetensors", format="safetensors", metadata=meta),
        save_backbone(model, out / "backbone.pt", format="pt", metadata=meta),
        save_config(config, out / "config.yaml"),
    ]
