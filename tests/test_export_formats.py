"""``mvmr export --format {timm,torchvision,hf}``, ``mvmr.from_pretrained`` and ``hubconf.py``.

Each export is loaded by the library it is meant for (timm, torchvision, huggingface_hub's
PyTorchModelHubMixin, torch.hub) and must give mvmr's own features on a batch.
"""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
import torch

import mvmr
from mvmr.cli import main
from mvmr.config import to_dict
from mvmr.errors import CheckpointError
from mvmr.evaluation.results import ProtocolResult, save_result
from mvmr.models import EncoderSpec, build_model, save_backbone
from mvmr.models.interop import check_exportable, timm_arch, write_timm
from mvmr.training.export import model_from_checkpoint

sys.path.insert(0, str(Path(__file__).parent))
from _training_support import tiny_config  # noqa: E402

REPO = Path(__file__).resolve().parents[1]


def _perturb_batchnorm(model: torch.nn.Module, seed: int = 0) -> None:
    """Non-trivial running statistics, so that a BatchNorm loaded wrongly changes the features."""
    g = torch.Generator().manual_seed(seed)
    for m in model.modules():
        if isinstance(m, torch.nn.BatchNorm2d):
            m.running_mean.copy_(torch.randn(m.num_features, generator=g) * 0.1)
            m.running_var.copy_(torch.rand(m.num_features, generator=g) + 0.5)


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A run folder as ``mvmr pretrain`` and ``mvmr evaluate`` leave it (checkpoint, one result),
    holding a randomly initialised resnet18: the exports are about the file formats, not training."""
    run = tmp_path_factory.mktemp("export") / "run"
    config = tiny_config(Path("/data/cifar10"), run)  # the data are named in the card, never read
    torch.manual_seed(0)
    model = build_model("resnet18", "32-32")
    _perturb_batchnorm(model)
    ckpt = run / "checkpoints" / "last.ckpt"
    ckpt.parent.mkdir(parents=True)
    progress = {"total": {"processed": 2}, "current": {"processed": 2}}
    torch.save(
        {
            "epoch": 1,
            "global_step": 8,
            "loops": {"fit_loop": {"epoch_progress": progress}},
            "state_dict": {f"model.{k}": v for k, v in model.state_dict().items()},
            "hyper_parameters": to_dict(config),
        },
        ckpt,
    )
    save_result(
        run,
        ProtocolResult(
            protocol="linear",
            metrics={"test_top1": 42.5, "num_test": 100},
            encoder="checkpoint:last.ckpt",
            dataset="imagefolder cifar10 test",
        ),
    )
    return ckpt


@pytest.fixture(scope="module")
def reference(checkpoint: Path) -> tuple[torch.Tensor, torch.Tensor, torch.nn.Module]:
    """``(images in [0, 1], mvmr's features of them, the model)``."""
    model, _ = model_from_checkpoint(checkpoint)
    x = torch.rand(4, 3, 32, 32, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        return x, model.features(x), model


def _normalise(x: torch.Tensor, mean: object, std: object) -> torch.Tensor:
    return (x - torch.tensor(mean).view(1, -1, 1, 1)) / torch.tensor(std).view(1, -1, 1, 1)


def test_safetensors_export_loads_with_the_safetensors_library(checkpoint: Path, reference, tmp_path: Path) -> None:
    import torchvision
    from safetensors import safe_open
    from safetensors.torch import load_file

    x, features, model = reference
    assert main(["export", str(checkpoint), "--out", str(tmp_path)]) == 0  # the default format
    resnet = torchvision.models.resnet18()
    resnet.fc = torch.nn.Identity()
    resnet.load_state_dict(load_file(tmp_path / "backbone.safetensors"), strict=True)
    with torch.no_grad():
        torch.testing.assert_close(resnet.eval()(model.normalize(x)), features)
    with safe_open(str(tmp_path / "backbone.safetensors"), framework="pt") as f:
        assert '"encoder": "resnet18"' in f.metadata()["mvmr"]  # how mvmr rebuilds it


def test_timm_export_loads_with_create_model_and_gives_mvmrs_features(
    checkpoint: Path, reference, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    import timm
    from safetensors.torch import load_file

    x, features, model = reference
    assert main(["export", str(checkpoint), "--out", str(tmp_path), "--format", "timm"]) == 0
    assert "timm.create_model" in capsys.readouterr().out  # the command says how to load it
    weights = tmp_path / "model.safetensors"
    # the line: the weight file, strict keys against timm's own model
    loaded = timm.create_model(
        "resnet18", pretrained=True, pretrained_cfg_overlay=dict(file=str(weights)), num_classes=0
    ).eval()
    assert set(load_file(weights)) == set(loaded.state_dict())
    with torch.no_grad():
        torch.testing.assert_close(loaded(model.normalize(x)), features)
    # the folder: timm reads the normalisation from config.json
    folder = timm.create_model(f"local-dir:{tmp_path}", pretrained=True).eval()
    data = timm.data.resolve_data_config({}, model=folder)
    assert data["input_size"] == (3, 16, 16) and data["crop_pct"] == 1.0
    with torch.no_grad():
        torch.testing.assert_close(folder(_normalise(x, data["mean"], data["std"])), features)
    assert "library_name: timm" in (tmp_path / "README.md").read_text()


def test_timm_export_of_a_one_channel_encoder_needs_in_chans(tmp_path: Path) -> None:
    import timm

    model = build_model("resnet18", "", in_chans=1).eval()
    _perturb_batchnorm(model)
    write_timm(model.encoder, model.spec, tmp_path, mean=model.mean_values, std=model.std_values, image_size=28)
    loaded = timm.create_model(f"local-dir:{tmp_path}", pretrained=True, in_chans=1).eval()
    x = torch.rand(2, 1, 28, 28)
    with torch.no_grad():
        torch.testing.assert_close(loaded(model.normalize(x)), model.features(x))


def test_torchvision_export_loads_strictly_once_fc_is_identity(checkpoint: Path, reference, tmp_path: Path) -> None:
    import torchvision

    x, features, model = reference
    assert main(["export", str(checkpoint), "--out", str(tmp_path), "--format", "torchvision"]) == 0
    state = torch.load(tmp_path / "resnet18.pth", weights_only=True)
    resnet = torchvision.models.resnet18()
    missing, unexpected = resnet.load_state_dict(state, strict=False)
    assert (sorted(missing), unexpected) == (["fc.bias", "fc.weight"], [])  # fc, and nothing else
    resnet.fc = torch.nn.Identity()
    resnet.load_state_dict(state, strict=True)
    with torch.no_grad():
        torch.testing.assert_close(resnet.eval()(model.normalize(x)), features)
    assert "model.fc = torch.nn.Identity()" in (tmp_path / "README.md").read_text()


def test_hf_export_is_an_uploadable_folder_with_a_model_card(checkpoint: Path, reference, tmp_path: Path) -> None:
    from huggingface_hub import ModelCard

    from mvmr.models.hub import PretrainedEncoder

    x, features, _ = reference
    assert main(["export", str(checkpoint), "--out", str(tmp_path), "--format", "hf"]) == 0
    assert sorted(p.name for p in tmp_path.iterdir()) == ["README.md", "config.json", "model.safetensors"]
    card = ModelCard.load(tmp_path / "README.md")  # the Hub's own parser of the metadata
    assert card.data.library_name == "mvmr" and "self-supervised-learning" in card.data.tags
    for expected in (
        "MV-MR: clean + augmented view",  # the method
        "imagefolder `/data/cifar10`, split `test`",  # the data
        "2 epochs of 2, 8 optimiser steps",  # how far it trained
        "### linear",
        "| test top-1 (%) | 42.50 |",  # every result of the run folder
        "lambda_: 1.0",
        "image_size: 16",
    ):  # the resolved config
        assert expected in card.text, expected
    for loaded in (mvmr.from_pretrained(tmp_path), PretrainedEncoder.from_pretrained(tmp_path)):
        with torch.no_grad():
            torch.testing.assert_close(loaded(x), features)


def test_the_command_offers_every_format() -> None:
    from mvmr.commands.export import FORMATS
    from mvmr.workflows.export import EXPORT_FORMATS

    assert FORMATS == EXPORT_FORMATS  # --format's choices, kept in the command so that --help stays fast


def test_from_pretrained_failures_are_clear(tmp_path: Path) -> None:
    with pytest.raises(CheckpointError, match="cannot load 'nobody/no-such-encoder' from the Hugging Face Hub"):
        mvmr.from_pretrained("nobody/no-such-encoder", local_files_only=True)
    with pytest.raises(CheckpointError, match="not an mvmr Hub folder"):
        mvmr.from_pretrained(tmp_path)
    with pytest.raises(CheckpointError, match="neither a file, a folder nor a Hugging Face repository id"):
        mvmr.from_pretrained(tmp_path / "missing")


def test_encoders_without_an_equivalent_are_refused_with_the_reason(
    checkpoint: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    cifar_stem = EncoderSpec("resnet18", small_images=True, in_chans=3, feature_dim=512)
    for fmt in ("timm", "torchvision"):
        with pytest.raises(CheckpointError, match=f"small_images=True to {fmt}: its CIFAR-style stem"):
            check_exportable(cifar_stem, fmt)
    with pytest.raises(CheckpointError, match="1-channel resnet18 to torchvision: torchvision's ResNets have a 3-chan"):
        check_exportable(EncoderSpec("resnet18", small_images=False, in_chans=1, feature_dim=512), "torchvision")
    assert timm_arch(EncoderSpec("timm:resnet18.a1_in1k", small_images=False, in_chans=3, feature_dim=512)) == (
        "resnet18.a1_in1k"
    )  # a timm: encoder exports to timm under its own name
    with pytest.raises(CheckpointError, match="only resnet18, resnet34, resnet50 are torchvision models"):
        check_exportable(EncoderSpec("timm:resnet18", small_images=False, in_chans=3, feature_dim=512), "torchvision")
    # through the command: one line on stderr, nothing written
    ckpt = torch.load(checkpoint, weights_only=True)
    ckpt["hyper_parameters"]["model"]["small_images"] = True
    model = build_model("resnet18", "32-32", small_images=True)
    ckpt["state_dict"] = {f"model.{k}": v for k, v in model.state_dict().items()}
    torch.save(ckpt, tmp_path / "small.ckpt")
    assert main(["export", str(tmp_path / "small.ckpt"), "--out", str(tmp_path / "out"), "--format", "timm"]) == 2
    assert "its CIFAR-style stem (3x3 stride-1 first conv, no max-pool) has no timm" in capsys.readouterr().err
    assert not (tmp_path / "out").exists()


def test_hubconf_loads_an_export_with_torch_hub(tmp_path: Path) -> None:
    torch.manual_seed(0)
    model = build_model("resnet50", "").eval()
    _perturb_batchnorm(model)
    weights = save_backbone(model, tmp_path / "backbone.safetensors")
    loaded = torch.hub.load(str(REPO), "mvmr_resnet50", source="local", weights=str(weights))
    x = torch.rand(2, 3, 32, 32)
    with torch.no_grad():
        torch.testing.assert_close(loaded(x), model.features(x))
    with pytest.raises(CheckpointError, match="holds a resnet50 encoder, not resnet18; load it with mvmr_resnet50"):
        torch.hub.load(str(REPO), "mvmr_resnet18", source="local", weights=str(weights))
