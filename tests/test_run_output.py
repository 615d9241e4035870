"""A short ``mvmr pretrain`` as a user runs it: clean output, every logger by name, data from ``datasets``.

The run happens once, in a subprocess, because what is tested is what the terminal shows: Lightning
attaches its own log handler to the streams of the process at import time, which pytest's capture
would hide. It trains on a ``datasets`` save_to_disk folder (``data.kind=hf``) and logs to
``[tensorboard, csv, wandb, mlflow]`` with local backends only: ``WANDB_MODE=offline`` and MLflow's
file store in the run folder.
"""

from __future__ import annotations

import csv
import logging
import os
import re
import shutil
import subprocess
import sys
import warnings
from pathlib import Path

import pytest

from mvmr.training.quiet import clean_output

sys.path.insert(0, str(Path(__file__).parent))
from _training_support import save_hf_images  # noqa: E402

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def short_run(cifar10_root: Path, tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, str, Path]:
    """``(run folder, everything the command printed, the HF dataset folder)``."""
    tmp = tmp_path_factory.mktemp("short-run")
    data = save_hf_images(cifar10_root / "test", tmp / "cifar-hf", per_class=4)
    run = tmp / "run"
    env = {k: v for k, v in os.environ.items() if not k.startswith(("WANDB_", "MLFLOW_"))}
    env.update(
        PYTHONPATH=str(REPO),
        WANDB_MODE="offline",
        WANDB_DIR=str(tmp),
        WANDB_CONFIG_DIR=str(tmp / "wandb-config"),
        WANDB_CACHE_DIR=str(tmp / "wandb-cache"),
        WANDB_DATA_DIR=str(tmp / "wandb-data"),
    )
    overrides = [
        "data.kind=hf",
        f"data.name={data}",
        "data.split=train",
        "data.image_column=picture",
        "data.label_column=category",
        "data.image_size=16",
        "data.batch_size=4",
        "data.num_workers=0",
        "data.val_fraction=0.25",
        "representations.items=[{name: pixels}, {name: local_std}]",
        "model.encoder=resnet18",
        "model.projector=32-32",
        "trainer.accelerator=cpu",
        "trainer.devices=1",
        "trainer.max_epochs=1",
        "trainer.log_every_n_steps=1",
        "trainer.progress_bar=false",
        "trainer.loggers=[tensorboard,csv,wandb,mlflow]",
        f"output_dir={run}",
    ]
    (tmp / "run.yaml").write_text("name: mvmr\n")  # the defaults, and the overrides above
    done = subprocess.run(
        [sys.executable, "-m", "mvmr", "pretrain", "--config", str(tmp / "run.yaml"), *overrides],
        cwd=tmp,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    output = done.stdout + done.stderr
    assert done.returncode == 0, output
    (tmp / "command.txt").write_text("\n".join(["pretrain", "--config", str(tmp / "run.yaml"), *overrides]))
    return run, output, data


def test_resume_auto_on_a_finished_run_says_that_nothing_was_trained(short_run, tmp_path: Path) -> None:
    """The same command again, on a copy of the finished run (``--resume auto`` is the default)."""
    run, _, _ = short_run
    copy = tmp_path / "run"
    shutil.copytree(run / "checkpoints", copy / "checkpoints")
    command = (run.parent / "command.txt").read_text().splitlines()
    command = [a for a in command if not a.startswith(("output_dir=", "trainer.loggers="))]
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    again = subprocess.run(
        [sys.executable, "-m", "mvmr", *command, f"output_dir={copy}", "trainer.loggers=[csv]"],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    output = again.stdout + again.stderr
    assert again.returncode == 0, output
    assert (
        f"mvmr: mvmr is finished: {copy / 'checkpoints' / 'last.ckpt'} is at step 7 of 7 (epoch 1); "
        "nothing was trained" in output
    ), output
    assert "mvmr: training" not in output and "mvmr: ETA" not in output and "mvmr: results in" in output, output


def test_the_run_prints_its_plan_an_eta_and_its_results_once_and_nothing_of_lightnings(short_run) -> None:
    run, output, data = short_run
    for once in ("mvmr: training", "mvmr: ETA ", "mvmr: results in"):
        assert output.count(once) == 1, (once, output)
    plan = output[output.index("mvmr: training") : output.index("mvmr: ETA")]
    for expected in (
        f"data     hf {data} split train: 30 training images (+10 held out for the online probe)",
        "model    resnet18 + projector 32-32",
        "method   mvmr: MV-MR",
        "targets  pixels, local_std",
        "devices  cpu x 1",
        "7 optimiser steps",
    ):
        assert expected in plan, (expected, plan)
    assert re.search(r"mvmr: ETA \d+:\d\d:\d\d for the 4 steps left of 7", output), output
    results = output[output.index("mvmr: results in") :]
    for where in (
        str(run / "checkpoints" / "last.ckpt"),
        str(run / "csv" / "version_0"),
        str(run / "tensorboard" / "version_0"),
        f"wandb       {run / 'wandb'}",
        "wandb sync",
        f"mlflow      {(run / 'mlruns').as_uri()} (experiment mvmr",
    ):
        assert where in results, (where, results)
    for noise in (
        "Tip",
        "litlogger",
        "litmodels",
        "GPU available",
        "TPU available",
        "Trainer.fit` stopped",
        "weights_only",
        "Params",
        "wandb: WARNING",
        "Creating it",
    ):
        assert noise not in output, (noise, output)
    lines = [line for line in output.splitlines() if "warn" in line.lower()]
    assert len(lines) == len(set(lines)), lines  # no warning twice


def test_every_logger_received_the_loss_terms(short_run) -> None:
    run, output, _ = short_run
    with (run / "csv" / "version_0" / "metrics.csv").open(newline="") as f:
        losses = [row["train/loss"] for row in csv.DictReader(f) if row.get("train/loss")]
    assert len(losses) == 7
    assert list((run / "tensorboard" / "version_0").glob("events.out.tfevents.*"))
    offline = list((run / "wandb").glob("offline-run-*/run-*.wandb"))
    assert len(offline) == 1 and offline[0].stat().st_size > 1000
    os.environ.setdefault("MLFLOW_ALLOW_FILE_STORE", "true")
    from mlflow.tracking import MlflowClient

    client = MlflowClient((run / "mlruns").as_uri())
    experiment = client.get_experiment_by_name("mvmr")
    (found,) = client.search_runs([experiment.experiment_id])
    assert found.info.status == "FINISHED" and found.data.params["data/kind"] == "hf"
    assert len(client.get_metric_history(found.info.run_id, "train/loss")) == 7
    assert {"train/dcor/pixels", "train/dcor/local_std", "train/l3"} <= set(found.data.metrics)


def test_debug_shows_what_normal_output_hides(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    import lightning as L
    from lightning.pytorch.loggers import CSVLogger

    lightning_log = logging.getLogger("lightning.pytorch")
    lightning_log.addHandler(caplog.handler)  # whether or not Lightning propagates to the root logger
    try:
        seen = {}
        for debug in (False, True):
            caplog.clear()
            with clean_output(enabled=not debug):
                L.Trainer(
                    accelerator="cpu", logger=CSVLogger(tmp_path), enable_checkpointing=False, enable_progress_bar=False
                )
            seen[debug] = caplog.text
    finally:
        lightning_log.removeHandler(caplog.handler)
    assert "Tip" not in seen[False] and "GPU available" not in seen[False]
    assert "Tip" in seen[True] and "GPU available" in seen[True]


def test_clean_output_shows_each_warning_once(recwarn: pytest.WarningsRecorder) -> None:
    with clean_output():
        for _ in range(3):
            warnings.warn("the same advice", UserWarning, stacklevel=1)
        warnings.warn("something else", UserWarning, stacklevel=1)
        warnings.warn("an internal detail", DeprecationWarning, stacklevel=1)
    assert [str(w.message) for w in recwarn] == ["the same advice", "something else"]
    with clean_output(enabled=False):  # --debug
        warnings.warn("an internal detail", DeprecationWarning, stacklevel=1)
    assert len(recwarn) == 3


def test_lightnings_own_warnings_are_hidden_unless_debug() -> None:
    """A warning Lightning issues (here through its rank_zero_warn, as for a non-empty checkpoint folder)
    is hidden in normal output and shown with --debug; mvmr's and the user's own warnings still show."""
    from lightning.fabric.utilities.rank_zero import rank_zero_warn

    shown = {}
    for debug in (False, True):
        with warnings.catch_warnings(record=True) as seen:  # what reaches the user, recorded
            warnings.simplefilter("always")
            with clean_output(enabled=not debug):
                rank_zero_warn("Checkpoint directory runs/x exists and is not empty.")
                warnings.warn("a warning of our own", stacklevel=1)
        shown[debug] = [str(w.message) for w in seen]
    assert shown[False] == ["a warning of our own"], shown
    assert shown[True] == ["Checkpoint directory runs/x exists and is not empty.", "a warning of our own"], shown
