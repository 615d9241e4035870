"""mvmr.models: encoders, projector, MVMRModel, and backbone export/import."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
import torch
from torch import nn

from mvmr.errors import CheckpointError, ConfigError
from mvmr.models import (
    MVMRModel,
    Projector,
    build_encoder,
    build_model,
    encoder_spec,
    load_backbone,
    load_backbone_model,
    parse_projector_spec,
    save_backbone,
)
from mvmr.utils import atomic
from mvmr.utils.atomic import atomic_torch_save


@pytest.fixture(scope="module")
def small_model() -> MVMRModel:
    torch.manual_seed(0)
    return build_model("resnet18", "64-32", small_images=True).eval()


# --------------------------------------------------------------------------- encoders


@pytest.mark.parametrize(("name", "dim"), [("resnet18", 512), ("resnet34", 512), ("resnet50", 2048)])
def test_torchvision_encoder_dims(name: str, dim: int) -> None:
    encoder, feature_dim = build_encoder(name)
    assert feature_dim == dim and isinstance(encoder.fc, nn.Identity)
    with torch.no_grad():
        out = encoder.eval()(torch.rand(2, 3, 64, 64))
    assert out.shape == (2, dim)
    assert encoder_spec(encoder).feature_dim == dim


def test_small_images_stem(cifar_images: torch.Tensor) -> None:
    x = cifar_images[:2]
    small, _ = build_encoder("resnet18", small_images=True)
    plain, _ = build_encoder("resnet18")
    assert small.conv1.kernel_size == (3, 3) and small.conv1.stride == (1, 1)
    assert isinstance(small.maxpool, nn.Identity)
    with torch.no_grad():
        stem = small.maxpool(small.relu(small.bn1(small.conv1(x))))
        plain_stem = plain.maxpool(plain.relu(plain.bn1(plain.conv1(x))))
        assert stem.shape == (2, 64, 32, 32) and plain_stem.shape == (2, 64, 8, 8)
        assert small.layer4(small.layer3(small.layer2(small.layer1(stem)))).shape == (2, 512, 4, 4)
        assert small.eval()(x).shape == (2, 512)


@pytest.mark.parametrize("small_images", [False, True])
def test_one_channel_input(small_images: bool) -> None:
    encoder, dim = build_encoder("resnet18", small_images=small_images, in_chans=1)
    assert encoder.conv1.in_channels == 1
    with torch.no_grad():
        assert encoder.eval()(torch.rand(2, 1, 28, 28)).shape == (2, dim)


def test_timm_encoder() -> None:
    pytest.importorskip("timm")
    encoder, dim = build_encoder("timm:resnet10t", in_chans=1)
    with torch.no_grad():
        out = encoder.eval()(torch.rand(2, 1, 32, 32))
    assert out.shape == (2, dim) and dim == 512
    assert encoder_spec(encoder).name == "timm:resnet10t"


def test_encoder_errors(monkeypatch: pytest.MonkeyPatch) -> None:
    with pytest.raises(ConfigError, match="resnet101"):
        build_encoder("resnet101")
    with pytest.raises(ConfigError, match="no_such_net"):
        build_encoder("timm:no_such_net")
    with pytest.raises(ConfigError, match="small_images"):
        build_encoder("timm:resnet10t", small_images=True)
    monkeypatch.setitem(sys.modules, "timm", None)  # makes `import timm` fail
    with pytest.raises(ConfigError, match="pip install timm"):
        build_encoder("timm:resnet10t")


# --------------------------------------------------------------------------- projector


def test_projector_spec_parsing() -> None:
    assert parse_projector_spec("8192-8192-8192") == [8192, 8192, 8192]
    assert parse_projector_spec(" 512 ") == [512]
    assert parse_projector_spec("") == []
    for bad in ("8192-abc", "8192--8192", "-", "0-16", "16-", "1.5"):
        with pytest.raises(ConfigError, match=repr(bad).replace("(", r"\(").replace(".", r"\.")):
            parse_projector_spec(bad)


def test_projector_structure() -> None:
    proj = Projector("32-16-8", 64)
    kinds = [type(m) for m in proj.layers]
    assert kinds == [nn.Linear, nn.BatchNorm1d, nn.ReLU, nn.Linear, nn.BatchNorm1d, nn.ReLU, nn.Linear]
    assert [(m.in_features, m.out_features) for m in proj.layers if isinstance(m, nn.Linear)] == [
        (64, 32),
        (32, 16),
        (16, 8),
    ]
    assert proj.layers[-1].bias is not None and proj.layers[0].bias is None
    assert proj.out_dim == 8 and proj(torch.randn(4, 64)).shape == (4, 8)
    single = Projector("10", 64)
    assert len(single.layers) == 1 and single.out_dim == 10
    ident = Projector("", 64)
    h = torch.randn(3, 64)
    assert ident.out_dim == 64 and torch.equal(ident(h), h)
    with pytest.raises(ValueError, match=r"\(B, 64\)"):
        proj(torch.randn(4, 63))


def test_paper_projector_shapes() -> None:
    with torch.device("meta"):  # no memory for the 150M parameters
        proj = Projector("8192-8192-8192", 2048)
    linears = [m for m in proj.layers if isinstance(m, nn.Linear)]
    assert [tuple(m.weight.shape) for m in linears] == [(8192, 2048), (8192, 8192), (8192, 8192)]
    assert sum(isinstance(m, nn.BatchNorm1d) for m in proj.layers) == 2 and proj.out_dim == 8192


# --------------------------------------------------------------------------- model


def test_model_forward_and_features(small_model: MVMRModel, cifar_images: torch.Tensor) -> None:
    x = cifar_images[:4]
    with torch.no_grad():
        z = small_model(x)
        h = small_model.features(x)
        h2, z2 = small_model.forward_with_features(x)
        manual = small_model.encoder(
            (x - torch.tensor([0.485, 0.456, 0.406]).view(1, 3, 1, 1))
            / torch.tensor([0.229, 0.224, 0.225]).view(1, 3, 1, 1)
        )
    assert z.shape == (4, 32) and h.shape == (4, 512)
    torch.testing.assert_close(h, manual)
    torch.testing.assert_close(h2, h)
    torch.testing.assert_close(z2, z)
    assert "mean" in small_model.state_dict() and "std" in small_model.state_dict()
    assert all(not k.startswith(("projector", "mean", "std")) for k in small_model.backbone_state_dict())
    with pytest.raises(ValueError, match=r"\(4, 1, 32, 32\)"):
        small_model(x[:, :1])


def test_build_model_defaults_and_errors() -> None:
    gray = build_model("resnet18", "", in_chans=1)
    assert gray.mean_values == (0.5,) and gray.projector.out_dim == 512
    with pytest.raises(ConfigError, match="mean"):
        build_model("resnet18", "", in_chans=1, mean=(0.1, 0.2, 0.3), std=(1.0, 1.0, 1.0))
    with pytest.raises(ConfigError, match="8192-x"):
        build_model("resnet18", "8192-x")


# --------------------------------------------------------------------------- export / import


@pytest.mark.parametrize("fmt", ["safetensors", "pt"])
def test_backbone_roundtrip(small_model: MVMRModel, cifar_images: torch.Tensor, tmp_path: Path, fmt: str) -> None:
    path = save_backbone(small_model, tmp_path / f"backbone.{fmt}", format=fmt, metadata={"epochs": 3})
    encoder, meta = load_backbone(path)
    assert meta["encoder"] == "resnet18" and meta["small_images"] is True and meta["in_chans"] == 3
    assert meta["feature_dim"] == 512 and meta["epochs"] == 3
    assert meta["mean"] == (0.485, 0.456, 0.406) and meta["std"] == (0.229, 0.224, 0.225)
    for key, value in small_model.backbone_state_dict().items():
        assert torch.equal(encoder.state_dict()[key], value), key
    x = cifar_images[:2, :, 8:24, 8:24]
    with torch.no_grad():
        restored = load_backbone_model(path).eval()
        torch.testing.assert_close(restored.features(x), small_model.features(x), rtol=0, atol=0)
    assert [p.name for p in tmp_path.iterdir()] == [path.name]  # no temp files left


def test_weights_argument_loads_strictly(small_model: MVMRModel, tmp_path: Path) -> None:
    path = atomic_torch_save(small_model.backbone_state_dict(), tmp_path / "raw.pt")
    encoder, _ = build_encoder("resnet18", small_images=True, weights=path)
    assert torch.equal(encoder.conv1.weight, small_model.encoder.conv1.weight)
    with pytest.raises(CheckpointError, match="conv1.weight: file"):
        build_encoder("resnet18", weights=path)  # 7x7 stem vs the saved 3x3 one


def test_strict_mismatch_names_keys(small_model: MVMRModel, tmp_path: Path) -> None:
    path = save_backbone(small_model, tmp_path / "r18.safetensors")
    other, _ = build_encoder("resnet34", small_images=True)
    with pytest.raises(CheckpointError) as info:
        load_backbone(path, encoder=other)
    message = str(info.value)
    assert str(path) in message and "missing keys" in message and "layer1.2.conv1.weight" in message
    state = dict(small_model.backbone_state_dict())
    state["head.weight"] = torch.zeros(2)
    extra = atomic_torch_save({"state_dict": state}, tmp_path / "extra.pt")
    with pytest.raises(CheckpointError, match="unexpected keys \\(1\\): head.weight"):
        load_backbone(extra, encoder=build_encoder("resnet18", small_images=True)[0])
    prefixed = atomic_torch_save(
        {f"encoder.{k}": v for k, v in small_model.backbone_state_dict().items()}, tmp_path / "prefixed.pt"
    )
    with pytest.raises(CheckpointError, match="prefix 'encoder.'"):
        build_encoder("resnet18", small_images=True, weights=prefixed)
    with pytest.raises(CheckpointError, match="pass encoder="):
        load_backbone(extra)  # no metadata to rebuild from


def test_missing_and_corrupt_files(tmp_path: Path) -> None:
    with pytest.raises(CheckpointError, match="not found.*nothing.pt"):
        load_backbone(tmp_path / "nothing.pt")
    garbage = tmp_path / "garbage.pt"
    garbage.write_bytes(b"PK\x03\x04 definitely not a zip archive")
    with pytest.raises(CheckpointError, match="garbage.pt"):
        load_backbone(garbage)
    fake_safetensors = tmp_path / "broken.safetensors"
    fake_safetensors.write_bytes((100).to_bytes(8, "little") + b'{"a": ')
    with pytest.raises(CheckpointError, match="broken.safetensors"):
        load_backbone(fake_safetensors)


def test_bare_encoder_export_needs_normalisation(tmp_path: Path) -> None:
    encoder, _ = build_encoder("resnet18", small_images=True)
    with pytest.raises(CheckpointError, match="mean, std"):
        save_backbone(encoder, tmp_path / "bare.safetensors")
    path = save_backbone(encoder, tmp_path / "bare.safetensors", metadata={"mean": (0.5,) * 3, "std": (0.25,) * 3})
    assert load_backbone(path)[1]["std"] == (0.25, 0.25, 0.25)
    with pytest.raises(CheckpointError, match="format"):
        save_backbone(encoder, tmp_path / "x.onnx", format="onnx", metadata={"mean": (0.5,) * 3, "std": (0.5,) * 3})


def test_atomic_write_leaves_no_partial_file(
    small_model: MVMRModel, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    target = tmp_path / "backbone.pt"

    def failing_save(obj: object, f: object, *args: object, **kwargs: object) -> None:
        f.write(b"PK partial bytes")  # type: ignore[attr-defined]
        raise OSError("disk full")

    monkeypatch.setattr(atomic.torch, "save", failing_save)
    with pytest.raises(OSError, match="disk full"):
        save_backbone(small_model, target, format="pt")
    assert list(tmp_path.iterdir()) == []
    monkeypatch.undo()

    save_backbone(small_model, target, format="safetensors")
    before = target.read_bytes()

    def failing_fsync(fd: int) -> None:
        raise OSError("I/O error")

    monkeypatch.setattr(atomic.os, "fsync", failing_fsync)
    with pytest.raises(OSError, match="I/O error"):
        save_backbone(small_model, target, format="safetensors", metadata={"epochs": 99})
    assert target.read_bytes() == before  # the old file is untouched
    assert [p.name for p in tmp_path.iterdir()] == ["backbone.pt"]
