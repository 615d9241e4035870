"""The layers of docs/architecture.md hold, and no import cycle exists: import-linter's ``layers`` and
``acyclic_siblings`` contracts (``.importlinter``)."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]


def _lint(config: Path, cwd: Path = REPO) -> subprocess.CompletedProcess:
    exe = shutil.which("lint-imports") or str(Path(sys.executable).with_name("lint-imports"))
    return subprocess.run([exe, "--no-cache", str(config)], cwd=cwd, capture_output=True, text=True, timeout=300)


def test_imports_point_down_the_layers() -> None:
    proc = _lint(REPO / ".importlinter")
    assert proc.returncode == 0, proc.stdout[-4000:] + proc.stderr[-2000:]
    assert "2 kept, 0 broken" in proc.stdout


def test_the_contract_catches_an_upward_import(tmp_path: Path) -> None:
    """The check can fail: the same contract with two layers swapped reports the real imports between them."""
    text = (REPO / ".importlinter").read_text()
    swapped = text.replace("    mvmr.sources\n", "    mvmr.SOURCES\n").replace("    mvmr.cache\n", "    mvmr.sources\n")
    swapped = swapped.replace("    mvmr.SOURCES\n", "    mvmr.cache\n")
    assert swapped != text
    config = tmp_path / "swapped.ini"
    config.write_text(swapped)
    proc = _lint(config)
    if proc.returncode == 0:
        pytest.fail("the feature sources read the cache: with the cache above them the contract must break")
    assert "BROKEN" in proc.stdout and "mvmr.sources" in proc.stdout


def test_the_acyclic_contract_catches_a_cycle_inside_a_package(tmp_path: Path) -> None:
    """The check can fail: a copy of mvmr in which the weight-file reader imports the model code (a
    function-level import, the cycle this contract was added for) breaks it, naming both modules."""
    shutil.copytree(REPO / "mvmr", tmp_path / "mvmr", ignore=shutil.ignore_patterns("__pycache__"))
    reader = tmp_path / "mvmr" / "models" / "weight_files.py"
    reader.write_text(
        reader.read_text() + "\n\ndef _cycle():\n    from mvmr.models.mvmr_model import MVMRModel  # noqa\n"
    )
    proc = _lint(REPO / ".importlinter", cwd=tmp_path)
    assert proc.returncode != 0, proc.stdout[-2000:]
    assert "no import cycle between sibling modules or packages, at any depth BROKEN" in proc.stdout
    assert "mvmr.models" in proc.stdout and ".weight_files -> .mvmr_model" in proc.stdout, proc.stdout[-3000:]


def test_no_module_is_over_450_lines() -> None:
    """One concept per file: a module that grows past 450 lines (as formatted by ruff) is split."""
    sizes = {p.relative_to(REPO).as_posix(): len(p.read_text().splitlines()) for p in (REPO / "mvmr").rglob("*.py")}
    assert len(sizes) > 100
    assert {name: n for name, n in sizes.items() if n > 450} == {}
