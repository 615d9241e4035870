"""``benchmarks/ablation_records.py``: the ablation tables' rows as records, and the tables they give."""

from __future__ import annotations

import json
import sys
from dataclasses import asdict
from pathlib import Path

import pytest

from mvmr.cli import main as mvmr_main
from mvmr.config import to_dict
from mvmr.workflows import ablation

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "benchmarks"))
import ablation_records as ar  # noqa: E402
import report  # noqa: E402

#: docs/results.md's Table 5 as `mvmr ablate --collect` printed it: row -> (top-1, top-5, k-NN, wall s)
T5 = {
    "L1": (31.10, 79.40, 28.25, 164.0),
    "L2": (34.75, 83.55, 33.30, 427.0),
    "L3": (35.50, 83.80, 33.20, 11.0),
    "L1+L2": (36.75, 85.20, 33.85, 297.0),
    "L1+L3": (35.40, 85.30, 36.25, 33.0),
    "L2+L3": (34.05, 84.30, 33.10, 40.0),
    "L1+L2+L3": (36.65, 85.45, 35.10, 242.0),
}
T5_MD = """\
| L1 | L2 | L3 | ours top-1 | ours top-5 | ours k-NN top-1 | wall (s) | paper top-1 | paper top-5 | note |
|---|---|---|---:|---:|---:|---:|---:|---:|---|
| **1 loss** |  |  |  |  |  |  |  |  |  |
| ✓ |  |  | 31.10 | 79.40 | 28.25 | 164 | 50.86 | 93.95 |  |
|  | ✓ |  | 34.75 | 83.55 | 33.30 | 427 | 46.71 | 92.18 |  |
|  |  | ✓ | 35.50 | 83.80 | 33.20 | 11 | 44.10 | 92.08 |  |
| **2 losses** |  |  |  |  |  |  |  |  |  |
| ✓ | ✓ |  | 36.75 | 85.20 | 33.85 | 297 | 50.76 | 93.83 |  |
| ✓ |  | ✓ | 35.40 | 85.30 | 36.25 | 33 | 47.39 | 92.54 |  |
|  | ✓ | ✓ | 34.05 | 84.30 | 33.10 | 40 | 40.06 | 89.31 |  |
| **3 losses** |  |  |  |  |  |  |  |  |  |
| ✓ | ✓ | ✓ | 36.65 | 85.45 | 35.10 | 242 | 69.38 | 98.85 |  |
"""
PROBE = ablation.ProbeSettings(kind="imagefolder", root="/data/cifar10", train_size=5000, test_size=2000)


def _finish(out: Path, table: int, key: str, top1: float, top5: float, knn: float, wall: float) -> None:
    """A finished row, written as :func:`mvmr.workflows.ablation.run_row` writes it."""
    row = ablation.select_rows(ablation.table_rows(table), [key])[0]
    config = ablation.row_config("cifar10", row, ["trainer.max_epochs=2"], out / f"table{table}")
    metrics = {
        "linear_top1": top1,
        "linear_top5": top5,
        "val_top1": float("nan"),
        "knn_top1": knn,
        "chosen_epoch": 7,
        "num_train": 4500,
        "num_val": 500,
        "num_test": 2000,
        "feature_dim": 512,
    }
    ablation.save_row_result(
        config.output_dir,
        {
            "key": key,
            **metrics,
            "pretrain_s": wall - 5,
            "pretrain_sessions": 1,
            "eval_s": 5.0,
            "wall_s": wall,
            "peak_rss_mib": 900.0,
            "seed": 0,
            "epochs": 2,
            "pretrain_method": "mvmr",
            "probe": asdict(PROBE),
            "config": to_dict(config),
        },
    )


@pytest.fixture(scope="module")
def out(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Table 5 complete, two rows of Table 8, an unfinished row and a folder that is no row."""
    out = tmp_path_factory.mktemp("ablation")
    for key, values in T5.items():
        _finish(out, 5, key, *values)
    _finish(out, 8, "1024-1024-1024", 36.65, 85.45, 35.10, 242.0)
    _finish(out, 8, "none", 36.20, 80.0, 35.65, 33.0)
    (out / "table8" / "256").mkdir()  # started, not finished: no result.json
    stray = out / "table8" / "old-row"
    stray.mkdir()
    (stray / "result.json").write_text(json.dumps({"linear_top1": 1.0}))
    return out


def test_collect_finds_every_finished_row_in_table_order(out: Path, capsys: pytest.CaptureFixture[str]) -> None:
    records = ar.collect(out, [5, 6, 8])
    assert "old-row: not a row of Table 8" in capsys.readouterr().err
    assert [(r["table"], r["row"]) for r in records] == [(5, k) for k in T5] + [(8, "1024-1024-1024"), (8, "none")]
    first = records[0]
    assert (first["linear_top1"], first["linear_top5"], first["knn_top1"], first["wall_s"]) == T5["L1"]
    assert first["val_top1"] is None  # NaN: strict JSON
    assert "key" not in first and first["num_test"] == 2000 and first["probe"]["test_size"] == 2000
    assert first["config"]["loss"]["alpha"] == 0 and first["config"]["trainer"]["max_epochs"] == 2
    assert first["config"]["output_dir"] == str(out / "table5" / "L1")
    assert {"machine", "commit", "torch", "recorded", "finished"} <= set(first)
    assert first["dataset"] == "CIFAR-10, 2,048 images"


def test_a_record_names_where_its_row_ran_and_falls_back_to_the_collects_provenance(tmp_path: Path) -> None:
    ran = {"machine": "Some CPU, 64 cores", "commit": "abc1234", "torch": "2.0", "recorded": "2026-01-01"}
    ablation.save_row_result(tmp_path / "table7" / "crop", {"key": "crop", "linear_top1": 40.0, "mvmr": "0.1", **ran})
    ablation.save_row_result(tmp_path / "table7" / "crop+flip", {"key": "crop+flip", "linear_top1": 41.0})
    own, older = ar.collect(tmp_path, [7])
    assert {k: own[k] for k in ran} == ran and "mvmr" not in own  # the commit names the version
    assert {k: older[k] for k in ran} == {k: v for k, v in ar.provenance().items() if k in ran}


def test_a_result_without_its_config_carries_the_rows_overrides(tmp_path: Path) -> None:
    ablation.save_row_result(tmp_path / "table7" / "crop", {"key": "crop", "linear_top1": 40.0, "wall_s": 9.0})
    (record,) = ar.collect(tmp_path, [7])
    assert record["row"] == "crop" and "config" not in record
    assert record["overrides"] == [
        "data.augmentation.crop=true",
        "data.augmentation.flip=false",
        "data.augmentation.color=false",
        "data.augmentation.grayscale=false",
        "data.augmentation.blur=false",
    ]


def test_render_gives_the_collect_commands_table(out: Path, capsys: pytest.CaptureFixture[str]) -> None:
    records = ar.collect(out, [5, 8])
    assert ar.render(records, 5) == T5_MD
    for table in (5, 8):  # the very table `mvmr ablate --collect` writes from the run folders
        assert mvmr_main(["ablate", "--table", str(table), "--config", "cifar10", "--out", str(out), "--collect"]) == 0
        assert ar.render(records, table) == (out / f"table{table}" / f"table{table}.md").read_text(encoding="utf-8")
    t8 = ar.render(records, 8).splitlines()
    assert t8[0] == "| Projector size | ours top-1 | ours k-NN top-1 | wall (s) | paper top-1 | note |"
    assert t8[2:] == [
        "| 1024-1024-1024 | 36.65 | 35.10 | 242 | 51.86 | printed as 1024-1024-1021 |",
        "| without projector | 36.20 | 35.65 | 33 | 16.70 |  |",
    ]


def test_missing_rows_are_marked_as_the_collect_command_marks_them(out: Path) -> None:
    records = ar.collect(out, [5, 8])
    t7 = ar.render(records, 7).splitlines()  # no row ran: every row, "not run"
    assert len(t7) == 2 + 5 and t7[2] == "| ✓ |  |  |  |  | — | — | — | — | 43.02 | 90.31 | not run |"
    t8 = ar.render(records, 8, rows=["1024-1024-1024", "256", "none"]).splitlines()
    assert t8[2:] == [
        "| 1024-1024-1024 | 36.65 | 35.10 | 242 | 51.86 | printed as 1024-1024-1021 |",
        "| 256 | — | — | — | 47.17 | not run |",
        "| without projector | 36.20 | 35.65 | 33 | 16.70 |  |",
    ]
    without_l2 = [r for r in records if r["row"] != "L2"]
    t5 = ar.render(without_l2, 5)  # a row without a record is not shown, as by `mvmr ablate --collect`...
    assert "| 34.75 |" not in t5 and "46.71" not in t5 and "| **1 loss** |" in t5
    named = ar.render(without_l2, 5, rows=["L2"]).splitlines()  # ...unless named
    assert named[4] == "|  | ✓ |  | — | — | — | — | 46.71 | 92.18 | not run |" and len(named) == len(T5_MD.splitlines())


def test_records_round_trip_through_json(out: Path, tmp_path: Path) -> None:
    path = tmp_path / "docs" / "ablation-tables.json"
    assert ar.main(["--out", str(out), "--tables", "5,6,7,8", "--records", str(path)]) == 0
    loaded = json.loads(path.read_text(encoding="utf-8"))
    assert loaded == json.loads(json.dumps(ar.collect(out, [5, 6, 7, 8]), allow_nan=False))
    assert [(r["table"], r["row"]) for r in loaded] == [(5, k) for k in T5] + [(8, "1024-1024-1024"), (8, "none")]
    for table in (5, 6, 7, 8):
        assert ar.render(loaded, table) == ar.render(ar.collect(out, [5, 6, 7, 8]), table)
    assert ar.render(loaded, 5) == T5_MD
    empty = tmp_path / "empty.json"
    assert ar.main(["--out", str(tmp_path / "nothing"), "--records", str(empty)]) == 1 and not empty.exists()


def test_update_keeps_the_files_other_rows_and_replaces_only_the_rows_found(out: Path, tmp_path: Path) -> None:
    path = tmp_path / "ablation-tables.json"
    assert ar.main(["--out", str(out), "--tables", "5,8", "--records", str(path)]) == 0
    before = json.loads(path.read_text(encoding="utf-8"))
    # a later, partial run: one row of Table 5 again (another score) and a row of Table 6 not run before;
    # the same row key in another table ("1024-1024-1024" of Table 8) must not be taken for it
    later = tmp_path / "later"
    _finish(later, 5, "L1+L3", 40.0, 86.0, 37.0, 50.0)
    _finish(later, 6, "pixels+hog", 38.0, 85.0, 36.0, 60.0)
    assert ar.main(["--out", str(later), "--tables", "5,6", "--records", str(path), "--update"]) == 0
    after = json.loads(path.read_text(encoding="utf-8"))
    keys = [(r["table"], r["row"]) for r in after]
    assert keys == [(r["table"], r["row"]) for r in before] + [(6, "pixels+hog")]
    by_key = {(r["table"], r["row"]): r for r in after}
    assert by_key[(5, "L1+L3")]["linear_top1"] == 40.0 and by_key[(6, "pixels+hog")]["linear_top1"] == 38.0
    kept = [r for r in after if (r["table"], r["row"]) not in {(5, "L1+L3"), (6, "pixels+hog")}]
    assert kept == [r for r in before if (r["table"], r["row"]) != (5, "L1+L3")]
    assert "| ✓ |  | ✓ | 40.00 | 86.00 | 37.00 | 50 |" in ar.render(after, 5)
    # without --update the file holds only what the partial run found
    assert ar.main(["--out", str(later), "--tables", "5,6", "--records", str(path)]) == 0
    assert len(json.loads(path.read_text(encoding="utf-8"))) == 2


def test_a_changed_metric_changes_the_table(out: Path) -> None:
    records = ar.collect(out, [5])
    before = ar.render(records, 5)
    next(r for r in records if r["row"] == "L1+L3")["linear_top1"] = 12.34
    after = ar.render(records, 5)
    assert after != before
    assert "| ✓ |  | ✓ | 12.34 | 85.30 | 36.25 | 33 | 47.39 | 92.54 |  |" in after.splitlines()
    assert [a for a, b in zip(after.splitlines(), before.splitlines(), strict=True) if a != b] == [
        "| ✓ |  | ✓ | 12.34 | 85.30 | 36.25 | 33 | 47.39 | 92.54 |  |"
    ]


def test_report_regenerates_a_docs_block_from_the_records(out: Path, tmp_path: Path) -> None:
    records = ar.collect(out, [5])
    entry = report.Report(
        "table5",
        "docs/results.md",
        "ablation-tables.json",
        lambda r: ar.render(r, 5),
        plot=lambda r, path: ar.plot(r, 5, path),
        image="table5.png",
    )
    doc = (
        "## Table 5: loss terms\n\n<!-- report:table5 (generated; do not edit) -->\n| stale |\n"
        "<!-- /report:table5 -->\n\n![table 5](results/table5.png)\n"
    )
    new = report.regenerate(doc, entry, records)
    assert T5_MD.strip("\n") in new and "| stale |" not in new
    assert report.regenerate(new, entry, records) == new


def test_plot_draws_the_collect_commands_chart_titled_with_the_setting(
    out: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    records = ar.collect(out, [5, 8])
    assert ar.setting(records, 5) == "CIFAR-10, 2,048 images, 2 epochs"
    import matplotlib.figure

    titles: list[str] = []
    save = matplotlib.figure.Figure.savefig

    def spy(fig, *args, **kwargs):
        titles.extend(ax.get_title() for ax in fig.axes)
        legend = fig.axes[0].get_legend()
        fig.canvas.draw()
        box, axes = legend.get_window_extent(), fig.axes[0].get_window_extent()
        assert box.x0 >= axes.x1  # the legend stands beside the axes, over no bar
        return save(fig, *args, **kwargs)

    monkeypatch.setattr(matplotlib.figure.Figure, "savefig", spy)
    path = ar.plot(records, 5, tmp_path / "table5.png")
    assert path == tmp_path / "table5.png" and path.stat().st_size > 1000
    assert "CIFAR-10, 2,048 images, 2 epochs" in titles[0]
    assert "bars: linear top-1" in titles[0] and "error bars: one binomial SE on 2,000 test images" in titles[0]
    assert ar.plot(records, 7, tmp_path / "table7.png") is None and not (tmp_path / "table7.png").exists()
