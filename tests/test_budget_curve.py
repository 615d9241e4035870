"""``benchmarks/budget_curve.py``: which runs it schedules (second seeds only for close rows), and the
table and plot it collects from finished ``result.json`` files (no training here)."""

from __future__ import annotations

import importlib.util
import json
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def _driver():
    spec = importlib.util.spec_from_file_location("budget_curve", REPO / "benchmarks" / "budget_curve.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules["budget_curve"] = module
    spec.loader.exec_module(module)
    return module


def _finish(out: Path, folder: str, key: str, top1: float) -> None:
    path = out / folder / key / "result.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps({"key": key, "linear_top1": top1, "knn_top1": top1 - 1}))


def test_second_seeds_only_for_rows_closer_than_the_threshold_and_finished_runs_are_skipped(tmp_path: Path) -> None:
    bc = _driver()
    out = tmp_path / "budget"
    args = bc.parse_args(["--out", str(out), "--budgets", "1,2", "--rows", "a,b,c", "--references", "ref"])
    todo = [(p.name, k, e) for p, k, e in bc.runs_to_do(args)]
    assert todo == [
        ("reference", "ref", None),
        ("e1", "a@0", 1),
        ("e1", "b@0", 1),
        ("e1", "c@0", 1),
        ("e2", "a@0", 2),
        ("e2", "b@0", 2),
        ("e2", "c@0", 2),
    ]  # shortest budgets first
    _finish(out, "reference", "ref", 30.0)
    for key, top1 in (("a@0", 40.0), ("b@0", 38.5), ("c@0", 30.0)):  # a-b closer than 3 points, c far
        _finish(out, "e1", key, top1)
    todo = [(p.name, k) for p, k, _ in bc.runs_to_do(args)]
    assert ("e1", "a@1") in todo and ("e1", "b@1") in todo and ("e1", "c@1") not in todo
    assert not any(folder == "e1" and key.endswith("@0") for folder, key in todo)  # finished: skipped
    assert bc.second_seed_rows(out, 2, ["a", "b", "c"], 3.0) == []  # nothing finished at 2 epochs yet


def test_collect_averages_seeds_marks_earlier_points_and_draws_the_plot(tmp_path: Path) -> None:
    bc = _driver()
    out = tmp_path / "budget"
    _finish(out, "e1", "a@0", 40.0)
    _finish(out, "e1", "a@1", 42.0)
    _finish(out, "e1", "b@0", 30.0)
    _finish(out, "reference", "ref", 35.0)
    earlier = tmp_path / "earlier.json"
    earlier.write_text(json.dumps({"source": "an older table", "5": {"a": [45.0, 46.0], "b": [39.0]}}))
    args = bc.parse_args(
        ["--out", str(out), "--budgets", "1,2", "--rows", "a,b", "--references", "ref", "--earlier", str(earlier)]
    )
    md = bc.collect(args)
    assert "| row | 1 ep | 2 ep | 5 ep |" in md  # the earlier budget joins the columns, in order
    assert "| a | 41.00 ± 1.41 (2 seeds) | not run | 45.50 ± 0.71 (2 seeds) † |" in md
    assert "| b | 30.00 | not run | 39.00 † |" in md
    assert "| ref | 35.00 | 34.00 |" in md and "an older table" in md
    assert (out / "budget_curve.png").stat().st_size > 10_000


def test_earlier_points_fill_missing_seeds_and_are_not_scheduled_again(tmp_path: Path, capsys) -> None:
    bc = _driver()
    out = tmp_path / "budget"
    _finish(out, "e10", "a@1", 48.0)  # seed 1 ran here; seed 0 of both rows ran in a folder that is gone
    earlier = tmp_path / "earlier.json"
    earlier.write_text(
        json.dumps(
            {
                "source": "a lost folder",
                "10": {"a": [47.0, 99.0], "b": [46.0, None]},
                "reference": {"ref": {"linear_top1": 35.0, "knn_top1": 30.0}},
            }
        )
    )
    args = bc.parse_args(
        ["--out", str(out), "--budgets", "10", "--rows", "a,b", "--references", "ref,other", "--earlier", str(earlier)]
    )
    # a@0, b@0 and ref are earlier points; a and b are 1 point apart, so b@1 is the only run left
    assert [(p.name, k) for p, k, _ in bc.runs_to_do(args)] == [("reference", "other"), ("e10", "b@1")]
    md = bc.collect(args)
    assert "| a | 47.50 ± 0.71 (2 seeds) † |" in md  # the run's 48.0 wins over the earlier 99.0 of seed 1
    assert "| b | 46.00 † |" in md
    assert "| ref | 35.00 † | 30.00 |" in md and "| other | not run | — |" in md and "a lost folder" in md
    _finish(out, "e10", "b@1", 45.0)
    assert "| b | 45.50 ± 0.71 (2 seeds) † |" in bc.collect(args)
    plan = [
        "--out",
        str(out),
        "--budgets",
        "10",
        "--rows",
        "a,b",
        "--references",
        "ref,other",
        "--earlier",
        str(earlier),
        "--plan",
    ]
    assert bc.main(plan) == 0 and "other" in capsys.readouterr().out  # one reference row still to run
    _finish(out, "reference", "other", 20.0)
    assert bc.main(plan) == 0 and capsys.readouterr().out.startswith("nothing left to run")


def test_record_lists_and_the_chosen_sweep_runs_fill_cells_and_set_the_learning_rate(tmp_path: Path) -> None:
    bc = _driver()
    sys.path.insert(0, str(REPO / "benchmarks"))
    out = tmp_path / "budget"
    old = tmp_path / "old.json"  # the dict of points: it comes first, so it wins over the records after it
    old.write_text(
        json.dumps(
            {"source": "old", "5": {"a": [45.0, None]}, "reference": {"ref": {"linear_top1": 35.0, "knn_top1": 30.0}}}
        )
    )
    later = tmp_path / "later.json"  # accuracy.py records
    later.write_text(
        json.dumps(
            [
                {"method": "a", "epochs": 5, "seed": 0, "linear_top1": 99.0},
                {"method": "a", "epochs": 5, "seed": 1, "linear_top1": 44.0},
            ]
        )
    )
    sweep = tmp_path / "sweep.json"  # peer_sweep.py records: b chose lr 0.3 on validation, not 0.6 (best on test)
    sweep.write_text(
        json.dumps(
            [
                {
                    "method": "b",
                    "lr": 0.3,
                    "epochs": 5,
                    "seed": 0,
                    "val_top1": 50.0,
                    "linear_top1": 40.0,
                    "knn_top1": 38.0,
                },
                {
                    "method": "b",
                    "lr": 0.6,
                    "epochs": 5,
                    "seed": 0,
                    "val_top1": 49.0,
                    "linear_top1": 43.0,
                    "knn_top1": 41.0,
                },
            ]
        )
    )
    args = bc.parse_args(
        [
            "--out",
            str(out),
            "--budgets",
            "5,10",
            "--rows",
            "a,b",
            "--references",
            "ref",
            "--earlier",
            str(old),
            str(later),
            "--chosen",
            str(sweep),
        ]
    )
    md = bc.collect(args)
    assert "| a | 44.50 ± 0.71 (2 seeds) † | not run |" in md  # 45.0 from the dict, 44.0 from the records
    assert "| b | 40.00 † | not run |" in md  # the chosen run is b's point at 5 epochs; 43.0 is not
    assert [(p.name, k) for p, k, _ in bc.runs_to_do(args)] == [("e10", "a@0"), ("e10", "b@0")]
    cmd = bc.row_command(args, out / "e10", "b@0", 10, "cache")
    assert cmd[-2:] == ["--set", "optim.lr=0.3"]
    assert "--set" not in bc.row_command(args, out / "e10", "a@0", 10, "cache")  # a was not swept


def test_records_hold_every_finished_run_of_every_budget_with_its_settings_and_chosen_lr(tmp_path: Path) -> None:
    bc = _driver()
    sys.path.insert(0, str(REPO / "benchmarks"))
    out = tmp_path / "budget"
    _finish(out, "e1", "mvmr_paper@0", 40.0)
    _finish(out, "e1", "mvmr_paper@1", 41.0)
    _finish(out, "e2", "vicreg@0", 35.0)  # vicreg@1 at 2 epochs and both at 1 never finished: left out
    _finish(out, "reference", "random", 37.0)
    sweep = tmp_path / "sweep.json"  # vicreg chose lr 0.3 on validation
    sweep.write_text(
        json.dumps(
            [
                {
                    "method": "vicreg",
                    "lr": lr,
                    "epochs": 5,
                    "seed": 0,
                    "val_top1": v,
                    "linear_top1": 40.0,
                    "knn_top1": 38.0,
                }
                for lr, v in ((0.3, 50.0), (0.6, 49.0))
            ]
        )
    )
    args = bc.parse_args(
        [
            "--out",
            str(out),
            "--budgets",
            "1,2",
            "--rows",
            "mvmr_paper,vicreg",
            "--references",
            "random",
            "--chosen",
            str(sweep),
        ]
    )
    records = bc.run_records(args)
    assert [(r["key"], r["linear_top1"]) for r in records] == [
        ("random", 37.0),
        ("mvmr_paper@0", 40.0),
        ("mvmr_paper@1", 41.0),
        ("vicreg@0", 35.0),
    ]
    by_key = {r["key"]: r for r in records}
    assert by_key["vicreg@0"]["overrides"][-1] == "optim.lr=0.3"  # the chosen lr is part of its settings
    assert not any("optim.lr" in o for o in by_key["mvmr_paper@0"]["overrides"])  # not swept: its own lr
    assert all(r["commit"] and r["machine"] for r in records)  # where and from what each ran
    target = tmp_path / "records.json"
    assert (
        bc.main(
            [
                "--out",
                str(out),
                "--budgets",
                "1,2",
                "--rows",
                "mvmr_paper,vicreg",
                "--references",
                "random",
                "--chosen",
                str(sweep),
                "--collect",
                "--records",
                str(target),
            ]
        )
        == 0
    )
    assert [r["key"] for r in json.loads(target.read_text())] == [r["key"] for r in records]


_FAKE_ROW = """
import json, os, sys, time
folder, key, log, pause = sys.argv[1], sys.argv[2], sys.argv[3], float(sys.argv[4])
start = time.time()
time.sleep(pause)  # long enough for a run started beside it to begin before it ends
top1 = {"a": 40.0, "b": 39.0, "c": 20.0}.get(key.split("@")[0], 30.0)
os.makedirs(os.path.join(folder, key), exist_ok=True)
with open(os.path.join(folder, key, "result.json"), "w") as f:
    json.dump({"key": key, "linear_top1": top1, "knn_top1": top1 - 1}, f)
with open(log, "a") as f:
    f.write(json.dumps([key, start, time.time(), os.environ.get("OMP_NUM_THREADS")]) + "\\n")
print("fake row", key)
"""


def _run_fake(bc, tmp_path: Path, parallel: int, cache_ready: bool, monkeypatch, pause: float = 1.0) -> list[list]:
    script, log = tmp_path / "fake_row.py", tmp_path / "runs.jsonl"
    script.write_text(_FAKE_ROW)
    out = tmp_path / "budget"
    cache = tmp_path / "cache"
    if cache_ready:
        (cache / "reps-x").mkdir(parents=True)
        (cache / "reps-x" / "manifest.json").write_text("{}")
    monkeypatch.setattr(
        bc,
        "row_command",
        lambda args, folder, key, epochs, c: [sys.executable, str(script), str(folder), key, str(log), str(pause)],
    )
    monkeypatch.setattr(bc, "POLL_S", 0.02)
    monkeypatch.delenv("OMP_NUM_THREADS", raising=False)
    monkeypatch.delenv("MKL_NUM_THREADS", raising=False)
    monkeypatch.setattr(bc.os, "cpu_count", lambda: 4)
    bc.main(
        [
            "--out",
            str(out),
            "--budgets",
            "1",
            "--rows",
            "a,b,c",
            "--references",
            "ref",
            "--cache",
            str(cache),
            "--parallel",
            str(parallel),
        ]
    )
    return [json.loads(line) for line in log.read_text().splitlines()]


def _most_at_once(runs: list[list], keys: set[str] | None = None) -> int:
    spans = [(s, e) for k, s, e, _ in runs if keys is None or k in keys]
    return max(sum(1 for s, e in spans if s <= t < e) for t, _ in spans)


def test_parallel_runs_share_the_cores_and_still_schedule_the_second_seeds(tmp_path: Path, monkeypatch) -> None:
    bc = _driver()
    runs = _run_fake(bc, tmp_path, parallel=2, cache_ready=True, monkeypatch=monkeypatch)
    keys = [k for k, *_ in runs]
    assert sorted(keys) == ["a@0", "a@1", "b@0", "b@1", "c@0", "ref"]  # a, b within 3 points: seed 1 of both
    assert _most_at_once(runs) == 2  # never more than --parallel
    assert {omp for *_, omp in runs} == {"2"}  # 4 cores / 2 runs
    assert min(s for k, s, *_ in runs if k.endswith("@1")) >= max(e for k, _, e, _ in runs if k.endswith("@0"))
    assert "fake row a@0" in (tmp_path / "budget" / "e1" / "a@0.log").read_text()  # each run's own log
    assert (tmp_path / "budget" / "budget_curve.md").is_file()


def test_parallel_trained_runs_wait_for_the_first_to_fill_the_feature_cache(tmp_path: Path, monkeypatch) -> None:
    bc = _driver()
    runs = _run_fake(bc, tmp_path, parallel=3, cache_ready=False, monkeypatch=monkeypatch)
    trained = {k for k, *_ in runs if k != "ref"}
    assert _most_at_once(runs, trained) == 1  # no run ever finished a cache build here: one at a time
    assert _most_at_once(runs) == 2  # the reference row (no cache) ran beside the first trained one


def test_one_at_a_time_inherits_the_environment_and_a_failed_run_is_reported(
    tmp_path: Path, monkeypatch, capsys
) -> None:
    bc = _driver()
    runs = _run_fake(bc, tmp_path, parallel=1, cache_ready=False, monkeypatch=monkeypatch, pause=0.05)
    assert _most_at_once(runs) == 1 and {omp for *_, omp in runs} == {None}
    monkeypatch.setattr(bc, "row_command", lambda *a: [sys.executable, "-c", "raise SystemExit(3)"])
    bc.main(["--out", str(tmp_path / "other"), "--budgets", "1", "--rows", "a", "--references", "", "--parallel", "2"])
    assert "a@0 failed (exit 3)" in capsys.readouterr().out


def test_sigterm_stops_the_running_rows_and_starts_no_more(tmp_path: Path, monkeypatch) -> None:
    """``kill <driver>`` (or a scheduler's SIGTERM) reaches the rows it runs: they stop, nothing new starts."""
    import os
    import signal
    import threading

    import pytest

    bc = _driver()
    threading.Timer(1.5, os.kill, (os.getpid(), signal.SIGTERM)).start()  # while the first two rows run
    with pytest.raises(SystemExit) as stopped:
        _run_fake(bc, tmp_path, parallel=2, cache_ready=True, monkeypatch=monkeypatch, pause=30.0)
    assert stopped.value.code == 128 + signal.SIGTERM
    log = tmp_path / "runs.jsonl"
    assert not log.exists()  # no row finished: the two running got the signal instead of their 30 s
    started = sorted(p.name for p in (tmp_path / "budget").rglob("*.log"))
    assert started == ["a@0.log", "ref.log"]  # and no third row was started after it
    assert signal.getsignal(signal.SIGTERM) is signal.SIG_DFL  # the driver's handler is gone again


def test_the_lead_table_calls_a_lead_real_only_beyond_the_seed_sd_and_twice_the_binomial_se() -> None:
    bc = _driver()
    assert abs(bc.binomial_se(50.0, 10_000) - 0.5) < 1e-12  # sqrt(0.5 * 0.5 / 10,000) = 0.5 points
    series = {
        "m": [(5, [45.0, 45.2]), (10, [48.0, 48.0]), (20, [50.0, 52.0])],
        "p": [(5, [39.0]), (10, [47.5]), (20, [49.0])],
        "q": [(5, [])],
    }
    md = bc.lead_table(series, "m", ["p", "q"])
    rows = {line.split(" | ")[0].lstrip("| "): line for line in md.splitlines()[2:]}
    assert "| +6.10 | 0.14 (2/1 seeds) |" in rows["5 ep"] and rows["5 ep"].endswith("| m ahead |")
    assert "| +0.50 |" in rows["10 ep"] and rows["10 ep"].endswith("| within noise |")  # under 2 x SE (~1.4)
    assert "| +2.00 | 1.41 (2/1 seeds) |" in rows["20 ep"] and rows["20 ep"].endswith("| m ahead |")
    md = bc.lead_table({"m": [(5, [43.0, 51.0])], "p": [(5, [42.0])]}, "m", ["p"])
    assert md.splitlines()[-1].endswith("| within noise |")  # 5.0 > 2 x SE, but not above the seed sd of 5.66
    assert len(bc.lead_table(series, "m", ["q"]).splitlines()) == 2  # a row that never ran: header only
