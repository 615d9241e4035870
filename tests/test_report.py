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
        shutil.copy(REPO / "docs" / "results" / r.records, tmp_path / "docs" / "results" / r.records)
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
    assert "| sc_cos@0 | MV-MR, ScatNet by cosine | 0 | 5 ep | 10000 | 12.34 |" in (repo / "docs" / "results.md").read_text()
    assert report.run(check=True, repo=repo, reports=reports) == 0


def test_a_doc_without_its_markers_is_an_error(tmp_path: Path) -> None:
    repo = _copy(tmp_path)
    doc = repo / "docs" / "results.md"
    doc.write_text(doc.read_text().replace("<!-- /report:ssl-objectives -->", ""))
    with pytest.raises(SystemExit, match="no block"):
        report.run(check=True, repo=repo)
