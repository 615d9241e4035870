"""``benchmarks/demo_tuning.py``: a candidate runs through the demo's code on the validation copy, and its
record says where, from which code and from which seed it ran."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np
import pytest

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "benchmarks"))
sys.path.insert(0, str(Path(__file__).resolve().parent))
from _training_support import DETERMINISTIC_REPS  # noqa: E402

FASHION = Path("/usr/share/datasets/fashion-mnist")


@pytest.mark.skipif(not FASHION.is_dir(), reason="dataset-fashion-mnist not installed")
def test_a_candidate_never_reads_the_test_files_and_records_its_provenance(tmp_path: Path) -> None:
    import demo_tuning

    data = demo_tuning.validation_copy(FASHION, tmp_path / "val", val_size=500)
    _, train = demo_tuning.read_idx(data / "train-images-idx3-ubyte.gz")
    _, val = demo_tuning.read_idx(data / "t10k-images-idx3-ubyte.gz")
    _, source = demo_tuning.read_idx(FASHION / "train-images-idx3-ubyte.gz")
    assert len(val) == 500 and len(train) + len(val) == len(source)
    # the held-out images are training images, and together the two splits are exactly the training set
    rows = sorted(image.tobytes() for image in np.concatenate([train, val]))
    assert rows == sorted(image.tobytes() for image in source)
    overrides = [
        "data.subset=48",
        "data.batch_size=16",
        "data.num_workers=0",
        "trainer.max_epochs=1",
        "optim.warmup_epochs=0",
        f"representations.items={DETERMINISTIC_REPS}",
        "model.projector=64-64",
        "trainer.progress_bar=false",
    ]
    r = demo_tuning.run_candidate("tiny", overrides, data, tmp_path / "out", probe_train=200, probe_test=100)
    assert 0.0 <= r["mvmr"] <= 1.0 and len(r["baselines"]) == 2
    assert r["seed"] == 0 and r["peak_rss_mib"] > 100 and r["pretrain_seconds"] > 0
    assert {"machine", "commit", "torch", "recorded"} <= r.keys()
    assert json.loads((tmp_path / "out" / "tiny" / "tuning.json").read_text()) == r  # resumable: a second call reads it
    assert demo_tuning.run_candidate("tiny", [], data, tmp_path / "out", 200, 100) == r


def test_the_table_says_where_each_candidate_ran_and_which_did_not_record_it() -> None:
    import demo_tuning

    base = {
        "name": "a",
        "overrides": ["x=1"],
        "pretrain_seconds": 120.0,
        "mvmr": 0.83,
        "baselines": {"random": 0.81, "pixels": 0.84},
    }
    new = {
        **base,
        "name": "b",
        "machine": "CPU X, 2 cores",
        "threads": 2,
        "commit": "abc1234",
        "recorded": "2026-12-07",
    }
    table = demo_tuning.table([base, new])
    assert "| a | 83.0 | 81.0 | 84.0 | -1.0 | 2.0 | not recorded | x=1 |" in table
    assert "| b | 83.0 | 81.0 | 84.0 | -1.0 | 2.0 | CPU X, 2 cores, 2 threads, abc1234, 2026-12-07 | x=1 |" in table


def test_update_replaces_only_the_candidates_run_again_and_keeps_the_others(tmp_path: Path) -> None:
    import demo_tuning

    def result(name: str, mvmr: float) -> dict:
        return {
            "name": name,
            "overrides": [],
            "pretrain_seconds": 60.0,
            "mvmr": mvmr,
            "baselines": {"random": 0.8, "pixels": 0.83},
        }

    records = tmp_path / "records.json"
    records.write_text(json.dumps([result("a", 0.81), result("b", 0.82)]))
    out = tmp_path / "out"
    (out / "b").mkdir(parents=True)
    where = {"machine": "CPU X, 2 cores", "threads": 2, "commit": "abc1234", "recorded": "2026-12-07"}
    (out / "b" / "tuning.json").write_text(json.dumps({**result("b", 0.85), **where}))
    (out / "fashion-mnist-val").mkdir()
    (out / "fashion-mnist-val" / ".done").write_text("{}")  # the validation copy exists: nothing to read
    assert demo_tuning.main(["--out", str(out), "--collect", "--records", str(records), "--update"]) == 0
    assert [(r["name"], r["mvmr"], r.get("machine")) for r in json.loads(records.read_text())] == [
        ("a", 0.81, None),
        ("b", 0.85, "CPU X, 2 cores"),
    ]
    assert demo_tuning.main(["--out", str(out), "--collect", "--records", str(records)]) == 0  # without: only b
    assert [r["name"] for r in json.loads(records.read_text())] == ["b"]
    with pytest.raises(SystemExit):  # --update without a file to update is refused, not ignored
        demo_tuning.main(["--out", str(out), "--collect", "--update"])
