"""`mvmr ablate` (Tables 5-8 of the paper's appendix B): configs, resume, launcher, collected table."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from mvmr.cli import main
from mvmr.config import load_config
from mvmr.workflows import ablation


def _configs(table: int, tmp_path: Path, rows=None) -> dict:
    base = load_config("cifar10")
    chosen = ablation.select_rows(ablation.table_rows(table, base), rows)
    return {r.key: ablation.row_config("cifar10", r, [], tmp_path) for r in chosen}


def test_table5_loss_combinations(tmp_path: Path) -> None:
    cfgs = _configs(5, tmp_path)
    assert list(cfgs) == ["L1", "L2", "L3", "L1+L2", "L1+L3", "L2+L3", "L1+L2+L3"]
    for key, c in cfgs.items():
        on = set(key.split("+"))
        loss = c.loss
        assert (loss.lambda_ > 0, loss.mu > 0) == (("L1" in on),) * 2  # both parts of L1 together
        assert (loss.alpha > 0) == ("L2" in on)
        assert (loss.beta > 0) == ("L3" in on)
        names = [s.name for s in c.representations.items]
        assert names == ([] if "L3" not in on else ["pixels", "scatnet", "augmented_pixels", "hog", "local_std"])
        assert c.output_dir == str(tmp_path / key)


def test_table6_subsets(tmp_path: Path) -> None:
    base = load_config("cifar10")
    rows = ablation.table_rows(6, base)
    assert len(rows) == 31 and len({r.key for r in rows}) == 31
    assert rows[-1].paper_top1 == 69.38 and rows[0].key == "pixels" and rows[0].paper_top1 == 58.82
    cfgs = _configs(6, tmp_path, ["hog+pixels", "scatnet,local_std"])  # any order, comma lists
    assert list(cfgs) == ["scatnet", "local_std", "pixels+hog"]
    items = cfgs["pixels+hog"].representations.items
    assert [s.name for s in items] == ["pixels", "hog"]
    assert items[1].kwargs == {"orientations": 24, "cell": 8}  # the base config's kwargs are kept
    assert cfgs["scatnet"].representations.items[0].kwargs == {"J": 2, "L": 8}
    with pytest.raises(ValueError, match="unknown row"):
        ablation.select_rows(rows, ["pixels+sift"])


def test_table7_augmentations(tmp_path: Path) -> None:
    cfgs = _configs(7, tmp_path)
    switches = ("crop", "flip", "color", "grayscale", "blur")
    got = [tuple(getattr(c.data.augmentation, s) for s in switches) for c in cfgs.values()]
    assert got == [
        (True, False, False, False, False),
        (True, True, False, False, False),
        (True, True, True, False, False),
        (True, True, True, True, False),
        (True,) * 5,
    ]


def test_table8_projectors(tmp_path: Path) -> None:
    cfgs = _configs(8, tmp_path)
    assert len(cfgs) == 19
    assert cfgs["8192-8192-8192"].model.projector == "8192-8192-8192"
    assert cfgs["256"].model.projector == "256"
    assert cfgs["none"].model.projector == ""


def _fake_result(path: Path, top1: float) -> None:
    path.mkdir(parents=True, exist_ok=True)
    (path / "result.json").write_text(
        json.dumps({"linear_top1": top1, "linear_top5": 90.0, "knn_top1": top1 - 1, "wall_s": 12.0})
    )


def test_resume_skips_finished_rows_and_collects(tmp_path: Path, monkeypatch, capsys) -> None:
    def boom(*args, **kwargs):
        raise AssertionError("a finished row was trained again")

    monkeypatch.setattr("mvmr.training.trainer.pretrain", boom)
    out = tmp_path / "abl"
    _fake_result(out / "table5" / "L1", 41.5)
    _fake_result(out / "table5" / "L1+L2+L3", 55.25)
    assert (
        main(
            [
                "ablate",
                "--table",
                "5",
                "--config",
                "cifar10",
                "--out",
                str(out),
                "--rows",
                "L1",
                "L1+L2+L3",
                "trainer.max_epochs=3",
            ]
        )
        == 0
    )  # overrides right after --rows are overrides, not rows
    text = capsys.readouterr().out
    assert "[skip] L1" in text and "[skip] L1+L2+L3" in text
    md = (out / "table5" / "table5.md").read_text()
    lines = md.splitlines()
    assert lines[0] == (
        "| L1 | L2 | L3 | ours top-1 | ours top-5 | ours k-NN top-1 | wall (s) | paper top-1 | paper top-5 | note |"
    )
    assert "| **1 loss** |" in md and "| **3 losses** |" in md
    assert "| ✓ |  |  | 41.50 | 90.00 | 40.50 | 12 | 50.86 | 93.95 |  |" in lines
    assert "| ✓ | ✓ | ✓ | 55.25 | 90.00 | 54.25 | 12 | 69.38 | 98.85 |  |" in lines
    assert (out / "table5" / "table5.png").is_file()


def test_reuse_needs_an_identical_config(tmp_path: Path) -> None:
    row = ablation.select_rows(ablation.table_rows(5), ["L1"])[0]
    cfg = ablation.row_config("cifar10", row, [], tmp_path / "a")
    probe = ablation.ProbeSettings(train_size=100)
    from dataclasses import asdict

    from mvmr.config import to_dict

    done = tmp_path / "other" / "l1@0"
    done.mkdir(parents=True)
    (done / "result.json").write_text(
        json.dumps({"linear_top1": 1.0, "config": {**to_dict(cfg), "output_dir": "x"}, "probe": asdict(probe)})
    )
    assert ablation.find_reusable(cfg, probe, [tmp_path / "other"])[0] == done
    peer = tmp_path / "peer" / "vicreg@0"  # same config, another loss: never reused for MV-MR
    peer.mkdir(parents=True)
    (peer / "result.json").write_text(
        json.dumps({"linear_top1": 1.0, "config": to_dict(cfg), "probe": asdict(probe), "method": "vicreg"})
    )
    assert ablation.find_reusable(cfg, probe, [tmp_path / "peer"]) is None
    assert ablation.find_reusable(cfg, ablation.ProbeSettings(train_size=200), [tmp_path / "other"]) is None
    other = ablation.row_config("cifar10", row, ["trainer.seed=1"], tmp_path / "a")
    assert ablation.find_reusable(other, probe, [tmp_path / "other"]) is None


def test_reuse_fills_defaults_of_older_configs_but_not_unknown_keys(tmp_path: Path) -> None:
    from dataclasses import asdict

    from mvmr.config import to_dict

    row = ablation.select_rows(ablation.table_rows(5), ["L1"])[0]
    cfg = ablation.row_config("cifar10", row, [], tmp_path / "a")
    probe = ablation.ProbeSettings(train_size=100)
    older = to_dict(cfg)
    older.pop("teacher")  # written before the teacher section existed: its defaults apply
    done = tmp_path / "old" / "l1@0"
    done.mkdir(parents=True)
    (done / "result.json").write_text(json.dumps({"config": older, "probe": asdict(probe)}))
    assert ablation.find_reusable(cfg, probe, [tmp_path / "old"])[0] == done
    older["trainer"]["not_a_key"] = 1
    (done / "result.json").write_text(json.dumps({"config": older, "probe": asdict(probe)}))
    assert ablation.find_reusable(cfg, probe, [tmp_path / "old"]) is None


def test_launcher_print(tmp_path: Path, capsys, monkeypatch) -> None:
    """--launcher print runs nothing and prints one SLURM array job: a task per row, each running
    the row's own resumable command, with a preemption warning and requeue."""
    monkeypatch.setattr("mvmr.training.trainer.pretrain", lambda *a, **k: pytest.fail("--launcher print ran a row"))
    assert (
        main(
            [
                "ablate",
                "--table",
                "8",
                "--config",
                "cifar10",
                "--launcher",
                "print",
                "--out",
                str(tmp_path),
                "--probe-train-size",
                "500",
                "trainer.max_epochs=3",
            ]
        )
        == 0
    )
    script = capsys.readouterr().out
    assert script.startswith("#!/bin/bash\n") and "#SBATCH --array=0-18\n" in script
    assert (
        "#SBATCH --signal=USR1@90\n" in script
        and "#SBATCH --requeue\n" in script
        and "#SBATCH --gres=gpu:1\n" in script
    )
    rows = next(line for line in script.splitlines() if line.startswith("ROWS=("))
    assert len(rows[len("ROWS=(") : -1].split()) == 19 and rows.startswith("ROWS=(8192-8192-8192 ")
    srun = [line for line in script.splitlines() if line.startswith("srun ")]
    assert srun == [
        f'srun mvmr ablate --table 8 --config cifar10 --rows "${{ROWS[$SLURM_ARRAY_TASK_ID]}}" --out {tmp_path} '
        "--probe-train-size 500 trainer.max_epochs=3 trainer.num_nodes=1 trainer.devices=1 "
        "trainer.accelerator=gpu trainer.strategy=ddp"
    ]
    assert not any(tmp_path.iterdir())


def test_the_printed_sbatch_script_runs_its_row(tmp_path: Path, cifar10_root: Path, capsys) -> None:
    """The script itself works: run by bash as SLURM would run array task 1 (srun stands in for
    SLURM's launcher, a CPU task), it trains and evaluates the second row of the table."""
    import os
    import subprocess
    import sys

    tiny = [
        "data.kind=imagefolder",
        f"data.root={cifar10_root}",
        "data.split=test",
        "data.image_size=16",
        "data.subset=32",
        "data.batch_size=8",
        "data.num_workers=0",
        "model.encoder=resnet18",
        "model.projector=32-32",
        "trainer.max_epochs=1",
        "trainer.precision=32-true",
        "trainer.progress_bar=false",
        "representations.items=[{name: pixels}, {name: local_std}]",
        "probe.enabled=false",
    ]
    out = tmp_path / "out"
    assert (
        main(
            [
                "ablate",
                "--table",
                "5",
                "--config",
                "cifar10",
                "--launcher",
                "print",
                "--out",
                str(out),
                "--slurm-gpus-per-node",
                "0",
                "--probe-kind",
                "imagefolder",
                "--probe-root",
                str(cifar10_root),
                "--probe-train-size",
                "40",
                "--probe-test-size",
                "20",
                "--probe-epochs",
                "2",
                *tiny,
            ]
        )
        == 0
    )
    script = tmp_path / "table5.sbatch"
    script.write_text(capsys.readouterr().out)
    stub = tmp_path / "bin"
    stub.mkdir()
    (stub / "srun").write_text('#!/bin/sh\nexec "$@"\n')
    (stub / "srun").chmod(0o755)
    env = {
        **os.environ,
        "SLURM_ARRAY_TASK_ID": "1",
        "OMP_NUM_THREADS": "1",
        "PYTHONPATH": str(Path(__file__).parents[1]),
        "PATH": os.pathsep.join([str(stub), str(Path(sys.executable).parent), os.environ["PATH"]]),
    }
    proc = subprocess.run(["bash", str(script)], env=env, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    second = ablation.table_rows(5)[1].key
    done = [p.parent.name for p in (out / "table5").glob("*/result.json")]
    assert done == [second], done


def test_shared_cache_dir_by_representation_set(tmp_path: Path) -> None:
    rows = ablation.select_rows(ablation.table_rows(6, load_config("cifar10")), ["pixels", "hog"])
    dirs = [
        ablation.row_config("cifar10", r, [f"representations.cache_dir={tmp_path}"], tmp_path).representations.cache_dir
        for r in rows
    ]
    assert all(Path(d).parent == tmp_path for d in dirs) and dirs[0] != dirs[1]


def test_the_seed_picks_a_cache_folder_only_when_it_draws_a_projection(tmp_path: Path) -> None:
    """Unprojected features do not depend on the seed: every seed shares one cache (one build,
    not one per seed). A projection is drawn from the seed, so projected caches differ by seed."""
    row = ablation.select_rows(ablation.table_rows(6, load_config("cifar10")), ["pixels"])[0]

    def folder(*extra: str) -> str:
        overrides = [f"representations.cache_dir={tmp_path}", *extra]
        return ablation.row_config("cifar10", row, overrides, tmp_path).representations.cache_dir

    assert folder("trainer.seed=0") == folder("trainer.seed=1")
    projected = "representations.project_dim=64"
    assert folder(projected, "trainer.seed=0") != folder(projected, "trainer.seed=1")
    assert folder(projected, "trainer.seed=0") != folder("trainer.seed=0")


def test_a_resumed_row_reports_the_pretraining_time_of_every_session(tmp_path: Path, monkeypatch) -> None:
    """An interrupted row (a preemption signal raises SystemExit) keeps its first session's time; the
    resumed session adds to it, so ``pretrain_s`` is the whole pretraining, not the last part."""
    from types import SimpleNamespace

    from mvmr.errors import Preempted
    from mvmr.workflows.ablation import runner

    now = [1000.0]
    monkeypatch.setattr(runner, "time", SimpleNamespace(perf_counter=lambda: now[0]))
    sessions = iter([(100.0, True), (50.0, False)])  # (seconds it runs, interrupted?)

    def pretrain(config, *, resume, trainer_overrides):
        assert resume == "auto"
        seconds, interrupted = next(sessions)
        now[0] += seconds
        if interrupted:
            raise Preempted("stopped", signum=15, checkpoint="last.ckpt", step=3)

    def evaluate(*args, **kwargs):
        now[0] += 7.0
        return SimpleNamespace(results=[], summary=lambda: {"linear_top1": 50.0, "knn_top1": 45.0})

    monkeypatch.setattr("mvmr.training.trainer.pretrain", pretrain)
    monkeypatch.setattr(runner, "probe_datasets", lambda probe, config: ([], []))
    monkeypatch.setattr(runner, "last_checkpoint", lambda run_dir: run_dir / "last.ckpt")
    monkeypatch.setattr(runner, "resolve_encoder", lambda checkpoint: checkpoint)
    monkeypatch.setattr(runner, "evaluate_frozen", evaluate)
    row = ablation.select_rows(ablation.table_rows(5), ["L1"])[0]
    cfg = ablation.row_config("cifar10", row, [], tmp_path)
    run_dir = Path(cfg.output_dir)
    with pytest.raises(SystemExit):
        ablation.run_row(cfg, ablation.ProbeSettings(), key="L1", log=lambda line: None)
    assert ablation.load_row_result(run_dir) is None  # not finished: the next call resumes it
    res = ablation.run_row(cfg, ablation.ProbeSettings(), key="L1", log=lambda line: None)
    assert (res["pretrain_s"], res["pretrain_sessions"], res["eval_s"], res["wall_s"]) == (150.0, 2, 7.0, 157.0)
    saved = ablation.load_row_result(run_dir)
    assert saved["pretrain_s"] == 150.0
    # where and with what code it ran: this machine and this checkout, as the library's provenance finds them
    from mvmr.utils.provenance import git_commit, machine

    assert (saved["machine"], saved["commit"]) == (machine(), git_commit())
    assert saved["commit"] != "unknown" and {"torch", "recorded", "mvmr"} <= set(saved)


def test_a_running_row_keeps_writing_its_pretraining_time_so_a_hard_kill_loses_little(
    tmp_path: Path, monkeypatch
) -> None:
    """A SIGKILL runs no ``finally``: the time so far must already be on disk while pretraining runs."""
    import json
    import threading

    from mvmr.workflows.ablation import runner

    monkeypatch.setattr(runner, "TIME_FLUSH_S", 0.01)
    (tmp_path / runner.PRETRAIN_TIME_FILE).write_text(json.dumps({"seconds": 100.0, "sessions": 1}))  # killed before
    seen: list[dict] = []
    mid_session = threading.Event()

    def pretrain(config, *, resume, trainer_overrides):
        path = tmp_path / runner.PRETRAIN_TIME_FILE
        for _ in range(500):  # up to 5 s for the first flush
            record = json.loads(path.read_text())
            if record["sessions"] == 2:
                seen.append(record)
                mid_session.set()
                return
            threading.Event().wait(0.01)

    monkeypatch.setattr("mvmr.training.trainer.pretrain", pretrain)
    seconds, sessions = runner._timed_pretrain(None, tmp_path, {})
    assert mid_session.is_set() and seen[0]["seconds"] > 100.0  # written during the session, added to the first
    assert sessions == 2 and seconds >= seen[0]["seconds"]
    assert json.loads((tmp_path / runner.PRETRAIN_TIME_FILE).read_text()) == {"seconds": seconds, "sessions": 2}
