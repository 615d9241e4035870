"""Methods as a config axis: the registry, each method's views, parts and step; a toy three-view method in
this file; VICReg and BYOL through the CLI (BYOL's momentum network resumed exactly)."""

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
from mvmr.data import MultiViews, resize_center_crop
from mvmr.errors import ConfigError
from mvmr.methods import Method, StepOutput, available_methods, get_method, mvmr_loss, register_method
from mvmr.training.build import build_data
from mvmr.training.trainer import pretrain

sys.path.insert(0, str(Path(__file__).parent))
from _training_support import CrashAt, tiny_config  # noqa: E402


def test_builtin_methods_and_an_unknown_name() -> None:
    assert {"mvmr", "vicreg", "barlow_twins", "byol"} <= set(available_methods())
    with pytest.raises(ConfigError, match=r"^method: unknown method 'simclr'; available: .*barlow_twins.*mvmr.*vicreg"):
        get_method("simclr")
    assert main(["pretrain", "--config", "cifar10", "method=simclr"]) == 2


def test_peer_losses_are_lightlys_with_method_kwargs() -> None:
    pytest.importorskip("lightly")
    from lightly.loss import BarlowTwinsLoss, VICRegLoss

    g = torch.Generator().manual_seed(0)
    z1, z2 = torch.randn(16, 8, generator=g), torch.randn(16, 8, generator=g)

    def loss_of(name: str, overrides: list[str]) -> nn.Module:
        config = load_config("cifar10", [f"method={name}", *overrides])
        return get_method(name).from_config(config, model=nn.Identity(), data=None, feature_dim=8).loss_fn

    for name, reference in (("vicreg", VICRegLoss()), ("barlow_twins", BarlowTwinsLoss())):
        loss, terms = loss_of(name, [])(z1, z2)
        torch.testing.assert_close(loss, reference(z1, z2))
        assert set(terms) == {"loss"}
    only_invariance = loss_of("vicreg", ["method_kwargs={lambda_param: 1.0, mu_param: 0.0, nu_param: 0.0}"])
    torch.testing.assert_close(only_invariance(z1, z2)[0], F.mse_loss(z1, z2))
    with pytest.raises(ConfigError, match=r"^method_kwargs: .*nonsense"):
        loss_of("vicreg", ["method_kwargs={nonsense: 1}"])
    # solo-learn's Barlow Twins for CIFAR: lambda 0.0051 and the loss scaled by 0.1 (it changes a clipped LARS step)
    scaled = loss_of("barlow_twins", ["method_kwargs={lambda_param: 0.0051, loss_scale: 0.1}"])(z1, z2)[0]
    torch.testing.assert_close(scaled, 0.1 * BarlowTwinsLoss(lambda_param=0.0051)(z1, z2))
    for bad in ("0", "-1", "true", "big"):
        with pytest.raises(ConfigError, match=r"^method_kwargs.loss_scale: expected a positive number"):
            loss_of("barlow_twins", [f"method_kwargs={{loss_scale: {bad}}}"])
    with pytest.raises(ConfigError, match=r"^method_kwargs: BYOL takes .*not \['nonsense'\]"):
        loss_of("byol", ["model.projector=16-8", "method_kwargs={nonsense: 1}"])
    with pytest.raises(ConfigError, match=r"^model.projector: BYOL's projection head is hidden-output"):
        get_method("byol").build_model(load_config("cifar10", ["method=byol", "model.projector=8-8-8"]), 3)
    with pytest.raises(ConfigError, match=r"^method_kwargs: MV-MR takes its settings from the loss section"):
        mvmr_loss(load_config("cifar10", ["method_kwargs={alpha: 2}"]))


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


class ThreeViews(Method):
    """A toy method with three views at two sizes and a part of its own, the whole method in one class:
    two augmented views at the run's size and the clean image at half of it; invariance + variance
    between the two, and a linear head that predicts the large view's embedding from the small view."""

    name = "test_three_views"
    num_views = 3

    def __init__(self, feature_dim: int, embed_dim: int) -> None:
        super().__init__()
        self.head = nn.Linear(feature_dim, embed_dim)

    @classmethod
    def views(cls, config, full, *, augmentation, seed):
        size = config.data.image_size
        return MultiViews(full, [(size, augmentation), (size, augmentation), (size // 2, None)], seed=seed)

    @classmethod
    def from_config(cls, config, *, model, data, feature_dim):
        return cls(feature_dim, model.projector.out_dim)

    def step(self, model, batch) -> StepOutput:
        (h_a, z_a), (_, z_b) = model.forward_with_features(batch[0]), model.forward_with_features(batch[1])
        h_small = model.features(batch[2])
        invariance = F.mse_loss(z_a, z_b) + F.relu(1 - z_a.std(dim=0)).mean() + F.relu(1 - z_b.std(dim=0)).mean()
        prediction = F.mse_loss(self.head(h_small), z_a.detach())
        loss = invariance + prediction
        sizes = torch.tensor([float(batch[i].shape[-1]) for i in range(3)])
        return StepOutput(
            loss,
            {
                "loss": loss.detach(),
                "prediction": prediction.detach(),
                "small_side": sizes[2],
                "views": torch.tensor(float(len(batch) - 2)),
            },
            h_a,
            z_a,
        )


def test_a_three_view_method_in_one_class_is_trained_by_name(cifar10_root: Path, tmp_path: Path) -> None:
    register_method(ThreeViews)
    config = tiny_config(
        cifar10_root,
        tmp_path / "run",
        ["method=test_three_views", "trainer.max_steps=3", "trainer.skip_nonfinite_batches=1"],
    )
    data = build_data(config)
    index = int(data.train_indices[0])
    big, other, small, i, _ = data.views[index]
    assert big.shape[-1] == other.shape[-1] == 16 and small.shape[-1] == 8 and i == index
    torch.testing.assert_close(small, resize_center_crop(data.full[index][0], 8))

    run = pretrain(config)
    rows = [r for r in csv.DictReader(next(run.glob("csv/version_*/metrics.csv")).open()) if r.get("train/loss")]
    assert [float(r["train/views"]) for r in rows] == [3.0] * 3 and {r["train/small_side"] for r in rows} == {"8.0"}
    ckpt = torch.load(run / "checkpoints" / "last.ckpt", weights_only=True)
    assert ckpt["hyper_parameters"]["method"] == "test_three_views" and ckpt["global_step"] == 3
    assert {"method.head.weight", "method.head.bias"} <= set(ckpt["state_dict"])  # the method's part is saved ...
    trained = sum(
        1
        for k, v in ckpt["state_dict"].items()
        if k.startswith(("model.", "method.", "classifier."))
        and v.is_floating_point()
        and "running_" not in k
        and not k.endswith(("model.mean", "model.std"))
    )
    assert len(ckpt["optimizer_states"][0]["state"]) == trained  # ... and optimised with the model and the probe
    assert not any(k.startswith("method.") for k in _exported(run, tmp_path))  # ... and never exported


def _exported(run: Path, tmp_path: Path) -> dict[str, torch.Tensor]:
    from safetensors.torch import load_file

    assert main(["export", str(run / "checkpoints" / "last.ckpt"), "--out", str(tmp_path / "exported")]) == 0
    return load_file(tmp_path / "exported" / "backbone.safetensors")


def test_vicreg_trains_resumes_exports_and_evaluates_like_mvmr(
    cifar10_root: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    pytest.importorskip("lightly")
    run = tmp_path / "run"
    over = [
        "method=vicreg",
        "data.kind=imagefolder",
        f"data.root={cifar10_root}",
        "data.split=test",
        "data.image_size=16",
        "data.subset=48",
        "data.batch_size=8",
        "data.num_workers=0",
        "data.val_fraction=0.2",
        "model.encoder=resnet18",
        "model.projector=32-32",
        "trainer.accelerator=cpu",
        "trainer.devices=1",
        "trainer.progress_bar=false",
        "trainer.max_epochs=1",
        "trainer.log_every_n_steps=1",
    ]
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
    assert (
        main(
            [
                "evaluate",
                "linear",
                "--checkpoint",
                str(backbone),
                "--data",
                str(cifar10_root),
                "--train-split",
                "train",
                "--test-split",
                "test",
                "--image-size",
                "16",
                "--limit-train",
                "60",
                "--limit-test",
                "30",
                "--epochs",
                "2",
                "--no-progress",
                "--out",
                str(run),
            ]
        )
        == 0
    )
    assert "test top-1 (%)" in capsys.readouterr().out and (run / "results.md").is_file()


def test_byol_trains_resumes_its_momentum_network_exactly_exports_the_online_backbone_and_evaluates(
    cifar10_root: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    pytest.importorskip("lightly")
    from lightly.models.modules import BYOLPredictionHead, BYOLProjectionHead

    over = [
        "method=byol",
        "data.kind=imagefolder",
        f"data.root={cifar10_root}",
        "data.split=test",
        "data.image_size=16",
        "data.subset=40",
        "data.batch_size=8",
        "data.num_workers=0",
        "data.val_fraction=0.2",
        "model.encoder=resnet18",
        "model.projector=32-16",
        "trainer.accelerator=cpu",
        "trainer.devices=1",
        "trainer.progress_bar=false",
        "trainer.max_epochs=2",
        "trainer.log_every_n_steps=1",
        "trainer.checkpoint_every_n_steps=1",
        "trainer.precision=32-true",
    ]
    full = pretrain(load_config("cifar10", [*over, f"output_dir={tmp_path / 'full'}"]))
    cut = tmp_path / "cut"
    with pytest.raises(RuntimeError, match="simulated crash"):
        pretrain(load_config("cifar10", [*over, f"output_dir={cut}"]), callbacks=[CrashAt(6)])  # mid epoch 2
    at_crash = torch.load(cut / "checkpoints" / "last.ckpt", weights_only=True)
    assert at_crash["global_step"] == 6 and 0.99 < float(at_crash["state_dict"]["method.momentum_value"]) < 1.0
    assert main(["pretrain", "--config", "cifar10", "--out", str(cut), "--resume", "auto", *over]) == 0

    a = torch.load(full / "checkpoints" / "last.ckpt", weights_only=True)["state_dict"]
    b = torch.load(cut / "checkpoints" / "last.ckpt", weights_only=True)["state_dict"]
    momentum = [k for k in a if k.startswith("method.momentum.")]
    assert momentum and a.keys() == b.keys() and "method.predictor.layers.0.weight" in a
    for key in a:  # the online network, the predictor and the momentum network, all exactly where they would be
        torch.testing.assert_close(a[key], b[key], rtol=1e-5, atol=1e-6, msg=key)
    assert float(a["method.momentum_value"]) == 1.0  # the cosine schedule ends at momentum_end
    online, copy = a["model.encoder.conv1.weight"], a["method.momentum.encoder.conv1.weight"]
    assert not torch.equal(online, copy)  # the copy trails the online network

    trained = get_method("byol").build_model(load_config("cifar10", over), 3)
    assert isinstance(trained.projector, BYOLProjectionHead)
    assert isinstance(
        get_method("byol")
        .from_config(load_config("cifar10", over), model=trained, data=None, feature_dim=512)
        .predictor,
        BYOLPredictionHead,
    )
    exported = _exported(cut, tmp_path)  # the online backbone, not the momentum copy
    torch.testing.assert_close(exported["conv1.weight"], b["model.encoder.conv1.weight"])
    capsys.readouterr()
    backbone = tmp_path / "exported" / "backbone.safetensors"
    assert (
        main(
            [
                "evaluate",
                "linear",
                "--checkpoint",
                str(backbone),
                "--data",
                str(cifar10_root),
                "--train-split",
                "train",
                "--test-split",
                "test",
                "--image-size",
                "16",
                "--limit-train",
                "60",
                "--limit-test",
                "30",
                "--epochs",
                "2",
                "--no-progress",
                "--out",
                str(cut),
            ]
        )
        == 0
    )
    assert "test top-1 (%)" in capsys.readouterr().out
