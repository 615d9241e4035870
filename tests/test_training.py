"""Training: a real fit, resume equivalence, DDP equivalence, schedule, guards, plots, export."""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
from pathlib import Path

import lightning as L
import pytest
import torch

from mvmr.config import to_dict
from mvmr.errors import ConfigError, DataError
from mvmr.training.callbacks import NonFiniteLossError
from mvmr.training.optim import LARS, build_optimizer, split_decay_params, warmup_cosine
from mvmr.training.sampling import EpochBatchSampler
from mvmr.training.trainer import pretrain

sys.path.insert(0, str(Path(__file__).parent))
from _training_support import (  # noqa: E402
    DETERMINISTIC_REPS,
    FEATURE_DIM,
    CrashAt,
    tiny_config,
    tiny_model,
)
from _training_support import (
    run_metrics as _metrics,
)

REPO = Path(__file__).resolve().parents[1]
ALL_REPS = ["pixels", "scatnet", "augmented_pixels", "hog", "local_std"]


def _state(run_dir: Path) -> dict[str, torch.Tensor]:
    ckpt = torch.load(run_dir / "checkpoints" / "last.ckpt", map_location="cpu", weights_only=True)
    return ckpt["state_dict"]


# --------------------------------------------------------------------------------------------
# a real fit with all five representations (shared by the export and plot tests)
# --------------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def resnet_run(cifar10_root: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("fit") / "run"
    reps = (
        "[{name: pixels}, {name: scatnet, kwargs: {J: 2, L: 8}}, {name: augmented_pixels}, {name: hog}, "
        "{name: local_std}]"
    )
    config = tiny_config(
        cifar10_root,
        out,
        [
            "data.image_size=32",
            "data.subset=24",
            "data.val_fraction=0.34",
            f"representations.items={reps}",
            "model.projector=64-64",
            "trainer.max_epochs=1",
        ],
    )
    return pretrain(config)


def test_fit_logs_every_term_and_writes_the_run_folder(resnet_run: Path) -> None:
    rows = _metrics(resnet_run)
    keys = set().union(*rows)
    for key in [
        "loss",
        "l1",
        "l2",
        "l3",
        "mse",
        "var_z",
        "var_z_aug",
        "dcor_views",
        "lr",
        "z_std",
        "images_per_s",
        *(f"dcor/{r}" for r in ALL_REPS),
    ]:
        assert f"train/{key}" in keys, key
    assert "val/probe_acc" in keys
    losses = [float(r["train/loss"]) for r in rows if r.get("train/loss")]
    assert len(losses) == 2 and all(math.isfinite(v) for v in losses)  # 16 train images / batch 8
    assert (resnet_run / "config.yaml").is_file()
    assert (resnet_run / "checkpoints" / "last.ckpt").is_file()
    assert list((resnet_run / "tensorboard").glob("version_0/events.out.tfevents.*"))
    for name in ("losses.png", "dcor.png", "probe.png"):
        assert (resnet_run / "plots" / name).stat().st_size > 1000, name


def test_checkpoint_loads_weights_only_with_plain_config(resnet_run: Path) -> None:
    from mvmr.config import load_config

    ckpt = torch.load(resnet_run / "checkpoints" / "last.ckpt", map_location="cpu", weights_only=True)
    assert type(ckpt["hyper_parameters"]) is dict
    assert ckpt["hyper_parameters"] == to_dict(load_config(resnet_run / "config.yaml"))
    assert not any(k.startswith("_representations") or "scatnet" in k for k in ckpt["state_dict"])
    assert not list((resnet_run / "checkpoints").glob(".*tmp*"))  # atomic writes leave no temp files


def test_export_writes_loadable_backbone(resnet_run: Path, tmp_path: Path) -> None:
    from mvmr.cli import main
    from mvmr.models import load_backbone
    from mvmr.training.export import model_from_checkpoint

    assert main(["export", str(resnet_run / "checkpoints" / "last.ckpt"), "--out", str(tmp_path)]) == 0
    model, _ = model_from_checkpoint(resnet_run / "checkpoints" / "last.ckpt")
    x = torch.rand(2, 3, 32, 32)
    for name in ("backbone.safetensors", "backbone.pt"):
        encoder, meta = load_backbone(tmp_path / name)
        assert meta["encoder"] == "resnet18" and meta["in_chans"] == 3
        encoder.eval()
        with torch.no_grad():
            torch.testing.assert_close(encoder(model.normalize(x)), model.features(x))


def test_export_refuses_a_non_mvmr_file(tmp_path: Path) -> None:
    from mvmr.cli import main

    bad = tmp_path / "x.ckpt"
    torch.save({"state_dict": {}}, bad)
    assert main(["export", str(bad), "--out", str(tmp_path / "o")]) == 2


# --------------------------------------------------------------------------------------------
# resume equivalence
# --------------------------------------------------------------------------------------------
def test_resume_mid_epoch_matches_uninterrupted_run(cifar10_root: Path, tmp_path: Path) -> None:
    # 40 images, 8 held out: 4 batches an epoch, 8 steps; a worker process, like real runs
    over = ["trainer.checkpoint_every_n_steps=1", "data.num_workers=1"]
    full = pretrain(tiny_config(cifar10_root, tmp_path / "full", over), model=tiny_model(), feature_dim=FEATURE_DIM)

    cut = tiny_config(cifar10_root, tmp_path / "cut", over)
    with pytest.raises(RuntimeError, match="simulated crash"):
        pretrain(cut, model=tiny_model(), feature_dim=FEATURE_DIM, callbacks=[CrashAt(6)])  # mid epoch 2
    assert torch.load(tmp_path / "cut/checkpoints/last.ckpt", weights_only=True)["global_step"] == 6
    pretrain(cut, model=tiny_model(seed=123), feature_dim=FEATURE_DIM)  # resume="auto" from last.ckpt

    a, b = _state(full), _state(tmp_path / "cut")
    assert a.keys() == b.keys()
    for key in a:
        torch.testing.assert_close(a[key], b[key], rtol=1e-5, atol=1e-6, msg=key)
    steps_full = [r["step"] for r in _metrics(full) if r.get("train/loss")]
    steps_cut = sorted({r["step"] for r in _metrics(tmp_path / "cut") if r.get("train/loss")}, key=int)
    assert steps_cut == steps_full  # no step trained twice, none skipped


# --------------------------------------------------------------------------------------------
# DDP: two CPU processes (gloo) against one process on the same global batch
# --------------------------------------------------------------------------------------------
DDP_SCRIPT = """
import sys
sys.path.insert(0, {tests!r})
from _training_support import DETERMINISTIC_REPS, FEATURE_DIM, tiny_config, tiny_model
from mvmr.training.trainer import pretrain
config = tiny_config({root!r}, {out!r}, {overrides!r})
pretrain(config, model=tiny_model(projector_bn=False), feature_dim=FEATURE_DIM, resume=None)
"""


def test_ddp_two_processes_match_one_process(cifar10_root: Path, tmp_path: Path) -> None:
    # Same global batch (2 x 4 vs 1 x 8), dCor and variance over the gathered batch
    # (loss.gather_distributed=true), deterministic representations only (augmented_pixels draws
    # per process), no BatchNorm anywhere (see tiny_model; a linear regression head): the weights
    # must agree, the head's included (its target is centred with the global batch's mean). LARS,
    # not Adam: the last projector bias has an exactly-zero gradient (every loss term is shift
    # invariant), and Adam turns its float noise into +-lr steps, which differ between runs.
    reps = DETERMINISTIC_REPS.replace("{cell: 4}}", "{cell: 4}, objective: dcor+cosine}")
    common = [
        f"representations.items={reps}",
        "regression.depth=1",
        "loss.gather_distributed=true",
        "trainer.max_epochs=1",
        "optim.optimizer=lars",
        "optim.lr=0.5",
        "optim.trust_coefficient=0.02",
    ]
    ddp_over = [*common, "data.batch_size=4", "trainer.devices=2", "trainer.strategy=ddp"]
    script = tmp_path / "ddp_fit.py"
    script.write_text(
        DDP_SCRIPT.format(
            tests=str(Path(__file__).parent), root=str(cifar10_root), out=str(tmp_path / "ddp"), overrides=ddp_over
        )
    )
    env = {k: v for k, v in os.environ.items() if not k.startswith(("LOCAL_RANK", "RANK", "WORLD_SIZE", "MASTER_"))}
    env.update(OMP_NUM_THREADS="1", PYTHONPATH=str(REPO))
    proc = subprocess.run(
        [sys.executable, str(script)], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300
    )
    assert proc.returncode == 0, proc.stderr[-3000:]

    single = pretrain(
        tiny_config(cifar10_root, tmp_path / "single", [*common, "data.batch_size=8"]),
        model=tiny_model(projector_bn=False),
        feature_dim=FEATURE_DIM,
        resume=None,
    )
    a, b = _state(tmp_path / "ddp"), _state(single)
    assert torch.load(tmp_path / "ddp/checkpoints/last.ckpt", weights_only=True)["global_step"] == 4
    assert any(k.startswith("method.regression.") for k in a) and a.keys() == b.keys()
    for key in a:
        torch.testing.assert_close(a[key], b[key], rtol=1e-4, atol=1e-5, msg=lambda m, key=key: f"{key}: {m}")
    losses = [
        [float(r["train/loss"]) for r in _metrics(run) if r.get("train/loss")] for run in (tmp_path / "ddp", single)
    ]
    assert len(losses[0]) == 4 and losses[0] == pytest.approx(losses[1], rel=1e-4)


# --------------------------------------------------------------------------------------------
# schedule, optimisers, sampler
# --------------------------------------------------------------------------------------------
class _LrRecorder(L.Callback):
    def __init__(self) -> None:
        self.lrs: list[float] = []
        self.total = None

    def on_before_optimizer_step(self, trainer, pl_module, optimizer) -> None:
        self.lrs.append(optimizer.param_groups[0]["lr"])
        self.total = pl_module.schedule_total_steps


def test_schedule_counts_optimizer_steps_under_accumulation(cifar10_root: Path, tmp_path: Path) -> None:
    # 44 images, 9 held out -> 35 train -> 4 batches of 8 an epoch; accumulate 3 -> ceil(4/3) = 2
    # optimiser steps an epoch (Lightning steps on the last, partial window), x 3 epochs = 6
    rec = _LrRecorder()
    config = tiny_config(
        cifar10_root,
        tmp_path / "run",
        [
            "data.subset=44",
            "trainer.accumulate_grad_batches=3",
            "trainer.max_epochs=3",
            "optim.warmup_epochs=1",
            "optim.min_lr=1e-4",
            f"representations.items={DETERMINISTIC_REPS}",
        ],
    )
    pretrain(config, model=tiny_model(), feature_dim=FEATURE_DIM, callbacks=[rec], resume=None)
    assert rec.total == 6 and len(rec.lrs) == 6
    expected = [1e-3 * warmup_cosine(6, 2, 0.1)(s) for s in range(6)]
    assert rec.lrs == pytest.approx(expected)
    assert rec.lrs[0] == pytest.approx(5e-4) and rec.lrs[1] == pytest.approx(1e-3)  # warm-up: 2 steps
    assert rec.lrs[-1] > 1e-4 and warmup_cosine(6, 2, 0.1)(6) == pytest.approx(0.1)  # cosine ends at min_lr


def test_lars_excludes_bias_and_norm_from_decay_and_adaptation() -> None:
    from mvmr.config import OptimConfig

    torch.manual_seed(0)
    net = torch.nn.Sequential(torch.nn.Linear(4, 3), torch.nn.BatchNorm1d(3))
    groups = split_decay_params(net, 0.1)
    assert [len(g["params"]) for g in groups] == [1, 3]  # linear weight | bias, bn weight, bn bias
    assert groups[1]["weight_decay"] == 0.0 and groups[1]["lars_exclude"]
    opt = build_optimizer(OptimConfig(optimizer="lars", lr=0.5, weight_decay=0.1), groups, 0.5)
    assert isinstance(opt, LARS)
    net(torch.randn(8, 4)).pow(2).sum().backward()
    before = {n: p.detach().clone() for n, p in net.named_parameters()}
    grads = {n: p.grad.clone() for n, p in net.named_parameters()}
    opt.step()
    for name, p in net.named_parameters():
        step = before[name] - p.detach()
        if name == "0.weight":  # adapted: lr * eta * ||w|| / ||g + wd w|| * (g + wd w)
            g = grads[name] + 0.1 * before[name]
            torch.testing.assert_close(step, 0.5 * 0.001 * before[name].norm() / g.norm() * g)
        else:  # plain SGD step, no decay
            torch.testing.assert_close(step, 0.5 * grads[name])


def test_lars_clip_caps_the_adaptive_rate_at_lr_as_solo_learn_does() -> None:
    torch.manual_seed(0)
    big, small = torch.nn.Parameter(torch.randn(5, 4) * 10), torch.nn.Parameter(torch.randn(5, 4) * 0.01)
    lr, eta, wd = 0.1, 0.02, 1e-4
    opt = LARS(
        [{"params": [big, small], "lars_exclude": False}],
        lr=lr,
        momentum=0.9,
        weight_decay=wd,
        trust_coefficient=eta,
        clip_lr=True,
    )
    (big.pow(2).sum() * 1e-3 + small.pow(3).sum() * 1e3).backward()
    before = {"big": big.detach().clone(), "small": small.detach().clone()}
    grads = {"big": big.grad.clone(), "small": small.grad.clone()}
    opt.step()
    for name, p in (("big", big), ("small", small)):
        g = grads[name] + wd * before[name]
        rate = eta * before[name].norm() / g.norm()  # the unclipped adaptive rate
        expected = min(float(rate), lr) * g  # lr * min(rate / lr, 1): never faster than SGD at lr
        torch.testing.assert_close(before[name] - p.detach(), expected)
    # one parameter takes each branch: the large weight's rate is capped, the small one's is not
    assert float(eta * before["big"].norm() / (grads["big"] + wd * before["big"]).norm()) > lr
    assert float(eta * before["small"].norm() / (grads["small"] + wd * before["small"]).norm()) < lr


def test_sampler_drops_incomplete_batch_and_shards_the_global_batch() -> None:
    one = EpochBatchSampler(list(range(17)), 8, seed=3)
    batches = list(one)
    assert len(one) == len(batches) == 2 and all(len(b) == 8 for b in batches)  # the 17th image is dropped
    shards = [EpochBatchSampler(list(range(17)), 4, seed=3, rank=r, world_size=2) for r in range(2)]
    for step in range(2):
        union = sorted(i for s in shards for _, i in list(s)[step])
        assert union == sorted(i for _, i in batches[step])
    with pytest.raises(DataError, match="no complete batch"):
        EpochBatchSampler(list(range(5)), 8)


def test_batch_of_one_is_a_config_error(cifar10_root: Path, tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"data\.batch_size: must be >= 2, got 1"):
        tiny_config(cifar10_root, tmp_path, ["data.batch_size=1"])


def test_batch_larger_than_data_is_a_clear_error(cifar10_root: Path, tmp_path: Path) -> None:
    with pytest.raises(DataError, match="data.batch_size=64"):
        pretrain(
            tiny_config(cifar10_root, tmp_path, ["data.batch_size=64"]), model=tiny_model(), feature_dim=FEATURE_DIM
        )


# --------------------------------------------------------------------------------------------
# non-finite guard
# --------------------------------------------------------------------------------------------
class _PoisonLoss(L.Callback):
    """From optimiser step 2 on, the L3 term becomes NaN (inputs stay finite)."""

    class Poisoned(torch.nn.Module):
        def __init__(self, inner, trainer) -> None:
            super().__init__()
            self.inner, self.trainer = inner, trainer

        def forward(self, z, z_aug, reps):
            loss, terms = self.inner(z, z_aug, reps)
            if self.trainer.global_step >= 2:
                terms = {**terms, "l3": torch.tensor(float("nan"))}
                loss = loss + terms["l3"]
            return loss, terms

    def on_train_start(self, trainer, pl_module) -> None:
        pl_module.method.loss_fn = self.Poisoned(pl_module.method.loss_fn, trainer)


def test_non_finite_loss_stops_with_step_and_terms(cifar10_root: Path, tmp_path: Path) -> None:
    config = tiny_config(
        cifar10_root,
        tmp_path / "run",
        [f"representations.items={DETERMINISTIC_REPS}", "trainer.checkpoint_every_n_steps=1"],
    )
    with pytest.raises(NonFiniteLossError, match=r"optimiser step 2 .*non-finite terms: l3.*dcor/hog="):
        pretrain(config, model=tiny_model(), feature_dim=FEATURE_DIM, callbacks=[_PoisonLoss()])
    last = torch.load(tmp_path / "run/checkpoints/last.ckpt", weights_only=True)
    assert last["global_step"] == 2 and all(torch.isfinite(v).all() for v in last["state_dict"].values())


def test_non_finite_embedding_is_reported_with_the_step(cifar10_root: Path, tmp_path: Path) -> None:
    class Nan(L.Callback):
        def on_train_batch_start(self, trainer, pl_module, batch, batch_idx) -> None:
            if trainer.global_step == 1:
                with torch.no_grad():
                    pl_module.model.encoder[0].weight.fill_(float("nan"))

    config = tiny_config(cifar10_root, tmp_path / "run", [f"representations.items={DETERMINISTIC_REPS}"])
    with pytest.raises(NonFiniteLossError, match="optimiser step 1"):
        pretrain(config, model=tiny_model(), feature_dim=FEATURE_DIM, callbacks=[Nan()])


# --------------------------------------------------------------------------------------------
# cache path
# --------------------------------------------------------------------------------------------
def test_cached_representations_match_fresh_ones(cifar10_root: Path, tmp_path: Path) -> None:
    from mvmr.training.build import build_data, build_module

    fresh_cfg = tiny_config(cifar10_root, tmp_path / "a", [f"representations.items={DETERMINISTIC_REPS}"])
    cached_cfg = tiny_config(
        cifar10_root,
        tmp_path / "b",
        [f"representations.items={DETERMINISTIC_REPS}", f"representations.cache_dir={tmp_path / 'cache'}"],
    )
    data = build_data(fresh_cfg)
    fresh = build_module(fresh_cfg, data, tiny_model(), FEATURE_DIM)
    cached = build_module(cached_cfg, data, tiny_model(), FEATURE_DIM)
    from mvmr.sources import CachedSource, LiveSource

    assert [(type(s), s.names) for s in cached.method.sources] == [(CachedSource, ["pixels", "hog", "local_std"])]
    assert [(type(s), s.names) for s in fresh.method.sources] == [(LiveSource, ["pixels", "hog", "local_std"])]
    for source in (*fresh.method.sources, *cached.method.sources):
        source.prepare("cpu")  # what the trainer does in setup: the cache is built here
    idx = torch.as_tensor(data.train_indices[:8])
    x = torch.stack([data.views[int(i)][0] for i in idx])
    a, b = fresh.method.targets(x, idx), cached.method.targets(x, idx)
    assert list(a) == list(b) == ["pixels", "hog", "local_std"]
    for name in a:
        torch.testing.assert_close(b[name], a[name], rtol=2e-3, atol=2e-3, msg=name)  # float16 storage


def test_project_dim_applies_without_a_cache_and_equals_the_cached_projection(
    cifar10_root: Path, tmp_path: Path
) -> None:
    """representations.project_dim is not ignored when nothing is cached: the live features get the
    same seeded projection the cache stores (so a run may switch between the two)."""
    from mvmr.training.build import build_data, build_module

    over = [f"representations.items={DETERMINISTIC_REPS}", "representations.project_dim=100"]
    live_cfg = tiny_config(cifar10_root, tmp_path / "a", over)
    cached_cfg = tiny_config(cifar10_root, tmp_path / "b", [*over, f"representations.cache_dir={tmp_path / 'cache'}"])
    data = build_data(live_cfg)
    live, cached = (
        build_module(live_cfg, data, tiny_model(), FEATURE_DIM),
        build_module(cached_cfg, data, tiny_model(), FEATURE_DIM),
    )
    for source in (*live.method.sources, *cached.method.sources):
        source.prepare("cpu")
    idx = torch.as_tensor(data.train_indices[:8])
    x = torch.stack([data.views[int(i)][0] for i in idx])
    a, b = live.method.targets(x, idx), cached.method.targets(x, idx)
    # every one is wider than 100 at 16 px (pixels and local std 768, HOG 864): all projected to 100
    assert (
        {k: v.shape[1] for k, v in a.items()}
        == {k: v.shape[1] for k, v in b.items()}
        == {"pixels": 100, "hog": 100, "local_std": 100}
    )
    for name in a:
        torch.testing.assert_close(a[name], b[name], rtol=5e-3, atol=5e-3, msg=name)  # float16 storage


# --------------------------------------------------------------------------------------------
# demo
# --------------------------------------------------------------------------------------------
def test_demo_without_fashion_mnist_says_how_to_get_it(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from mvmr.cli import main

    assert main(["demo", "--data", str(tmp_path), "--out", str(tmp_path / "run")]) == 2
    err = capsys.readouterr().err
    assert "apt-get install dataset-fashion-mnist" in err and "--data" in err


@pytest.mark.skipif(
    not Path("/usr/share/datasets/fashion-mnist").is_dir(), reason="dataset-fashion-mnist not installed"
)
def test_demo_runs_end_to_end_when_shrunk(tmp_path: Path) -> None:
    from mvmr.workflows.demo import PROBE_LRS, run_demo

    lines: list[str] = []
    result = run_demo(
        out=tmp_path / "demo",
        probe_train=200,
        probe_test=100,
        echo=lines.append,
        overrides=[
            "data.subset=48",
            "data.batch_size=16",
            "data.num_workers=0",
            "trainer.max_epochs=1",
            "optim.warmup_epochs=0",
            f"representations.items={DETERMINISTIC_REPS}",
            "model.projector=64-64",
            "trainer.progress_bar=false",
        ],
    )
    assert [r["features"].split()[0] for r in result["rows"]] == ["MV-MR", "VICReg", "random", "raw"]
    assert result["peer"] == "vicreg" and (tmp_path / "demo" / "vicreg" / "checkpoints" / "last.ckpt").is_file()
    peer = (tmp_path / "demo" / "vicreg" / "config.yaml").read_text()
    assert "method: vicreg" in peer and "items: []" in peer and "subset: 48" in peer  # the same budget
    assert all(0.0 <= r["accuracy"] <= 1.0 for r in result["rows"])
    assert all(r["probe_lr"] in PROBE_LRS for r in result["rows"])  # the lr was chosen from the grid for every row
    # the record says where, with what and from which seed it ran, and the memory of both processes
    assert {"machine", "commit", "mvmr", "torch", "recorded"} <= result.keys() and result["seed"] == 0
    assert result["peak_rss_mib"]["mvmr"] > 100
    if result["threads"] >= 2:  # VICReg pretrained in a process of its own, which was measured
        assert result["peak_rss_mib"]["peer"] > 100
    saved = json.loads((tmp_path / "demo" / "demo_results.json").read_text())
    assert saved["machine"] == result["machine"] and saved["overrides"][0] == "data.subset=48"
    text = "\n".join(lines)
    assert "| features" in text and "VICReg at the same budget" in text
    for name in ("config.yaml", "checkpoints/last.ckpt", "plots/losses.png", "demo_results.md"):
        assert (tmp_path / "demo" / name).is_file(), name
    # the deterministic representations were cached in the run folder, and --fresh removes them
    assert any((tmp_path / "demo" / "reps-cache").iterdir())
    run_demo(
        out=tmp_path / "demo",
        fresh=True,
        probe_train=200,
        probe_test=100,
        echo=lines.append,
        peer=None,
        overrides=[
            "data.subset=48",
            "data.batch_size=16",
            "data.num_workers=0",
            "trainer.max_epochs=1",
            "optim.warmup_epochs=0",
            f"representations.items={DETERMINISTIC_REPS}",
            "model.projector=64-64",
            "trainer.progress_bar=false",
            "representations.cache_dir=null",
        ],
    )
    assert not (tmp_path / "demo" / "reps-cache").exists()
    assert (tmp_path / "demo" / "vicreg").exists()  # --fresh removes only what this run trains: peer=None kept it


def test_demo_verdict_states_every_gap_plainly() -> None:
    from mvmr.workflows.demo import demo_verdict

    win = demo_verdict(0.87, 0.81, 0.845, vicreg=0.84)
    assert "beats VICReg at the same budget (+3.0 points, beyond noise: 1.0)" in win
    assert "beats its untrained encoder (+6.0 points, beyond noise: 1.0)" in win
    assert "Raw pixels, a reference rather than a target, score 84.5 (below MV-MR by 2.5 points)" in win
    assert "docs/results.md" not in win
    loss = demo_verdict(0.83, 0.81, 0.86, vicreg=0.845)
    assert "does NOT beat VICReg at the same budget (-1.5 points, beyond noise: 1.0)" in loss
    assert "(+2.0 points, beyond noise: 1.1)" in loss
    assert "above MV-MR by 3.0 points)" in loss and "docs/results.md" in loss
    # twice the binomial SE of a difference of two ~82% scores on 10,000 images is 1.1 points: a 0.2-point
    # lead is a tie, and so is 1.0 point on 10,000 images but not on 100,000
    tie = demo_verdict(0.818, 0.801, 0.831, vicreg=0.816)
    assert (
        "is within noise of VICReg at the same budget (+0.2 points; twice the binomial SE of the difference is 1.1)"
        in tie
    )
    assert "beats its untrained encoder (+1.7 points, beyond noise: 1.1)" in tie
    assert "above MV-MR by 1.3 points)" in tie and "docs/results.md" in tie
    assert "within noise" in demo_verdict(0.82, 0.70, 0.60, vicreg=0.81)
    assert "beats VICReg" in demo_verdict(0.82, 0.70, 0.60, vicreg=0.81, n_test=100_000)


def test_atomic_checkpoint_io_keeps_the_old_file_when_a_write_fails(tmp_path: Path, monkeypatch) -> None:
    from mvmr.errors import CheckpointError
    from mvmr.training.callbacks import AtomicCheckpointIO

    io_ = AtomicCheckpointIO()
    path = tmp_path / "ckpts" / "last.ckpt"
    io_.save_checkpoint({"step": torch.tensor(1)}, path)

    def crash(*args, **kwargs):
        raise OSError("disk full")

    monkeypatch.setattr(os, "replace", crash)
    with pytest.raises(OSError, match="disk full"):
        io_.save_checkpoint({"step": torch.tensor(2)}, path)
    monkeypatch.undo()
    assert io_.load_checkpoint(path)["step"] == 1
    assert [p.name for p in path.parent.iterdir()] == ["last.ckpt"]  # no temp file left behind
    torch.save({"x": Path("not a tensor")}, path)  # a pickle that weights_only refuses
    with pytest.raises(CheckpointError, match="weights_only=True"):
        io_.load_checkpoint(path)


def test_resume_keeps_one_last_checkpoint_and_the_numbered_ones(cifar10_root: Path, tmp_path: Path) -> None:
    """After resumes, the folder holds exactly one last.ckpt (no last-v1.ckpt, ...) and the
    numbered checkpoints the config asks for."""
    over = ["trainer.checkpoint_every_n_epochs=1", "trainer.checkpoint_every_n_steps=2", "probe.enabled=false"]
    for epochs in (1, 2, 3):
        pretrain(
            tiny_config(cifar10_root, tmp_path / "run", [*over, f"trainer.max_epochs={epochs}"]),
            model=tiny_model(),
            feature_dim=FEATURE_DIM,
        )
    names = sorted(p.name for p in (tmp_path / "run" / "checkpoints").iterdir())
    assert names == ["epoch0000.ckpt", "epoch0001.ckpt", "epoch0002.ckpt", "last.ckpt"], names
    last = torch.load(tmp_path / "run" / "checkpoints" / "last.ckpt", weights_only=True)
    assert last["epoch"] == 2 and last["global_step"] == 3 * 5  # 40 images, batch 8: no step lost or replayed


def test_two_process_ddp_run_through_the_real_command_line(cifar10_root: Path, tmp_path: Path) -> None:
    """`torchrun --standalone --nproc_per_node 2 -m mvmr pretrain ... trainer.devices=2
    trainer.strategy=ddp trainer.accelerator=cpu` (docs/distributed.md): two gloo processes train
    through the real command line, share the feature cache build and write one checkpoint."""
    import json

    out, cache = tmp_path / "run", tmp_path / "cache"
    args = [
        "pretrain",
        "--config",
        "cifar10",
        "--out",
        str(out),
        "data.kind=imagefolder",
        f"data.root={cifar10_root}",
        "data.split=test",
        "data.image_size=16",
        "data.subset=48",
        "data.batch_size=4",
        "data.num_workers=0",
        "data.val_fraction=0",
        "model.encoder=resnet18",
        "model.projector=32-32",
        "trainer.max_epochs=1",
        "trainer.precision=32-true",
        "trainer.progress_bar=false",
        "probe.enabled=false",
        f"representations.items={DETERMINISTIC_REPS}",
        f"representations.cache_dir={cache}",
        "trainer.devices=2",
        "trainer.strategy=ddp",
        "trainer.accelerator=cpu",
    ]
    env = {k: v for k, v in os.environ.items() if not k.startswith(("LOCAL_RANK", "RANK", "WORLD_SIZE", "MASTER_"))}
    env.update(OMP_NUM_THREADS="1", PYTHONPATH=str(REPO))
    torchrun = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2", "-m", "mvmr"]
    proc = subprocess.run([*torchrun, *args], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    ckpt = torch.load(out / "checkpoints" / "last.ckpt", weights_only=True)
    assert ckpt["global_step"] == 48 // (2 * 4)  # the global batch of 2 x 4 images
    shards = json.loads((cache / "manifest.json").read_text())["shards"]
    assert shards == [{"rank": 0, "rows": [0, 24]}, {"rank": 1, "rows": [24, 48]}]


def test_slurm_variables_select_lightnings_slurm_environment(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Under `srun` on 2 nodes x 2 GPUs, rank 3 of the job is node 1's second process: Lightning's
    SLURM environment reads that from SLURM's variables (what docs/distributed.md's script relies on)."""
    from lightning.fabric.plugins.environments import SLURMEnvironment
    from lightning.fabric.utilities.rank_zero import rank_zero_only

    from mvmr.config import load_config
    from mvmr.training.trainer import build_trainer

    # building the trainer sets Lightning's process-wide rank_zero_only.rank to SLURM's rank 3: put it back
    # afterwards, or every later run in this process logs nothing (no CSV rows, no rank-zero output)
    monkeypatch.setattr(rank_zero_only, "rank", getattr(rank_zero_only, "rank", 0))
    slurm = {
        "SLURM_NTASKS": "4",
        "SLURM_NTASKS_PER_NODE": "2",
        "SLURM_NNODES": "2",
        "SLURM_NODEID": "1",
        "SLURM_PROCID": "3",
        "SLURM_LOCALID": "1",
        "SLURM_JOB_ID": "1234",
        "SLURM_JOB_NAME": "mvmr-stl10",
        "SLURM_NODELIST": "gpu[01-02]",
    }
    for key, value in slurm.items():
        monkeypatch.setenv(key, value)
    config = load_config(
        "stl10",
        [
            "trainer.accelerator=cpu",
            "trainer.devices=2",
            "trainer.num_nodes=2",
            "trainer.strategy=ddp",
            f"output_dir={tmp_path}",
        ],
    )
    env = build_trainer(config, tmp_path).strategy.cluster_environment
    assert isinstance(env, SLURMEnvironment)
    assert (env.world_size(), env.global_rank(), env.local_rank(), env.node_rank()) == (4, 3, 1, 1)
    assert env.main_address == "gpu01"
