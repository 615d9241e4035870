"""The docs' generated tables equal what their committed records give (``benchmarks/report.py``)."""

from __future__ import annotations

import json
import shutil
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "benchmarks"))
import report  # noqa: E402


def test_every_generated_table_matches_its_records(capsys: pytest.CaptureFixture[str]) -> None:
    assert report.run(check=True) == 0, capsys.readouterr().out[-6000:]


def _copy(tmp_path: Path) -> Path:
    for r in report.REPORTS:
        (tmp_path / r.doc).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(REPO / r.doc, tmp_path / r.doc)
        (tmp_path / "docs" / "results").mkdir(parents=True, exist_ok=True)
        for name in r.records if isinstance(r.records, tuple) else (r.records,):
            shutil.copy(REPO / "docs" / "results" / name, tmp_path / "docs" / "results" / name)
    return tmp_path


def test_a_number_typed_into_a_table_is_caught(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    repo = _copy(tmp_path)
    doc = repo / "docs" / "distillation.md"
    text = doc.read_text()
    assert "| 65.20 |" in text
    doc.write_text(text.replace("| 65.20 |", "| 66.20 |", 1))
    assert report.run(check=True, repo=repo) == 1
    out = capsys.readouterr().out
    assert "-| 3648 (16x) | dCor + cosine, augmented view | 66.20" in out
    assert "+| 3648 (16x) | dCor + cosine, augmented view | 65.20" in out


def test_a_changed_record_changes_the_table_and_a_rewrite_restores_agreement(tmp_path: Path) -> None:
    repo = _copy(tmp_path)
    path = repo / "docs" / "results" / "ssl-objectives.json"
    records = json.loads(path.read_text())
    first = next(r for r in records if r["key"] == "sc_cos@0")
    first["linear_top1"] = 12.34
    path.write_text(json.dumps(records))
    reports = [r for r in report.REPORTS if r.name == "ssl-objectives"]
    assert report.run(check=True, repo=repo, reports=reports) == 1
    assert report.run(check=False, repo=repo, reports=reports) == 1
    assert (
        "| sc_cos@0 | MV-MR, ScatNet by cosine | 0 | 5 ep | 10000 | 12.34 |"
        in (repo / "docs" / "results.md").read_text()
    )
    assert report.run(check=True, repo=repo, reports=reports) == 0


def test_a_doc_without_its_markers_is_an_error(tmp_path: Path) -> None:
    repo = _copy(tmp_path)
    doc = repo / "docs" / "results.md"
    doc.write_text(doc.read_text().replace("<!-- /report:ssl-objectives -->", ""))
    with pytest.raises(SystemExit, match="no block"):
        report.run(check=True, repo=repo)


def test_a_method_whose_sweep_is_complete_joins_the_budget_table_at_its_chosen_lr(tmp_path: Path) -> None:
    repo = _copy(tmp_path)
    grid = {0.5: (40.0, 38.0), 1.0: (45.0, 37.5), 2.0: (41.0, 44.0)}  # lr -> (val, test): 1.0 wins on validation
    runs = [
        {
            "method": "byol_tuned",
            "lr": lr,
            "epochs": 5,
            "seed": 0,
            "val_top1": val,
            "linear_top1": test,
            "knn_top1": test - 1,
            "pretrain_s": 900.0,
        }
        for lr, (val, test) in grid.items()
    ]
    sweep = [r for r in json.loads((repo / "docs/results/peer-sweep.json").read_text()) if r["method"] != "byol_tuned"]
    (repo / "docs/results/peer-sweep.json").write_text(json.dumps(sweep + runs[:2]))
    tuned = repo / "docs/results/budget-tuned.json"  # and no BYOL run at another budget either
    tuned.write_text(json.dumps([r for r in json.loads(tuned.read_text()) if r["method"] != "byol_tuned"]))
    reports = [r for r in report.REPORTS if r.name in ("peer-sweep", "budget-curve")]
    report.run(check=False, repo=repo, reports=reports)
    text = (repo / "docs" / "results.md").read_text()
    assert "| byol_tuned |" not in text.split("<!-- report:budget-curve")[1]  # 2 of 3 lrs: no choice yet
    (repo / "docs/results/peer-sweep.json").write_text(json.dumps(sweep + runs))
    assert report.run(check=False, repo=repo, reports=reports) == 1
    text = (repo / "docs" / "results.md").read_text()
    assert "| byol_tuned | not run | not run | 37.50 | not run | not run |" in text.split("<!-- report:budget-curve")[1]
    assert "| byol_tuned | **1** | 45.00 | 37.50 |" in text
    assert "| byol_tuned | lars | 1 per 256 | 0.25 | 1e-5 | 0.5 | 4096-256 |" in text


def test_every_budget_cell_comes_from_full_records_with_its_seeds_and_no_mark(tmp_path: Path) -> None:
    repo = _copy(tmp_path)
    results = repo / "docs" / "results"
    full = {"knn_top1": 33.0, "machine": "m", "commit": "c", "config": {}, "pretrain_s": 1.0}
    runs = [
        {
            **full,
            "method": "mvmr_paper",
            "key": f"mvmr_paper@{seed}",
            "seed": seed,
            "epochs": epochs,
            "linear_top1": top1,
        }
        for seed, epochs, top1 in [(0, 1, 40.0), (1, 1, 41.0), (0, 20, 50.0), (1, 20, 51.0)]
    ] + [{**full, "method": "vicreg", "key": "vicreg@0", "seed": 0, "epochs": 1, "linear_top1": 35.0}]
    (results / "budget-curve.json").write_text(json.dumps(runs))
    reports = [r for r in report.REPORTS if r.name == "budget-curve"]
    report.run(check=False, repo=repo, reports=reports)
    block = (repo / "docs" / "results.md").read_text().split("<!-- report:budget-curve")[1].split("<!-- /report")[0]
    # one column per budget any record has, each cell the mean ± sd of its own seeds, and no cell marked
    assert "| row | 1 ep | 5 ep | 10 ep | 20 ep |" in block
    row = next(line for line in block.splitlines() if line.startswith("| mvmr_paper |"))
    assert row.startswith("| mvmr_paper | 40.50 ± 0.71 (2 seeds) |") and row.endswith("| 50.50 ± 0.71 (2 seeds) |")
    assert "| vicreg | 35.00 | not run | not run | not run |" in block
    assert "†" not in block
    assert "| 1 ep | vicreg | 40.50 | 35.00 | +5.50 |" in block and "| 20 ep | vicreg |" not in block
    # the reference rows are the 10,000-image table's records
    assert "| rep_scatnet | 62.82 | 42.01 |" in block


def test_a_table_typed_into_a_results_doc_outside_every_block_is_caught(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    text = (
        "# x\n\n<!-- report:a (generated) -->\n| a |\n|---|\n| 1 |\n<!-- /report:a -->\n\n```\n| in |\n|---|\n```\n\n"
        "| typed | by hand |\n|---|---:|\n| x | 1 |\n"
    )
    assert report.loose_tables(text) == [14]
    repo = _copy(tmp_path)
    doc = repo / "docs" / "results.md"
    doc.write_text(doc.read_text() + "\n| row | top-1 |\n|---|---:|\n| mine | 99.0 |\n")
    assert report.run(check=True, repo=repo) == 1
    assert "docs/results.md:" in capsys.readouterr().out
