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
    assert todo == [("reference", "ref", None), ("e1", "a@0", 1), ("e1", "b@0", 1), ("e1", "c@0", 1),
                    ("e2", "a@0", 2), ("e2", "b@0", 2), ("e2", "c@0", 2)]  # shortest budgets first
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
    args = bc.parse_args(["--out", str(out), "--budgets", "1,2", "--rows", "a,b", "--references", "ref",
                          "--earlier", str(earlier)])
    md = bc.collect(args)
    assert "| row | 1 ep | 2 ep | 5 ep |" in md  # the earlier budget joins the columns, in order
    assert "| a | 41.00 ± 1.41 (2 seeds) | not run | 45.50 ± 0.71 (2 seeds) † |" in md
    assert "| b | 30.00 | not run | 39.00 † |" in md
    assert "| ref | 35.00 | 34.00 |" in md and "an older table" in md
    assert (out / "budget_curve.png").stat().st_size > 10_000


def test_earlier_points_fill_missing_seeds_and_are_not_scheduled_again(tmp_path: Path) -> None:
    bc = _driver()
    out = tmp_path / "budget"
    _finish(out, "e10", "a@1", 48.0)  # seed 1 ran here; seed 0 of both rows ran in a folder that is gone
    earlier = tmp_path / "earlier.json"
    earlier.write_text(json.dumps({"source": "a lost folder", "10": {"a": [47.0, 99.0], "b": [46.0, None]},
                                   "reference": {"ref": {"linear_top1": 35.0, "knn_top1": 30.0}}}))
    args = bc.parse_args(["--out", str(out), "--budgets", "10", "--rows", "a,b", "--references", "ref,other",
                          "--earlier", str(earlier)])
    # a@0, b@0 and ref are earlier points; a and b are 1 point apart, so b@1 is the only run left
    assert [(p.name, k) for p, k, _ in bc.runs_to_do(args)] == [("reference", "other"), ("e10", "b@1")]
    md = bc.collect(args)
    assert "| a | 47.50 ± 0.71 (2 seeds) † |" in md  # the run's 48.0 wins over the earlier 99.0 of seed 1
    assert "| b | 46.00 † |" in md
    assert "| ref | 35.00 † | 30.00 |" in md and "| other | not run | — |" in md and "a lost folder" in md
    _finish(out, "e10", "b@1", 45.0)
    assert "| b | 45.50 ± 0.71 (2 seeds) † |" in bc.collect(args)
