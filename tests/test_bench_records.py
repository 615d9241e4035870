"""The timing benchmarks behind docs/benchmarks.md: ``--records FILE`` writes every measured row with its raw
timings, command line, threads and provenance (no absolute path of the checkout), and each script's
``table(records)`` gives exactly the table the script printed: one renderer for the script and the docs.

Each script runs in-process at its smallest size (no timing is asserted); one synthetic test per renderer
pins exact rows, and the table's headers as docs/benchmarks.md shows them (the doc's own rows are checked
against the committed records by tests/test_report.py)."""

from __future__ import annotations

import json
import sys
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType
from typing import Any

import numpy as np
import pytest
import torch

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "benchmarks"))
import cache_check_bench  # noqa: E402
import dcor_bench  # noqa: E402
import distill_bench  # noqa: E402
import plan_cache_estimate  # noqa: E402
import probe_lrs_bench  # noqa: E402
import representations_bench  # noqa: E402
import step_bench  # noqa: E402

DOC = (REPO / "docs" / "benchmarks.md").read_text(encoding="utf-8")
PROVENANCE = ("machine", "commit", "torch", "recorded")


@pytest.fixture(autouse=True)
def _restore_threads() -> Iterator[None]:
    """The scripts set torch's thread count for their process: give the test process its own back."""
    threads = torch.get_num_threads()
    yield
    torch.set_num_threads(threads)


def _image_folder(root: Path, size: int = 32) -> Path:
    """``root/<class>/<i>.png``: two classes of two random RGB images."""
    from PIL import Image

    rng = np.random.default_rng(0)
    for cls in ("a", "b"):
        (root / cls).mkdir(parents=True)
        for i in range(2):
            Image.fromarray(rng.integers(0, 256, (size, size, 3), dtype=np.uint8)).save(root / cls / f"{i}.png")
    return root


def _run(
    module: ModuleType, argv: list[str], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> tuple[list[dict[str, Any]], str]:
    """Run ``module.main`` with ``--records``; its records (checked for what every record carries) and stdout."""
    path = tmp_path / "out" / "records.json"
    assert module.main(["--records", str(path), *argv]) == 0
    out = capsys.readouterr().out
    text = path.read_text(encoding="utf-8")
    records = json.loads(text)
    assert isinstance(records, list) and records and all(isinstance(r, dict) for r in records)
    assert str(REPO) not in text  # the script's own path was absolute: repo_relative rewrote it
    command = [f"benchmarks/{module.__name__}.py", "--records", str(path), *argv]
    command = [arg.replace(f"{REPO}/", "") for arg in command]  # paths inside the checkout, relative to it
    for r in records:
        assert all(isinstance(r[k], str) and r[k] for k in PROVENANCE), r
        # the threads the run used: the --threads given, else torch's own count (the environment's)
        threads = int(argv[argv.index("--threads") + 1]) if "--threads" in argv else torch.get_num_threads()
        assert r["threads"] == threads
        assert r["command"] == command
    return records, out


def _seconds(values: Any, n: int | None = None) -> None:
    """``values`` is a list of raw timings (``n`` of them where given), each a positive number of seconds."""
    assert isinstance(values, list) and values and all(isinstance(v, float) and v > 0 for v in values), values
    if n is not None:
        assert len(values) == n, values


def _is_rule(line: str) -> bool:
    return line.startswith("|-") and set(line) <= set("|-:")


def _in_doc(md: str, *lines: str) -> None:
    """Each of ``lines`` (by default: the header and rule line of every table in ``md``) is a line of
    docs/benchmarks.md."""
    doc_lines = set(DOC.splitlines())
    md_lines = md.splitlines()
    headers = [
        line
        for i, line in enumerate(md_lines)
        if _is_rule(line) or md_lines[i + 1 : i + 2] and _is_rule(md_lines[i + 1])
    ]
    wanted = lines or tuple(headers)
    assert wanted
    for line in wanted:
        assert line in doc_lines, line


# -- the scripts, run at their smallest size -----------------------------------------------------------------------


def test_dcor_bench_records(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    pytest.importorskip("dcor")
    # B=4: dcor's (B, B, D) float64 array is 9.5e-7 GB at D=8 (run) and 1.9e-6 GB at D=16 (skipped)
    argv = [
        "--batches",
        "4",
        "--dims",
        "8",
        "16",
        "--repeats",
        "2",
        "--min-seconds",
        "0",
        "--loss-batch",
        "4",
        "--dcor-max-gb",
        "1.5e-6",
        "--threads",
        "1",
    ]
    records, out = _run(dcor_bench, argv, tmp_path, capsys)
    grid = [r for r in records if r["table"] == "dcor"]
    assert [(r["batch"], r["dim"]) for r in grid] == [(4, 8), (4, 16)]
    for r in grid:
        for key in ("mvmr_fwd_bwd_s", "mvmr_fwd_s", "naive_fwd_bwd_s"):
            _seconds(r[key], 2)  # --repeats 2, and no minimum total: exactly 2 timed calls each
    _seconds(grid[0]["dcor_fwd_s"], 1)
    assert grid[1]["dcor_fwd_s"] is None
    loss = [r for r in records if r["table"] == "mvmr_loss"]
    assert [r["variant"] for r in loss] == list(dcor_bench.LOSS_VARIANTS)
    for r in loss:
        _seconds(r["seconds"], 2)
        assert r["batch"] == 4 and r["representations"]["scatnet"] == 139_968
    md = dcor_bench.table(records)
    assert md in out
    assert "| 4 | 16 |" in md and "| skipped (needs 0 GB) | - |" in md
    _in_doc(md)


def test_representations_bench_records(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    pytest.importorskip("skimage")
    folder = _image_folder(tmp_path / "images")
    argv = ["--batch", "2", "--sizes", "32", "--repeats", "2", "--threads", "1", "--data", str(folder)]
    records, out = _run(representations_bench, argv, tmp_path, capsys)
    assert [r["label"] for r in records] == [
        *representations_bench.REPRESENTATIONS,
        "hog (skimage, image by image)",
        "hog (mvmr, batched)",
    ]
    for r in records:
        assert (r["size"], r["images"], r["images_from"]) == (32, 2, str(folder))
        _seconds(r["seconds"], 2)
    assert {r["label"]: r.get("dim") for r in records}["hog"] == 384
    md = representations_bench.table(records)
    assert md in out
    assert "| 32 | hog | " in md and " | D=384 |" in md and md.rstrip().endswith("x skimage |")
    _in_doc(md)


def test_step_bench_records(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    root = tmp_path / "data"
    _image_folder(root / "val")
    argv = [
        "--steps",
        "2",
        "--batch",
        "2",
        "--size",
        "32",
        "--projector",
        "32-32",
        "--no-small-images",
        "--threads",
        "1",
        "--data",
        str(root),
    ]
    records, out = _run(step_bench, argv, tmp_path, capsys)
    steps = [r for r in records if r["kind"] == "step"]
    assert [r["variant"] for r in steps] == ["L1 only", "MV-MR fresh (5 reps)", "MV-MR cache"]
    for r in steps:
        _seconds(r["seconds"], 2)  # every timed step, not their median
        assert (r["batch"], r["size"], r["projector"], r["small_images"]) == (2, 32, "32-32", False)
    reps = {r["name"]: r["seconds"] for r in records if r["kind"] == "representation"}
    assert sorted(reps) == sorted(step_bench.REPS)
    for seconds in reps.values():
        _seconds(seconds, 3)
    (read,) = [r for r in records if r["kind"] == "cache_read"]
    _seconds(read["seconds"], 3)
    assert read["representations"] == ["hog", "local_std", "pixels", "scatnet"]
    (build,) = [r for r in records if r["kind"] == "cache_build"]
    _seconds(build["seconds"], 1)
    md = step_bench.table(records)
    assert md in out
    assert "| L1 only | " in md and md.splitlines()[2].endswith(" | 1.00 |")
    _in_doc(md)


def test_distill_bench_records(tmp_path: Path, capsys: pytest.CaptureFixture[str], imagenette_root: Path) -> None:
    argv = [
        "--images",
        "4",
        "--batch",
        "2",
        "--steps",
        "1",
        "--rounds",
        "1",
        "--projector",
        "32-32",
        "--threads",
        "1",
        "--extract-to",
        str(imagenette_root.parent),
    ]
    records, out = _run(distill_bench, argv, tmp_path, capsys)
    teacher = [r for r in records if r["kind"] == "teacher"]
    assert [r["input_size"] for r in teacher] == [96, 224]
    for r in teacher:
        _seconds(r["embed_seconds"], 3)
        assert 0 <= r["top1_half"] <= 100 and 0 <= r["top1_imagenet"] <= 100 and r["images"] == 4
    steps = [r for r in records if r["kind"] == "step"]
    assert [(r["mode"], r["teacher_size"]) for r in steps] == [
        ("cached", 224),
        ("live", 224),
        ("live", 96),
        ("stored", 96),
        ("live_augmented", 96),
    ]
    for r in steps:
        assert len(r["rounds"]) == 1
        _seconds(r["rounds"][0], 1)
        assert (r["batch"], r["steps"], r["images"]) == (2, 1, 4)
    assert steps[0]["cache_build_seconds"][0] > 0  # the cached teacher's cache was built in the run
    md = distill_bench.table(records)
    assert md in out and distill_bench.teacher_table(records) in out
    assert "| cached | " in md and "| every step, 224 px | " in md and "| every step, 96 px | " in md
    _in_doc(md)


def test_cache_check_bench_records(tmp_path: Path, capsys: pytest.CaptureFixture[str], imagenette_root: Path) -> None:
    argv = [
        "--rows",
        "64",
        "--dims",
        "8,8",
        "--batch",
        "4",
        "--steps",
        "2",
        "--size",
        "32",
        "--projector",
        "32-32",
        "--threads",
        "1",
    ]
    records, out = _run(cache_check_bench, argv, tmp_path, capsys)
    reads = [r for r in records if r["kind"] == "read"]
    assert [r["epoch"] for r in reads] == [1, 2]
    for r in reads:
        _seconds(r["plain_s"], 16)  # 64 rows in batches of 4: every batch's read of each copy
        _seconds(r["checked_s"], 16)
        assert (r["rows"], r["dims"], r["steps_per_epoch"]) == (64, [8, 8], 16)
    steps = [r for r in records if r["kind"] == "step"]
    assert [r["copy"] for r in steps] == ["plain", "checked"]
    for r in steps:
        _seconds(r["seconds"], 2)
    md = cache_check_bench.table(records)
    assert md in out
    assert "| epoch 1 (every chunk checked once) | " in md and "| epoch 2 (steady state) | " in md
    _in_doc(md)


def test_plan_cache_estimate_records(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from mvmr.data.fashion_mnist import FASHION_MNIST_ROOT

    if not FASHION_MNIST_ROOT.is_dir():
        pytest.skip("the demo config reads Debian's dataset-fashion-mnist, which is not installed")
    # the overrides first: --timing-images takes every number after it
    argv = [
        "data.subset=16",
        "data.batch_size=4",
        "data.num_workers=0",
        "data.val_fraction=0.25",
        "--timing-images",
        "1",
    ]
    records, out = _run(plan_cache_estimate, argv, tmp_path, capsys)
    assert [(r["kind"], r.get("timing_images"), r.get("again")) for r in records] == [
        ("measured", None, None),
        ("estimate", 1, False),
        ("estimate", 1, True),
    ]
    assert records[0]["cached"] == ["pixels", "scatnet", "hog", "local_std"] and records[0]["images"] == 16
    _seconds(records[0]["source_seconds"], 1)  # one cached source: the feature cache
    for r in records[1:]:
        assert r["seconds"] > 0 and r["plan_default"] == 32
        _seconds(list(r["seconds_per_image"].values()), 4)
    md = plan_cache_estimate.table(records)
    assert md in out
    assert "| plan, --timing-images 1 | " in md and "| plan, --timing-images 1 (again, after the build) | " in md
    _in_doc(md, *md.splitlines()[:2])


def test_probe_lrs_bench_records(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    argv = ["--n", "90", "--dim", "8", "--epochs", "2", "--repeats", "2", "--lrs", "0.01", "0.1", "--threads", "1"]
    records, out = _run(probe_lrs_bench, argv, tmp_path, capsys)
    (r,) = records
    assert (r["n"], r["dim"], r["holdout"], r["lrs"], r["epochs"]) == (90, 8, 10, [0.01, 0.1], 2)
    _seconds(r["separate_s"], 2)
    _seconds(r["lockstep_s"], 2)
    assert r["same"] is True and r["chosen_lr"] in (0.01, 0.1)
    md = probe_lrs_bench.table(records)
    assert md in out
    assert md.splitlines()[2].startswith("| 90 x 8 | 0.01, 0.1 | 2 | 1 | ") and md.rstrip().endswith("x | True |")
    _in_doc(md)


# -- each renderer on a few synthetic records ---------------------------------------------------------------------


def test_dcor_table_renders_a_row_from_the_best_call() -> None:
    grid = {
        "table": "dcor",
        "batch": 64,
        "dim": 512,
        "mvmr_fwd_bwd_s": [0.0007, 0.0005],
        "mvmr_fwd_s": [0.0002],
        "naive_fwd_bwd_s": [0.0009, 0.00067],
        "dcor_fwd_s": [0.0078],
        "dcor_needs_gb": 0.016,
    }
    skipped = {**grid, "dim": 140_000, "dcor_fwd_s": None, "dcor_needs_gb": 4.27}
    loss = [
        {
            "table": "mvmr_loss",
            "variant": key,
            "batch": 256,
            "embed_dim": 8192,
            "seconds": [s, 2 * s],
            "representations": {
                "pixels": 27648,
                "scatnet": 139968,
                "hog": 3456,
                "local_std": 27648,
                "augmented_pixels": 27648,
            },
        }
        for key, s in zip(dcor_bench.LOSS_VARIANTS, (0.129, 0.169, 0.526), strict=True)
    ]
    md = dcor_bench.table([grid, skipped, *loss])
    assert "\n| 64 | 512 | 0.5 | 0.7 | 1.34x | 7.8 | 39x | 0.2 |\n" in md
    assert "\n| 64 | 140000 | 0.5 | 0.7 | 1.34x | skipped (needs 4 GB) | - | 0.2 |\n" in md
    # the loss table's rows, and its headers and caption as docs/benchmarks.md shows them (caption on one line)
    assert "| each dCor term separately (mvmr dCor) | 169 | 1.31x |" in md.splitlines()
    assert "| each dCor term separately (naive cdist dCor) | 526 | 4.08x |" in md.splitlines()
    _in_doc(md)
    assert (
        "\nMVMRLoss, B=256, z in R^8192, 5 representations (pixels 27648, scatnet 139968, hog 3456, local_std "
        "27648, augmented_pixels 27648); forward + backward, ms:\n\n| variant |"
    ) in md
    assert len(dcor_bench.table([grid]).splitlines()) == 3  # no loss records: the grid alone


def test_representations_table_renders_rates_and_the_speed_up() -> None:
    records = [
        {"size": 96, "images": 256, "kind": "representation", "label": "hog", "dim": 3456, "seconds": [0.05, 0.04]},
        {"size": 96, "images": 256, "kind": "skimage", "label": "hog (skimage, image by image)", "seconds": [0.8]},
        {"size": 96, "images": 256, "kind": "hog_batched", "label": "hog (mvmr, batched)", "seconds": [0.04, 0.032]},
        {"size": 96, "images": 256, "kind": "extra", "label": "cache read", "images_per_s": 12345.6, "note": "x"},
    ]
    md = representations_bench.table(records)
    assert md.splitlines()[2:] == [
        "| 96 | hog | 6,400 | D=3456 |",
        "| 96 | hog (skimage, image by image) | 320 | reference |",
        "| 96 | hog (mvmr, batched) | 8,000 | 25.0x skimage |",
        "| 96 | cache read | 12,346 | x |",
    ]


def test_step_table_renders_medians_against_l1() -> None:
    records = [
        {"kind": "step", "variant": "L1 only", "seconds": [10.2, 10.06, 9.9]},
        {"kind": "representation", "name": "scatnet", "seconds": [0.44, 0.44, 0.44]},
        {"kind": "step", "variant": "MV-MR fresh (5 reps)", "seconds": [11.07, 11.5, 11.0]},
        {"kind": "step", "variant": "MV-MR cache", "seconds": [9.59, 9.6, 9.5]},
    ]
    md = step_bench.table(records)
    assert md.splitlines()[2:] == [
        "| L1 only | 10.06 | 1.00 |",
        "| MV-MR fresh (5 reps) | 11.07 | 1.10 |",
        "| MV-MR cache | 9.59 | 0.95 |",
    ]
    _in_doc(md)  # its headers, as docs/benchmarks.md shows them


def test_distill_tables_render_the_best_round_and_the_teacher() -> None:
    def step(mode: str, size: int, rounds: list[list[float]]) -> dict[str, Any]:
        return {
            "kind": "step",
            "mode": mode,
            "teacher_size": size,
            "views": 4 if mode == "stored" else 0,
            "rounds": rounds,
            "batch": 32,
        }

    records = [
        {
            "kind": "teacher",
            "input_size": 96,
            "batch": 32,
            "embed_seconds": [0.5, 0.4, 0.45],
            "top1_half": 71.25,
            "top1_imagenet": 62.5,
        },
        step("cached", 224, [[1.5, 1.44], [1.37, 1.37, 1.2]]),
        step("live", 224, [[3.2]]),
        step("live", 96, [[1.54, 1.6, 1.5]]),
        step("stored", 96, [[1.37]]),
    ]
    md = distill_bench.table(records)
    assert md.splitlines()[2:] == [
        "| cached | 1.37 | 1.00x |",
        "| every step, 224 px | 3.20 | 2.34x |",
        "| every step, 96 px | 1.54 | 1.12x |",
        "| 4 stored augmented views, 96 px | 1.37 | 1.00x |",
    ]
    _in_doc(md)  # its headers, as docs/benchmarks.md shows them
    assert distill_bench.teacher_table(records).splitlines() == [
        "| teacher input | embed images/s (B=32, best of 3) | top-1 % (x-0.5)/0.5 | top-1 % ImageNet mean/std |",
        "|---|---:|---:|---:|",
        "| 96 px | 80.0 | 71.2 | 62.5 |",
    ]


def test_cache_check_table_renders_mean_reads_against_the_plain_step() -> None:
    records: list[dict[str, Any]] = [
        {"kind": "read", "epoch": 1, "plain_s": [0.004, 0.005], "checked_s": [0.005, 0.006]},
        {"kind": "step", "copy": "checked", "seconds": [1.0]},
        {"kind": "read", "epoch": 2, "plain_s": [0.003, 0.003, 0.003], "checked_s": [0.003, 0.003, 0.0033]},
        {"kind": "step", "copy": "plain", "seconds": [12.0, 10.0, 9.0]},
    ]
    assert cache_check_bench.table(records).splitlines()[2:] == [
        "| epoch 1 (every chunk checked once) | 4.50 | 5.50 | 1.00 | 0.010% |",
        "| epoch 2 (steady state) | 3.00 | 3.10 | 0.10 | 0.001% |",
    ]


def test_plan_table_renders_each_estimate_against_the_build() -> None:
    def estimate(n: int, seconds: float, again: bool = False) -> dict[str, Any]:
        return {"kind": "estimate", "timing_images": n, "again": again, "plan_default": 32, "seconds": seconds}

    records = [
        estimate(4, 66.5),
        {"kind": "measured", "source_seconds": [10.0, 6.3]},
        estimate(32, 14.0),
        estimate(4, 80.6, again=True),
    ]
    md = plan_cache_estimate.table(records)
    assert md.splitlines()[2:] == [
        "| measured (the real build) | 16.3 | 1.00 |",
        "| plan, --timing-images 4 | 66.5 | 4.08 |",
        "| plan, --timing-images 32 (the new default) | 14.0 | 0.86 |",
        "| plan, --timing-images 4 (again, after the build) | 80.6 | 4.94 |",
    ]
    _in_doc(md)  # its headers, as docs/benchmarks.md shows them


def test_probe_table_renders_the_best_repeat_of_each_side() -> None:
    record = {
        "n": 9000,
        "dim": 512,
        "lrs": [1e-4, 1e-3, 1e-2],
        "epochs": 20,
        "threads": 2,
        "separate_s": [3.71, 3.6],
        "lockstep_s": [2.81, 2.95],
        "same": True,
    }
    md = probe_lrs_bench.table([record, {**record, "same": False, "threads": 1}])
    assert md.splitlines()[3] == "| 9000 x 512 | 0.0001, 0.001, 0.01 | 20 | 1 | 3.60 | 2.81 | 1.28x | False |"
    _in_doc(md)  # its headers, as docs/benchmarks.md shows them


def test_write_records_makes_the_folder_relativises_paths_and_refuses_nan_when_strict(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from _provenance import REPO as ROOT
    from _provenance import command, write_records

    path = write_records(tmp_path / "new" / "r.json", [{"out": f"{ROOT}/runs/x", "label": "MV-MR — ±", "t": 1.5}])
    assert json.loads(path.read_text(encoding="utf-8")) == [{"out": "runs/x", "label": "MV-MR — ±", "t": 1.5}]
    assert "MV-MR — ±" in path.read_text(encoding="utf-8")  # labels keep their characters
    assert capsys.readouterr().out == f"records: {path} (1 row)\n"
    write_records(path, [{"t": float("nan")}])  # not strict: written as JavaScript's NaN, as json.loads reads it
    assert np.isnan(json.loads(path.read_text())[0]["t"])
    with pytest.raises(ValueError):
        write_records(path, [{"t": float("inf")}], strict=True)
    assert command(["--steps", "2"], str(REPO / "benchmarks" / "step_bench.py")) == [
        str(REPO / "benchmarks" / "step_bench.py"),
        "--steps",
        "2",
    ]
    assert command(None, "ignored") == sys.argv
