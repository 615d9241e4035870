"""``benchmarks/distill_objectives.py``: the runs it plans, and the table, gap closed, step times and
records it collects from finished ``result.json`` files (no training here)."""

from __future__ import annotations

import importlib.util
import json
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]


def _driver():  # noqa: ANN202
    spec = importlib.util.spec_from_file_location("distill_objectives", REPO / "benchmarks" / "distill_objectives.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules["distill_objectives"] = module
    spec.loader.exec_module(module)
    return module


def _finish(
    d,
    out: Path,
    tag: str,
    row: str,
    seed: int,
    budget: int,
    top1: float,
    step_s: float = 1.0,  # noqa: ANN001
    steps: int | None = None,
) -> None:
    path = d.row_dir(out, tag, budget, row, seed) / "result.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    steps = steps if steps is not None else 0 if row in ("untrained", "teacher") else d.DEMO_STEPS * budget
    path.write_text(
        json.dumps(
            {
                "key": f"{row}@{seed}@{budget}",
                "row": row,
                "label": d.row_label(row),
                "tag": tag,
                "budget": budget,
                "steps": steps,
                "seed": seed,
                "linear_top1": top1,
                "knn_top1": top1 - 2,
                "val_top1": top1 + 1,
                "pretrain_s": 60.0 * budget,
                "wall_s": 90.0 * budget,
                "step_s": step_s if steps else None,
            }
        )
    )


def test_plans_every_row_once_and_the_teacher_once(tmp_path: Path) -> None:
    d = _driver()
    args = d.parse_args(
        ["--out", str(tmp_path), "--rows", "paper,stored4,teacher", "--budget", "1,4", "--seeds", "0,1"]
    )
    assert d.planned(args) == [
        "paper@0@1",
        "stored4@0@1",
        "teacher@0@1",
        "paper@1@1",
        "stored4@1@1",
        "paper@0@4",
        "stored4@0@4",
        "paper@1@4",
        "stored4@1@4",
    ]
    assert d.row_overrides("stored4", args) == [
        "teacher.view=augmented",
        "teacher.cached_views=4",
        "teacher.objective=dcor+cosine",
    ]
    with pytest.raises(SystemExit, match="unknown row 'best'"):
        d.planned(d.parse_args(["--rows", "best"]))


def test_table_pools_seeds_and_measures_the_gap_against_the_base_references(tmp_path: Path) -> None:
    d = _driver()
    for row, seed, top1 in (
        ("untrained", 0, 40.0),
        ("untrained", 1, 42.0),
        ("teacher", 0, 91.0),
        ("paper", 0, 46.0),
        ("paper", 1, 48.0),
        ("dcos_aug", 0, 66.0),
    ):
        _finish(d, tmp_path, "base", row, seed, 1, top1, step_s=1.25)
    _finish(d, tmp_path, "allimg", "dcos_aug", 0, 4, 71.0)  # a recipe without its own reference rows
    _finish(d, tmp_path, "b64", "dcos_aug", 0, 1, 60.0, steps=114)  # batch 64: half the steps of the 1x budget
    results = d.load_results(tmp_path)
    assert d.references(results, "allimg") == (41.0, 91.0)  # the base recipe's
    base = d.table(results, "base")
    assert "| 228 (1x) | paper: dCor, clean view | 47.00 ± 1.41 (2 seeds) | 45.00 ± 1.41 (2 seeds) | 12% ± 3 |" in base
    assert "| 228 (1x) | dCor + cosine, augmented view | 66.00 | 64.00 | 50% | 67.00 | 1.25 |" in base
    assert "| — | teacher (EfficientNet-Lite0) | 91.00 | 89.00 | — |" in base
    assert "| 912 (4x) | dCor + cosine, augmented view | 71.00 | 69.00 | 60% |" in d.table(results, "allimg")
    assert "| 114 (the 1x budget) | dCor + cosine, augmented view | 60.00 |" in d.table(results, "b64")
    records = tmp_path / "records.json"
    assert d.collect(d.parse_args(["--out", str(tmp_path), "--collect", "--records", str(records)])) == 0
    saved = json.loads(records.read_text())
    assert len(saved) == 8 and {r["tag"] for r in saved} == {"base", "allimg", "b64"}
    assert (tmp_path / "distill.md").is_file() and (tmp_path / "distill.png").stat().st_size > 10_000


def test_step_time_comes_from_the_logged_throughput(tmp_path: Path) -> None:
    d = _driver()
    run = tmp_path / "run"
    (run / "csv" / "version_0").mkdir(parents=True)
    (run / "config.yaml").write_text("data:\n  batch_size: 32\n")
    rows = ["step,train/images_per_s", "1,", "2,32.0", "3,16.0", "4,32.0"]  # 1 s, 2 s and 1 s per step
    (run / "csv" / "version_0" / "metrics.csv").write_text("\n".join(rows) + "\n")
    assert d.step_seconds(run) == 1.0
    assert d.step_seconds(tmp_path / "nothing") is None
