"""``benchmarks/peer_sweep.py``: every method gets the same sweep, and the choice reads validation only."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "benchmarks"))
import peer_sweep  # noqa: E402


def test_every_method_gets_three_learning_rates_set_after_its_own(tmp_path: Path) -> None:
    args = peer_sweep.parse_args(["--epochs", "5", "--out", str(tmp_path)])
    cmds = peer_sweep.commands(args)
    assert len(cmds) == 12
    for method, grid in peer_sweep.GRIDS.items():
        mine = [c for c in cmds if f"{method}@0" in c]
        assert len(grid) >= 3 and [c[c.index("--set") + 1] for c in mine] == [f"optim.lr={lr:g}" for lr in grid]
        assert all(c[c.index("--epochs") + 1] == "5" for c in mine)
    assert len({c[c.index("--out") + 1] for c in cmds}) == 12  # a folder per run: parallel lanes share none
    with pytest.raises(SystemExit):
        peer_sweep.parse_args(["--methods", "simclr"])


def _finish(args, method: str, lr: float, val: float, test: float) -> None:
    folder = peer_sweep.run_folder(args, method, lr) / f"{method}@0"
    folder.mkdir(parents=True)
    (folder / "result.json").write_text(
        json.dumps({"val_top1": val, "linear_top1": test, "knn_top1": test - 2, "pretrain_s": 100.0, "seed": 0})
    )


def test_the_chosen_lr_is_the_best_on_validation_never_on_the_test_set(tmp_path: Path) -> None:
    args = peer_sweep.parse_args(["--methods", "vicreg_tuned,mvmr_paper", "--out", str(tmp_path)])
    _finish(args, "vicreg_tuned", 0.15, val=50.0, test=60.0)  # best on test, not on validation
    _finish(args, "vicreg_tuned", 0.3, val=52.0, test=41.0)
    _finish(args, "vicreg_tuned", 0.6, val=52.0, test=40.0)  # a tie on validation goes to the smaller lr
    _finish(args, "mvmr_paper", 0.001, val=55.0, test=45.0)
    found = peer_sweep.results(args)
    best = peer_sweep.chosen(found)
    assert best["vicreg_tuned"]["lr"] == 0.3
    assert "mvmr_paper" not in best  # one lr of three has run: no choice yet
    md = peer_sweep.table(found)
    assert "| vicreg_tuned | **0.3** | 52.00 | 41.00 |" in md and "| vicreg_tuned | 0.15 | 50.00 | 60.00 |" in md
    assert "| mvmr_paper | 0.001 |" in md and "Not chosen yet (part of the grid still to run): mvmr_paper." in md
    # the chosen settings: solo-learn's LARS lr is given per 256 images and scaled to the batch of 64
    settings = peer_sweep.chosen_table(found)
    assert (
        "| vicreg_tuned | lars | 0.3 per 256 | 0.075 | 1e-4 | 0.5 | 2048-2048-2048 | vicreg, defaults | 52.00 | 41.00 |"
        in settings
    )
    assert "mvmr_paper" not in settings
    for lr, val in ((0.0003, 54.0), (0.003, 40.0)):
        _finish(args, "mvmr_paper", lr, val=val, test=44.0)
    settings = peer_sweep.chosen_table(peer_sweep.results(args))
    assert "| mvmr_paper | adam | 0.001 | 0.001 | 0 | 0 | 1024-1024-1024 | mvmr, defaults | 55.00 | 45.00 |" in settings
    records = tmp_path / "sweep.json"
    assert (
        peer_sweep.main(
            ["--methods", "vicreg_tuned,mvmr_paper", "--out", str(tmp_path), "--collect", "--records", str(records)]
        )
        == 0
    )
    assert [(r["method"], r["lr"]) for r in json.loads(records.read_text())] == [
        ("vicreg_tuned", 0.15),
        ("vicreg_tuned", 0.3),
        ("vicreg_tuned", 0.6),
        ("mvmr_paper", 0.0003),
        ("mvmr_paper", 0.001),
        ("mvmr_paper", 0.003),
    ]


def test_a_grid_won_at_its_edge_grows_beyond_it_and_the_choice_waits_for_the_new_run(tmp_path: Path) -> None:
    args = peer_sweep.parse_args(["--methods", "barlow_twins_tuned", "--out", str(tmp_path)])
    for lr, val in ((0.15, 20.0), (0.3, 22.0), (0.6, 25.0)):  # the best on validation is the top edge
        _finish(args, "barlow_twins_tuned", lr, val=val, test=val)
    found = peer_sweep.results(args)
    assert peer_sweep.grid("barlow_twins_tuned", found) == [0.15, 0.3, 0.6, 1.2]
    assert peer_sweep.chosen(found) == {}  # 1.2 has not run: no choice yet
    todo = [c for c in peer_sweep.commands(args) if not peer_sweep._finished(c)]
    assert [c[c.index("--set") + 1] for c in todo] == ["optim.lr=1.2"]
    _finish(args, "barlow_twins_tuned", 1.2, val=24.0, test=30.0)  # worse on validation (better on test)
    found = peer_sweep.results(args)
    assert peer_sweep.grid("barlow_twins_tuned", found) == [0.15, 0.3, 0.6, 1.2]
    assert peer_sweep.chosen(found)["barlow_twins_tuned"]["lr"] == 0.6
    # a grid grows at most twice per side, at its own ratio (MV-MR's is about 3.3)
    mv = [
        {"method": "mvmr_paper", "lr": lr, "val_top1": 50 - i}
        for i, lr in enumerate(peer_sweep._candidates("mvmr_paper"))
    ]
    assert peer_sweep.grid("mvmr_paper", mv) == [2.7e-05, 9e-05, 0.0003, 0.001, 0.003]


def test_records_name_paths_inside_the_checkout_relative_to_it(tmp_path: Path) -> None:
    from _provenance import REPO as ROOT
    from _provenance import repo_relative

    record = {
        "probe": {"root": f"{ROOT}/.test-data/cifar10"},
        "overrides": [f"data.root={ROOT}/.test-data/x", "seed=0"],
        "out": str(ROOT),
        "elsewhere": "/data/cifar10",
        "lr": 0.3,
    }
    assert repo_relative(record) == {
        "probe": {"root": ".test-data/cifar10"},
        "overrides": ["data.root=.test-data/x", "seed=0"],
        "out": ".",
        "elsewhere": "/data/cifar10",
        "lr": 0.3,
    }
    args = peer_sweep.parse_args(["--methods", "mvmr_paper", "--out", str(tmp_path)])
    _finish(args, "mvmr_paper", 0.001, val=55.0, test=45.0)
    result = peer_sweep.run_folder(args, "mvmr_paper", 0.001) / "mvmr_paper@0" / "result.json"
    result.write_text(json.dumps({**json.loads(result.read_text()), "probe": {"root": f"{ROOT}/.test-data/cifar10"}}))
    records = tmp_path / "sweep.json"
    assert (
        peer_sweep.main(["--methods", "mvmr_paper", "--out", str(tmp_path), "--collect", "--records", str(records)])
        == 0
    )
    assert str(ROOT) not in records.read_text() and '".test-data/cifar10"' in records.read_text()
