"""``mvmr.utils.provenance``: the machine, code and date a quoted result carries."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

from mvmr.utils.provenance import PACKAGE_ROOT, git_commit, machine, peak_rss_mib, provenance


def test_machine_names_the_cpu_model_and_the_core_count() -> None:
    import os

    text = machine()
    assert text.endswith(f", {os.cpu_count()} cores")
    cpuinfo = Path("/proc/cpuinfo")
    if cpuinfo.is_file():
        lines = cpuinfo.read_text().splitlines()
        models = [line.split(":", 1)[1].strip() for line in lines if line.startswith("model name")]
        if models:
            assert text.startswith(models[0])


def test_the_commit_is_the_checkouts_head_and_unknown_outside_git(tmp_path: Path) -> None:
    if (PACKAGE_ROOT / ".git").exists():
        head = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"], cwd=PACKAGE_ROOT, capture_output=True, text=True, check=True
        ).stdout.strip()
        assert git_commit() == head
    assert git_commit(tmp_path) == "unknown"  # no checkout there


def test_peak_rss_counts_this_process_and_the_children_it_waited_for() -> None:
    mine = peak_rss_mib()
    assert mine > 10  # a Python process with torch imported
    # a child that holds 300 MiB: the children's peak is at least that once it has been waited for
    subprocess.run(
        [sys.executable, "-c", "b = bytearray(300 * 1024 * 1024); b[::4096] = b'x' * len(b[::4096])"], check=True
    )
    assert peak_rss_mib(children=True) >= 300


def test_provenance_has_every_field_a_quoted_result_carries() -> None:
    import torch

    p = provenance()
    assert set(p) == {"machine", "commit", "mvmr", "torch", "recorded"}
    assert p["torch"] == torch.__version__
    assert re.fullmatch(r"\d{4}-\d{2}-\d{2}", p["recorded"])
    assert p["mvmr"] != "" and p["machine"] == machine()
