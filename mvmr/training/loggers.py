"""Experiment loggers by name (``trainer.loggers``), through Lightning's own logger classes.

``csv`` (``<run>/csv/version_K/metrics.csv``, which the plots read), ``tensorboard``
(``<run>/tensorboard/version_K/``), ``wandb`` (project ``WANDB_PROJECT`` or the run's ``name``,
files under ``<run>/wandb/``; ``WANDB_MODE=offline`` stays local) and ``mlflow`` (experiment named
like the run, at ``MLFLOW_TRACKING_URI`` or else the file store ``<run>/mlruns``, for which
``MLFLOW_ALLOW_FILE_STORE=true`` is set). Each gets every loss term and the config; a missing
optional package is a :class:`~mvmr.errors.ConfigError` naming the extra to install.
"""

from __future__ import annotations

import importlib.util
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import lightning as L
from lightning.pytorch.loggers import CSVLogger, Logger, MLFlowLogger, TensorBoardLogger, WandbLogger

from mvmr.errors import ConfigError
from mvmr.training.quiet import notices_hidden

__all__ = ["LOGGER_NAMES", "build_loggers", "logger_location", "CloseLoggers"]

#: The names ``trainer.loggers`` accepts, and the package each needs.
LOGGER_NAMES: dict[str, str] = {"csv": "lightning", "tensorboard": "tensorboard", "wandb": "wandb", "mlflow": "mlflow"}


def build_loggers(names: Sequence[str], run_dir: str | os.PathLike[str], *, run_name: str) -> list[Logger]:
    """Lightning loggers for ``names`` (``csv``, ``tensorboard``, ``wandb``, ``mlflow``), writing under
    ``run_dir``; ``run_name`` (the config's ``name``) is the W&B project and the MLflow experiment."""
    run_dir = Path(run_dir)
    loggers: list[Logger] = []
    for i, name in enumerate(names):
        if name not in LOGGER_NAMES:
            raise ConfigError(
                f"trainer.loggers[{i}]: expected one of {', '.join(map(repr, LOGGER_NAMES))}, got {name!r}"
            )
        if importlib.util.find_spec(LOGGER_NAMES[name]) is None:
            raise ConfigError(
                f"trainer.loggers[{i}]: {name!r} needs the {LOGGER_NAMES[name]} package: pip install 'mvmr[{name}]'"
            )
        if name == "csv":
            loggers.append(CSVLogger(str(run_dir), name="csv"))
        elif name == "tensorboard":
            loggers.append(TensorBoardLogger(str(run_dir), name="tensorboard"))
        elif name == "wandb":
            loggers.append(_wandb_logger(run_dir, run_name))
        else:
            loggers.append(_mlflow_logger(run_dir, run_name, i))
    return loggers


def _wandb_logger(run_dir: Path, run_name: str) -> WandbLogger:
    extra: dict[str, Any] = {}
    if notices_hidden():  # W&B's banner, notices and run summary (the run's summary says where its files are)
        import wandb

        extra["settings"] = wandb.Settings(silent=True)
    logger = WandbLogger(
        name=run_dir.name, save_dir=str(run_dir), project=os.environ.get("WANDB_PROJECT") or run_name, **extra
    )
    # Lightning always hands wandb.init anonymous=None, which wandb (0.2x and later) warns about on every run
    getattr(logger, "_wandb_init", {}).pop("anonymous", None)
    return logger


def _mlflow_logger(run_dir: Path, run_name: str, index: int) -> MLFlowLogger:
    uri = os.environ.get("MLFLOW_TRACKING_URI")
    if not uri:  # the file store in the run folder: MLflow 3 wants it asked for explicitly
        uri = (run_dir.resolve() / "mlruns").as_uri()
        os.environ.setdefault("MLFLOW_ALLOW_FILE_STORE", "true")
    try:
        from mlflow.tracking import MlflowClient

        client = MlflowClient(uri)  # the experiment exists before the logger looks for it
        if client.get_experiment_by_name(run_name) is None:
            client.create_experiment(run_name)
        return MLFlowLogger(experiment_name=run_name, run_name=run_dir.name, tracking_uri=uri)
    except Exception as exc:  # mlflow's own errors: an unreachable server, a refused store
        raise ConfigError(f"trainer.loggers[{index}]: mlflow cannot track to {uri}: {exc}") from exc


def logger_location(logger: Logger) -> str:
    """Where a logger put the run's metrics, in words (for the end-of-run summary)."""
    if isinstance(logger, WandbLogger):
        experiment = logger.experiment
        files = getattr(experiment, "dir", None)  # <save_dir>/wandb/<run>/files
        where = Path(files).parent if files else Path(str(logger.save_dir))
        sync = f"; offline: `wandb sync {where}` uploads it" if getattr(experiment, "offline", False) else ""
        return f"wandb: {where} (project {logger.name}{sync})"
    if isinstance(logger, MLFlowLogger):
        experiment = logger.experiment.get_experiment(logger.experiment_id)
        return f"mlflow: {logger.experiment.tracking_uri} (experiment {experiment.name}, run {logger.run_id})"
    return f"{logger.name}: {logger.log_dir}"


class CloseLoggers(L.Callback):
    """Finish the W&B run when fitting ends, so that its files are complete and a second run in the
    same process starts its own (Lightning finalises the other loggers itself)."""

    def teardown(self, trainer: L.Trainer, pl_module: L.LightningModule, stage: str) -> None:
        if any(isinstance(logger, WandbLogger) for logger in trainer.loggers):
            import wandb

            if wandb.run is not None:
                wandb.finish()
