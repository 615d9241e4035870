"""Frozen teachers for distillation: every kind loads offline, embeds with its own preprocessing,
stays frozen, and caches like any deterministic representation."""

from __future__ import annotations

import json
import pickle
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from conftest import load_images
from torch import nn
from torchvision.transforms import InterpolationMode
from torchvision.transforms.v2 import functional as tvF

from mvmr.cache import CachedDataset, build_cache
from mvmr.errors import CheckpointError, DataError
from mvmr.representations import build
from mvmr.representations.teachers import ImagePreprocess, PrecomputedEmbeddings, Teacher, build_teacher
from mvmr.representations.teachers.clip import CLIP_MEAN, CLIP_STD
from mvmr.transforms.normalization import HALF_MEAN, IMAGENET_MEAN, IMAGENET_STD

# Imagenette class folder -> ImageNet-1k class index
IMAGENETTE_TO_IMAGENET = {
    "tench": 0,
    "english_springer": 217,
    "cassette_player": 482,
    "chain_saw": 491,
    "church": 497,
    "french_horn": 566,
    "garbage_truck": 569,
    "gas_pump": 571,
    "golf_ball": 574,
    "parachute": 701,
}


@pytest.fixture(autouse=True)
def _two_threads() -> None:
    torch.set_num_threads(2)


def manual_preprocess(
    images: torch.Tensor, *, resize: int, crop: int, mode: InterpolationMode, mean: tuple, std: tuple
) -> torch.Tensor:
    """Reference transform written with torchvision's functional ops."""
    x = tvF.resize(images, [resize], interpolation=mode, antialias=True)
    if mode == InterpolationMode.BICUBIC:
        x = x.clamp(0, 1)
    x = tvF.center_crop(x, [crop, crop])
    return tvF.normalize(x, list(mean), list(std))


def capture_input(module: nn.Module) -> tuple[list[torch.Tensor], torch.utils.hooks.RemovableHandle]:
    seen: list[torch.Tensor] = []
    handle = module.register_forward_pre_hook(lambda _m, args: seen.append(args[0].detach().clone()))
    return seen, handle


@pytest.fixture(scope="module")
def lite0() -> Teacher:
    teacher = build_teacher("efficientnet-lite0")
    assert isinstance(teacher, Teacher)
    return teacher


@pytest.fixture(scope="module")
def resnet18_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    import torchvision

    torch.manual_seed(0)
    path = tmp_path_factory.mktemp("weights") / "resnet18.pth"
    torch.save(torchvision.models.resnet18().state_dict(), path)
    return path


# --------------------------------------------------------------------------- efficientnet-lite0
def test_efficientnet_lite0_embeds_with_its_own_preprocessing(lite0: Teacher, imagenette_images: torch.Tensor) -> None:
    images = imagenette_images[:2]
    assert lite0.embed_dim == 1280 and lite0.input_size == 224
    assert lite0.mean == HALF_MEAN and lite0.std == (0.5, 0.5, 0.5)
    head = sum(p.numel() for p in lite0.head.parameters())
    assert (
        3.3e6 < lite0.num_parameters < 3.4e6 and 4.6e6 < lite0.num_parameters + head < 4.7e6
    )  # 4.65M with the classifier
    seen, handle = capture_input(lite0.net.model._conv_stem)
    try:
        out = lite0(images)
    finally:
        handle.remove()
    assert out.shape == (2, 1280) and out.dtype == torch.float32 and torch.isfinite(out).all()
    expected = manual_preprocess(
        images, resize=256, crop=224, mode=InterpolationMode.BICUBIC, mean=HALF_MEAN, std=(0.5,) * 3
    )
    assert seen[0].shape == (2, 3, 224, 224)
    torch.testing.assert_close(seen[0], expected, atol=1e-5, rtol=0)


def test_efficientnet_lite0_is_really_pretrained(lite0: Teacher, imagenette_root: Path) -> None:
    """Its ImageNet classifier recognises real Imagenette val images (chance: 0.1% top-1)."""
    n = 64
    images = load_images(imagenette_root / "val", n)
    paths = sorted((imagenette_root / "val").rglob("*.jpg"))
    paths = paths[:: max(1, len(paths) // n)][:n]  # the same selection as load_images
    labels = torch.tensor([IMAGENETTE_TO_IMAGENET[p.parent.name] for p in paths])
    logits = torch.cat([lite0.logits(images[i : i + 32]) for i in range(0, n, 32)])
    assert logits.shape == (n, 1000)
    top1 = (logits.argmax(1) == labels).float().mean().item()
    ten = torch.tensor(sorted(IMAGENETTE_TO_IMAGENET.values()))
    among_ten = (ten[logits[:, ten].argmax(1)] == labels).float().mean().item()
    assert top1 > 0.5, f"top-1 over 1000 classes {top1:.3f}"
    assert among_ten > 0.8, f"top-1 among the 10 Imagenette classes {among_ten:.3f}"


def test_efficientnet_lite0_input_size_is_configurable(imagenette_images: torch.Tensor) -> None:
    teacher = build_teacher("efficientnet-lite0", input_size=96, crop_pct=1.0)
    assert teacher.input_size == 96 and teacher.preprocess.resize_size == 96
    seen, handle = capture_input(teacher.net.model._conv_stem)
    try:
        out = teacher(imagenette_images[:2])
    finally:
        handle.remove()
    assert out.shape == (2, 1280)
    # 96 px images at input 96 and crop 1.0: only the normalisation is applied
    torch.testing.assert_close(seen[0], (imagenette_images[:2] - 0.5) / 0.5)


# --------------------------------------------------------------------------- torchvision / timm
def test_torchvision_resnet18_penultimate_features_and_preprocessing(
    resnet18_file: Path, imagenette_images: torch.Tensor
) -> None:
    import torchvision

    teacher = build_teacher("torchvision:resnet18", weights=resnet18_file)
    images = imagenette_images[:2]
    assert teacher.embed_dim == 512 and teacher.input_size == 224
    assert teacher.mean == IMAGENET_MEAN and teacher.std == IMAGENET_STD
    seen, handle = capture_input(teacher.net.conv1)
    try:
        out = teacher(images)
    finally:
        handle.remove()
    assert out.shape == (2, 512)
    expected = manual_preprocess(
        images, resize=256, crop=224, mode=InterpolationMode.BILINEAR, mean=IMAGENET_MEAN, std=IMAGENET_STD
    )
    torch.testing.assert_close(seen[0], expected, atol=1e-5, rtol=0)
    # the embedding is exactly the pooled input of the original classifier
    reference = torchvision.models.resnet18()
    reference.load_state_dict(torch.load(resnet18_file, weights_only=True))
    reference.eval()
    with torch.no_grad():
        logits = reference(expected)
    torch.testing.assert_close(teacher.logits(images), logits, atol=1e-4, rtol=1e-4)


def test_timm_tiny_model_uses_its_pretrained_cfg(tmp_path: Path, imagenette_images: torch.Tensor) -> None:
    import timm

    torch.manual_seed(0)
    file = tmp_path / "test_vit.pth"
    torch.save(timm.create_model("test_vit").state_dict(), file)
    teacher = build_teacher("timm:test_vit", weights=file)
    cfg = timm.data.resolve_data_config({}, model=timm.create_model("test_vit"))
    assert teacher.input_size == cfg["input_size"][-1] == 160
    assert teacher.mean == tuple(cfg["mean"]) and teacher.std == tuple(cfg["std"])
    assert teacher.preprocess.resize_size == int(160 / cfg["crop_pct"])
    images = imagenette_images[:2]
    seen, handle = capture_input(teacher.net.patch_embed.proj)
    try:
        out = teacher(images)
    finally:
        handle.remove()
    assert out.shape == (2, teacher.embed_dim)
    expected = manual_preprocess(
        images,
        resize=teacher.preprocess.resize_size,
        crop=160,
        mode=InterpolationMode.BICUBIC,
        mean=cfg["mean"],
        std=cfg["std"],
    )
    torch.testing.assert_close(seen[0], expected, atol=1e-5, rtol=0)


@pytest.mark.parametrize("spec", ["torchvision:resnet18", "timm:resnet18", "open_clip:ViT-B-16"])
def test_missing_weights_file_names_the_file(spec: str, tmp_path: Path) -> None:
    missing = tmp_path / "nowhere" / "teacher-weights.pth"
    with pytest.raises(CheckpointError, match="teacher-weights.pth") as info:
        build_teacher(spec, weights=missing)
    assert str(missing.resolve()) in str(info.value) and "weights=" in str(info.value)


def test_no_weights_needs_allow_random() -> None:
    with pytest.raises(ValueError, match="allow_random=True"):
        build_teacher("torchvision:resnet18")


def test_weights_that_do_not_fit_are_refused(resnet18_file: Path) -> None:
    with pytest.raises(CheckpointError, match="resnet18.pth"):
        build_teacher("torchvision:resnet34", weights=resnet18_file)


# --------------------------------------------------------------------------- CLIP
def test_open_clip_vit_b16_random_weights_give_512d(imagenette_images: torch.Tensor) -> None:
    teacher = build_teacher("open_clip:ViT-B-16", allow_random=True)
    assert teacher.embed_dim == 512 and teacher.input_size == 224
    assert teacher.mean == CLIP_MEAN and teacher.std == CLIP_STD
    assert 85e6 < teacher.num_parameters < 87e6  # image tower only (the paper's 86.2M)
    images = imagenette_images[:2]
    seen, handle = capture_input(teacher.net.conv1)
    try:
        out = teacher(images)
    finally:
        handle.remove()
    assert out.shape == (2, 512) and torch.isfinite(out).all()
    expected = manual_preprocess(
        images, resize=224, crop=224, mode=InterpolationMode.BICUBIC, mean=CLIP_MEAN, std=CLIP_STD
    )
    torch.testing.assert_close(seen[0], expected, atol=1e-5, rtol=0)


def _tiny_hf_clip(folder: Path) -> nn.Module:
    from transformers import CLIPVisionConfig, CLIPVisionModelWithProjection

    torch.manual_seed(0)
    config = CLIPVisionConfig(
        hidden_size=32,
        intermediate_size=64,
        num_hidden_layers=2,
        num_attention_heads=4,
        image_size=32,
        patch_size=8,
        projection_dim=24,
    )
    model = CLIPVisionModelWithProjection(config).eval()
    model.save_pretrained(folder)
    return model


def test_hf_clip_tiny_config_from_local_dir(tmp_path: Path, imagenette_images: torch.Tensor) -> None:
    model = _tiny_hf_clip(tmp_path / "clip")
    mean, std = (0.4, 0.45, 0.5), (0.2, 0.25, 0.3)
    (tmp_path / "clip" / "preprocessor_config.json").write_text(
        json.dumps(
            {
                "crop_size": {"height": 32, "width": 32},
                "size": {"shortest_edge": 36},
                "resample": 3,
                "image_mean": list(mean),
                "image_std": list(std),
                "do_resize": True,
                "do_center_crop": True,
            }
        )
    )
    teacher = build_teacher(f"hf-clip:{tmp_path / 'clip'}")
    assert teacher.embed_dim == 24 and teacher.input_size == 32 and teacher.preprocess.resize_size == 36
    assert teacher.mean == mean and teacher.std == std
    images = imagenette_images[:2]
    out = teacher(images)
    expected_input = manual_preprocess(images, resize=36, crop=32, mode=InterpolationMode.BICUBIC, mean=mean, std=std)
    with torch.no_grad():
        expected = model(pixel_values=expected_input).image_embeds
    assert out.shape == (2, 24)
    torch.testing.assert_close(out, expected, atol=1e-5, rtol=1e-4)


def test_hf_clip_without_preprocessor_config_uses_clip_defaults(tmp_path: Path) -> None:
    _tiny_hf_clip(tmp_path / "clip")
    teacher = build_teacher(f"hf-clip:{tmp_path / 'clip'}")
    assert teacher.input_size == 32 and teacher.mean == CLIP_MEAN and teacher.std == CLIP_STD
    with pytest.raises(CheckpointError, match="nowhere"):
        build_teacher(f"hf-clip:{tmp_path / 'nowhere'}")


# --------------------------------------------------------------------------- frozen, deterministic
def test_teacher_is_frozen_and_stays_in_eval_mode(resnet18_file: Path, imagenette_images: torch.Tensor) -> None:
    teacher = build_teacher("torchvision:resnet18", weights=resnet18_file)
    container = nn.ModuleDict({"teacher": teacher, "student": nn.Linear(3, 3)})
    container.train()
    assert container["student"].training
    assert not any(m.training for m in teacher.modules())
    assert not any(p.requires_grad for p in teacher.parameters())
    stats = {k: v.clone() for k, v in teacher.state_dict().items() if "running" in k or "num_batches" in k}
    images = imagenette_images[:2].clone().requires_grad_(True)
    out = teacher(images)
    assert not out.requires_grad and out.grad_fn is None
    for key, value in teacher.state_dict().items():
        if key in stats:
            assert torch.equal(value, stats[key]), key
    # in a student's graph the teacher output is a constant
    student = nn.Linear(512, 8)
    student(out).sum().backward()
    assert student.weight.grad is not None and all(p.grad is None for p in teacher.parameters())


def test_grayscale_is_repeated_to_three_channels(lite0: Teacher, imagenette_images: torch.Tensor) -> None:
    gray = imagenette_images[:2].mean(dim=1, keepdim=True)
    torch.testing.assert_close(lite0(gray), lite0(gray.repeat(1, 3, 1, 1)))
    with pytest.raises(ValueError, match="channels"):
        lite0(torch.rand(1, 4, 32, 32))


def test_cached_teacher_features_equal_fresh_ones(tmp_path: Path, imagenette_images: torch.Tensor) -> None:
    teacher = build_teacher("efficientnet-lite0", input_size=96)
    images = imagenette_images[:6]
    dataset = [(img, -1) for img in images]
    cache = build_cache(
        tmp_path / "cache", dataset=dataset, representations=[teacher], image_size=96, batch_size=4, progress=False
    )
    cached = cache.get(torch.tensor([5, 0, 3]))["teacher"]
    fresh = teacher(images[[5, 0, 3]])
    torch.testing.assert_close(cached, fresh, atol=2e-3 * float(fresh.abs().max()), rtol=1e-3)
    manifest = json.loads((tmp_path / "cache" / "manifest.json").read_text())
    config = manifest["representations"][0]["config"]
    assert config["spec"] == "efficientnet-lite0" and config["preprocess"]["input_size"] == 96
    assert config["weights"]["hash"]


# --------------------------------------------------------------------------- precomputed embeddings
def test_precomputed_embeddings_read_like_a_cache(tmp_path: Path) -> None:
    rows = np.random.default_rng(0).normal(size=(10, 7)).astype(np.float16)
    file = tmp_path / "clip.npy"
    np.save(file, rows)
    emb = build_teacher(f"embeddings:{file}", dataset_length=10)
    assert isinstance(emb, PrecomputedEmbeddings)
    assert emb.names == ["teacher"] and len(emb) == 10 and emb.dim == 7
    got = emb.get(torch.tensor([3, 1, 3]))["teacher"]
    assert got.dtype == torch.float32 and got.shape == (3, 7)
    torch.testing.assert_close(got, torch.from_numpy(rows[[3, 1, 3]].astype(np.float32)))
    assert emb[2]["teacher"].shape == (7,)
    clone = pickle.loads(pickle.dumps(emb))
    torch.testing.assert_close(clone.get([4])["teacher"], emb.get([4])["teacher"])
    item = CachedDataset([(torch.zeros(3, 4, 4), 0)] * 10, emb)[4]
    assert item[-1]["teacher"].shape == (7,)
    json.dumps(emb.config())
    with pytest.raises(DataError, match="10 rows but the dataset has 12"):
        build_teacher(f"embeddings:{file}", dataset_length=12)
    np.save(tmp_path / "flat.npy", np.zeros(5, dtype=np.float32))
    with pytest.raises(DataError, match="2-D"):
        build_teacher(f"embeddings:{tmp_path / 'flat.npy'}")
    with pytest.raises(IndexError):
        emb.get([10])


# --------------------------------------------------------------------------- factory / registry
def test_registry_builds_a_teacher_named_teacher() -> None:
    import mvmr.representations.teachers  # noqa: F401  (registers "teacher")

    rep = build("teacher", spec="efficientnet-lite0", input_size=64)
    assert isinstance(rep, Teacher) and rep.name == "teacher" and rep.deterministic
    assert rep.output_dim(3, 96, 96) == 1280
    json.dumps(rep.config())
    with pytest.raises(ValueError, match="build_teacher"):
        build("teacher", spec="embeddings:x.npy")


def test_unknown_kind_lists_the_kinds() -> None:
    with pytest.raises(ValueError, match="open_clip.*hf-clip.*torchvision.*timm.*efficientnet-lite0.*embeddings"):
        build_teacher("caffe:alexnet")
    with pytest.raises(ValueError, match="does not take"):
        build_teacher("efficientnet-lite0", bogus=1)


def test_missing_backend_says_which_extra(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "open_clip", None)
    with pytest.raises(ImportError, match=r"pip install mvmr\[teachers\]"):
        build_teacher("open_clip:ViT-B-16", allow_random=True)


def test_preprocess_keeps_aspect_ratio_and_validates() -> None:
    pre = ImagePreprocess.from_crop_pct(input_size=8, crop_pct=0.5)
    assert pre.resize_size == 16
    out = pre.resize_and_crop(torch.rand(1, 3, 20, 40))  # -> 16x32 -> centre 8x8
    assert out.shape == (1, 3, 8, 8)
    with pytest.raises(ValueError):
        ImagePreprocess(input_size=8, resize_size=4)
    with pytest.raises(ValueError):
        ImagePreprocess.from_crop_pct(input_size=8, crop_pct=1.5)


def test_library_download_path_fails_offline_with_a_clear_message(monkeypatch: pytest.MonkeyPatch) -> None:
    """weights='DEFAULT' runs torchvision's own cache/download code; its failure says where the file goes."""
    from urllib.error import URLError

    from torchvision.models._api import WeightsEnum

    def offline(self: object, *args: object, **kwargs: object) -> None:
        raise URLError("offline")

    monkeypatch.setattr(WeightsEnum, "get_state_dict", offline)
    with pytest.raises(CheckpointError, match=r"resnet18-f37072fd\.pth.*weights=") as info:
        build_teacher("torchvision:resnet18", weights="DEFAULT")
    assert "checkpoints" in str(info.value)
