"""``benchmarks/accuracy.py``: the config each row trains with (no training here)."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import pytest
import torch

from mvmr.config import load_config

REPO = Path(__file__).resolve().parents[1]


def _driver(script: str = "accuracy"):
    sys.path.insert(0, str(REPO / "benchmarks"))  # accuracy.py imports its sibling _data.py
    try:
        spec = importlib.util.spec_from_file_location(f"{script}_benchmark", REPO / "benchmarks" / f"{script}.py")
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
    finally:
        sys.path.remove(str(REPO / "benchmarks"))
    return module


@pytest.mark.parametrize(("dataset", "size"), [("cifar10", 32), ("imagenette", 64)])
def test_rows_are_named_after_their_dataset_and_train_at_its_size(tmp_path: Path, dataset: str, size: int) -> None:
    acc = _driver()
    args = acc.parse_args(["--dataset", dataset, "--epochs", "3", "--out", str(tmp_path)])
    config = load_config(
        "cifar10", acc.base_overrides(args, tmp_path / "data", 1, tmp_path / "run") + acc.METHODS["vicreg"][1]
    )
    assert config.name == f"mvmr-{dataset}"  # the loggers' run name: an Imagenette run is not "mvmr-cifar10"
    assert config.data.image_size == size and config.trainer.max_epochs == 3 and config.trainer.seed == 1
    assert config.method == "vicreg" and config.output_dir == str(tmp_path / "run")


def test_the_byol_row_trains_byol_with_its_own_heads(tmp_path: Path) -> None:
    pytest.importorskip("lightly")
    from mvmr.methods import get_method

    acc = _driver()
    args = acc.parse_args(["--projector", "1024-1024-1024", "--out", str(tmp_path)])
    config = load_config(
        "cifar10", acc.base_overrides(args, tmp_path / "data", 0, tmp_path / "run") + acc.METHODS["byol"][1]
    )
    model = get_method(config.method).build_model(config, 3)  # the benchmark's 3-layer projector would be refused
    assert config.method == "byol" and type(model.projector).__name__ == "BYOLProjectionHead"
    assert [m.out_features for m in model.projector.modules() if isinstance(m, torch.nn.Linear)] == [4096, 256]


def test_rows_are_chosen_by_method_or_key_and_an_unknown_row_is_an_error() -> None:
    acc = _driver()
    pick = lambda *argv: [key for key, _, _ in acc.all_rows(acc.parse_args(["--seeds", "0,1", *argv]))]  # noqa: E731
    assert pick("--rows", "vicreg@1,random") == pick("--rows", "vicreg@1", "random") == ["vicreg@1", "random"]
    assert pick("--rows", "vicreg") == ["vicreg@0", "vicreg@1"]
    with pytest.raises(SystemExit, match="unknown row.*vicreg@2"):
        pick("--rows", "vicreg@2")  # seed 2 is not among --seeds: it would silently run nothing


@pytest.mark.parametrize("row", ["vicreg_tuned", "barlow_twins_tuned", "byol_tuned"])
def test_the_tuned_peers_train_with_their_own_settings_and_a_sweep_overrides_the_lr_last(
    tmp_path: Path, row: str
) -> None:
    pytest.importorskip("lightly")
    from mvmr.methods import get_method
    from mvmr.training.optim import build_optimizer, effective_lr, split_decay_params

    acc = _driver()
    args = acc.parse_args(["--batch-size", "64", "--set", "optim.lr=0.15", "--out", str(tmp_path)])
    config = load_config(
        "cifar10",
        acc.base_overrides(args, tmp_path / "data", 0, tmp_path / "run") + acc.METHODS[row][1] + args.overrides,
    )
    method = get_method(config.method)
    model = method.build_model(config, 3)
    assert config.optim.optimizer == "lars" and config.optim.trust_coefficient == 0.02 and config.optim.lars_clip_lr
    assert config.optim.lr == 0.15  # the sweep's value, not the row's own
    assert config.method_kwargs.get("loss_scale", 1.0) == (0.1 if row == "barlow_twins_tuned" else 1.0)
    assert config.optim.lr_scaling == "linear" and config.optim.base_batch_size == 256
    widths = [m.out_features for m in model.projector.modules() if isinstance(m, torch.nn.Linear)]
    assert widths == ([4096, 256] if row == "byol_tuned" else [2048, 2048, 2048])
    built = method.from_config(config, model=model, data=None, feature_dim=512)  # its loss and heads build
    assert isinstance(built, torch.nn.Module)
    assert effective_lr(config.optim, 64) == pytest.approx(0.15 * 64 / 256)
    groups = split_decay_params(model, config.optim.weight_decay)
    assert type(build_optimizer(config.optim, groups, effective_lr(config.optim, 64))).__name__ == "LARS"


def test_collect_writes_one_record_per_finished_row_with_the_lr_it_ran_and_its_provenance(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import json

    acc = _driver()
    monkeypatch.syspath_prepend(str(REPO / "benchmarks"))  # as when run as a script: _provenance is its sibling
    out = tmp_path / "runs"
    row = {
        "linear_top1": 41.0,
        "linear_top5": 88.0,
        "knn_top1": 37.0,
        "val_top1": 43.0,
        "feature_dim": 512,
        "num_train": 9001,
        "num_val": 999,
        "num_test": 10000,
        "pretrain_s": 700.0,
        "eval_s": 30.0,
        "wall_s": 730.0,
        "peak_rss_mib": 1800.0,
        "seed": 0,
        "epochs": 10,
        "budget": "10 ep",
        "pretrain_images": 10000,
        "threads": 1,
        "method": "vicreg_tuned",
        "machine": "a CPU, 2 cores",
        "commit": "abc1234",
        "recorded": "2026-12-07",
        "config": {"optim": {"optimizer": "lars", "lr": 0.0375}, "data": {"root": f"{REPO}/.test-data/x"}},
    }
    for key, extra in (("vicreg_tuned@0", {}), ("random", {"method": "random", "epochs": 0, "config": None})):
        (out / key).mkdir(parents=True)
        (out / key / "result.json").write_text(json.dumps({**row, "key": key, **extra}))
    records = tmp_path / "records.json"
    assert (
        acc.main(
            [
                "--out",
                str(out),
                "--epochs",
                "10",
                "--rows",
                "vicreg_tuned@0",
                "random",
                "byol_tuned@0",
                "--collect",
                "--records",
                str(records),
            ]
        )
        == 0
    )
    got = json.loads(records.read_text())
    assert [r["key"] for r in got] == ["vicreg_tuned@0", "random"]  # byol_tuned@0 did not run: no record
    tuned = got[0]
    assert tuned["optim"] == {"optimizer": "lars", "lr": 0.0375} and tuned["linear_top1"] == 41.0
    assert tuned["label"] == acc.METHODS["vicreg_tuned"][0] and tuned["overrides"] == acc.METHODS["vicreg_tuned"][1]
    assert (tuned["machine"], tuned["commit"], tuned["recorded"]) == ("a CPU, 2 cores", "abc1234", "2026-12-07")
    assert got[1]["optim"] is None and got[1]["overrides"] == []
    assert str(REPO) not in records.read_text()
    assert (out / "accuracy.png").is_file()


def test_update_replaces_only_the_records_of_the_rows_collected_and_keeps_the_others(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A partial re-run (here the reference rows alone, in a fresh folder) replaces its rows' records in the
    committed file in place, keeps the trained rows' records as they were, and appends a row new to it."""
    import json

    acc = _driver()
    monkeypatch.syspath_prepend(str(REPO / "benchmarks"))
    records = tmp_path / "records.json"
    committed = [
        {"key": "sc_cos@0", "method": "sc_cos", "linear_top1": 46.95, "machine": "x86_64, 2 cores"},
        {"key": "rep_scatnet", "method": "rep_scatnet", "linear_top1": 62.82, "machine": "x86_64, 2 cores"},
        {"key": "sc_cos@1", "method": "sc_cos", "linear_top1": 45.81, "machine": "x86_64, 2 cores"},
    ]
    records.write_text(json.dumps(committed))
    out = tmp_path / "refs"
    for key, top1 in (("rep_scatnet", 62.82), ("rep_hog", 42.76)):
        (out / key).mkdir(parents=True)
        result = {
            "key": key,
            "method": key,
            "linear_top1": top1,
            "knn_top1": 40.0,
            "seed": 0,
            "epochs": 0,
            "pretrain_s": 0.0,
            "eval_s": 90.0,
            "wall_s": 90.0,
            "feature_dim": 15552,
            "peak_rss_mib": 3788.0,
        }
        (out / key / "result.json").write_text(json.dumps({**result, "machine": "AMD EPYC, 2 cores", "commit": "c"}))
    argv = ["--out", str(out), "--rows", "rep_scatnet", "rep_hog", "--collect", "--records", str(records)]
    assert acc.main([*argv, "--update"]) == 0
    got = json.loads(records.read_text())
    assert [r["key"] for r in got] == ["sc_cos@0", "rep_scatnet", "sc_cos@1", "rep_hog"]
    assert got[0] == committed[0] and got[2] == committed[2]  # the trained rows' records, untouched
    assert got[1]["machine"] == "AMD EPYC, 2 cores" and got[1]["commit"] == "c" and got[3]["linear_top1"] == 42.76
    assert acc.main(argv) == 0  # without --update, the file holds exactly the rows collected
    assert [r["key"] for r in json.loads(records.read_text())] == ["rep_hog", "rep_scatnet"]
    with pytest.raises(SystemExit):  # --update without a file to update is refused, not ignored
        acc.parse_args(["--out", str(out), "--collect", "--update"])


@pytest.mark.parametrize("script", ["accuracy", "distill_objectives"])
def test_a_row_child_runs_with_the_clis_clean_output(script: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """The log of a row (the driver's child, ``--_row``) shows no library tips or notices: the row runs
    inside :func:`mvmr.training.quiet.clean_output`, as every ``mvmr`` command does."""
    import logging

    from mvmr.training.quiet import notices_hidden

    module = _driver(script)
    seen = []
    monkeypatch.setattr(module, "run_one", lambda args, key: seen.append((key, notices_hidden())))
    assert not notices_hidden()
    assert module.main(["--out", "unused", "--_row", "some_row@0"]) == 0
    assert seen == [("some_row@0", True)]
    assert not notices_hidden() and logging.root.manager.disable < logging.INFO  # restored after the row
