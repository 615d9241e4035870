"""Methods as a config axis: the registry, each method's views and loss, a VICReg run through the CLI."""

from __future__ import annotations

import csv
import sys
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from mvmr.cli import main
from mvmr.config import load_config
from mvmr.data import TwoViews, resize_center_crop
from mvmr.errors import ConfigError
from mvmr.methods import Method, available_methods, get_method, register_method
from mvmr.training.build import build_data
from mvmr.training.trainer import pretrain

sys.path.insert(0, str(Path(__file__).parent))
from _training_support import tiny_config  # noqa: E402


def test_builtin_methods_and_an_unknown_name() -> None:
    assert {"mvmr", "vicreg", "barlow_twins"} <= set(available_methods())
    with pytest.raises(ConfigError, match=r"^method: unknown method 'simclr'; available: .*barlow_twins.*mvmr.*vicreg"):
        get_method("simclr")
    assert main(["pretrain", "--config", "cifar10", "method=simclr"]) == 2


def test_peer_losses_are_lightlys_with_method_kwargs() -> None:
    pytest.importorskip("lightly")
    from lightly.loss import BarlowTwinsLoss, VICRegLoss

    g = torch.Generator().manual_seed(0)
    z1, z2 = torch.randn(16, 8, generator=g), torch.randn(16, 8, generator=g)
    for name, reference in (("vicreg", VICRegLoss()), ("barlow_twins", BarlowTwinsLoss())):
        loss, terms = get_method(name).build_loss(load_config("cifar10", [f"method={name}"]))(z1, z2, {})
        torch.testing.assert_close(loss, reference(z1, z2))
        assert set(terms) == {"loss"}
    only_invariance = load_config("cifar10", ["method=vicreg", "method_kwargs={lambda_param: 1.0, mu_param: 0.0, nu_param: 0.0}"])
    torch.testing.assert_close(get_method("vicreg").build_loss(only_invariance)(z1, z2, {})[0], F.mse_loss(z1, z2))
    with pytest.raises(ConfigError, match=r"^method_kwargs: .*nonsense"):
        get_method("vicreg").build_loss(load_config("cifar10", ["method=vicreg", "method_kwargs={nonsense: 1}"]))
    with pytest.raises(ConfigError, match=r"^method_kwargs: MV-MR takes its settings from the loss section"):
        get_method("mvmr").build_loss(load_config("cifar10", ["method_kwargs={alpha: 2}"]))


def test_each_method_takes_its_own_views(cifar10_root: Path, tmp_path: Path) -> None:
    ours = build_data(tiny_config(cifar10_root, tmp_path / "a"))
    peer = build_data(tiny_config(cifar10_root, tmp_path / "b", ["method=vicreg"]))
    index = int(ours.train_indices[3])
    clean = resize_center_crop(ours.base[index][0], 16)
    x_clean, x_aug, i, _ = ours.views[index]
    a, b, j, _ = peer.views[index]
    assert i == j == index
    assert torch.equal(x_clean, clean) and not torch.equal(x_aug, clean)  # MV-MR: the clean view + an augmented one
    assert not torch.equal(a, clean) and not torch.equal(b, clean) and not torch.equal(a, b)  # VICReg: two augmented
    assert torch.equal(peer.views[index][0], a)  # seeded by (seed, epoch, index): reproducible


class _InvarianceOnly(nn.Module):
    def forward(self, z_a: torch.Tensor, z_b: torch.Tensor, targets: dict) -> tuple[torch.Tensor, dict]:
        loss = F.mse_loss(z_a, z_b) + (1 - z_a.std(dim=0)).clamp(min=0).mean()
        return loss, {"loss": loss.detach(), "targets_seen": torch.tensor(float(len(targets)))}


def test_a_method_registered_in_python_is_trained_by_name(cifar10_root: Path, tmp_path: Path) -> None:
    register_method(Method(name="test_invariance", views=TwoViews, build_loss=lambda config: _InvarianceOnly(),
                           uses_targets=False, description="test only"))
    run = pretrain(tiny_config(cifar10_root, tmp_path / "run", ["method=test_invariance", "trainer.max_steps=2"]))
    rows = list(csv.DictReader(next(run.glob("csv/version_*/metrics.csv")).open()))
    seen = [float(r["train/targets_seen"]) for r in rows if r.get("train/targets_seen")]
    assert seen == [0.0, 0.0]  # no feature sources for a method that does not use targets
    assert torch.load(run / "checkpoints" / "last.ckpt", weights_only=True)["hyper_parameters"]["method"] == "test_invariance"


def test_vicreg_trains_resumes_exports_and_evaluates_like_mvmr(cifar10_root: Path, tmp_path: Path,
                                                                capsys: pytest.CaptureFixture[str]) -> None:
    pytest.importorskip("lightly")
    run = tmp_path / "run"
    over = ["method=vicreg", "data.kind=imagefolder", f"data.root={cifar10_root}", "data.split=test",
            "data.image_size=16", "data.subset=48", "data.batch_size=8", "data.num_workers=0", "data.val_fraction=0.2",
            "model.encoder=resnet18", "model.projector=32-32", "trainer.accelerator=cpu", "trainer.devices=1",
            "trainer.progress_bar=false", "trainer.max_epochs=1", "trainer.log_every_n_steps=1"]
    assert main(["pretrain", "--config", "cifar10", "--out", str(run), *over]) == 0
    first = torch.load(run / "checkpoints" / "last.ckpt", weights_only=True)
    assert first["hyper_parameters"]["method"] == "vicreg" and first["global_step"] > 0
    rows = list(csv.DictReader(next(run.glob("csv/version_*/metrics.csv")).open()))
    logged = {k for r in rows for k, v in r.items() if v}
    assert "train/loss" in logged and "val/probe_acc" in logged and not any(k.startswith("train/dcor") for k in logged)

    assert main(["pretrain", "--config", "cifar10", "--out", str(run), *over, "trainer.max_epochs=2"]) == 0  # resumes
    assert torch.load(run / "checkpoints" / "last.ckpt", weights_only=True)["global_step"] == 2 * first["global_step"]

    assert main(["export", str(run / "checkpoints" / "last.ckpt"), "--out", str(tmp_path / "exported")]) == 0
    backbone = tmp_path / "exported" / "backbone.safetensors"
    assert backbone.is_file()
    capsys.readouterr()
    assert main(["evaluate", "linear", "--checkpoint", str(backbone), "--data", str(cifar10_root), "--train-split", "train",
                 "--test-split", "test", "--image-size", "16", "--limit-train", "60", "--limit-test", "30", "--epochs", "2",
                 "--no-progress", "--out", str(run)]) == 0
    assert "test top-1 (%)" in capsys.readouterr().out and (run / "results.md").is_file()
