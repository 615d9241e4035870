"""``benchmarks/gpu_check.py --smoke``: the GPU check's code, at tiny sizes on the CPU."""

from __future__ import annotations

import importlib.util
import json
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def test_gpu_check_smoke_runs_every_variant_and_writes_its_table(tmp_path: Path) -> None:
    spec = importlib.util.spec_from_file_location("gpu_check", REPO / "benchmarks" / "gpu_check.py")
    gpu_check = importlib.util.module_from_spec(spec)
    sys.modules["gpu_check"] = gpu_check  # dataclasses look their module up there
    spec.loader.exec_module(gpu_check)
    assert gpu_check.main(["--smoke", "--out", str(tmp_path)]) == 0
    text = (tmp_path / "gpu_check.md").read_text()
    for row in (
        "L1 only",
        "MV-MR, live representations",
        "MV-MR, feature cache",
        "VICReg (lightly)",
        "dCor, B = 16, D = 2,000",
        "HOG, 32 px",
        "ScatNet (J=2, L=8), 32 px",
        "MV-MR with the cache:",
    ):
        assert row in text, row
    summary = json.loads((tmp_path / "gpu_check.json").read_text())
    for name, t in summary["variants"].items():
        assert t["images_per_s"] > 0 and t["seconds"] > 0 and t["interval"] > 0, name
    assert (tmp_path / "cache" / "manifest.json").is_file()  # the cached variant built its cache
    assert summary["kernels"]["dcor_seconds"] > 0 and summary["kernels"]["scatnet_images_per_s"] > 0
