"""The hand-crafted representations (issue 3), checked against skimage, scipy and kymatio on real images."""

from __future__ import annotations

import numpy as np
import pytest
import torch

import mvmr.representations as reps
from mvmr.representations import (
    HOG,
    AugmentedPixels,
    LocalStd,
    Pixels,
    Representation,
    ScatNet,
    available,
    build,
    register,
)
from mvmr.representations import base as reps_base
from mvmr.representations.local_std import symmetric_pad

skimage_feature = pytest.importorskip("skimage.feature")
ndimage = pytest.importorskip("scipy.ndimage")

BUILT_INS = ["augmented_pixels", "hog", "local_std", "pixels", "scatnet"]


@pytest.fixture(autouse=True, scope="module")
def _one_thread() -> object:
    """One intra-op thread: on a busy 2-core machine kymatio's FFTs with 2 threads run ~50x slower."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def gray(images: torch.Tensor) -> torch.Tensor:
    """(B, 1, H, W): the channel mean (values that are no longer multiples of 1/255)."""
    return images.mean(1, keepdim=True)


def skimage_hog(images: torch.Tensor, **kwargs: object) -> np.ndarray:
    """skimage's HOG of each image (channel_axis=-1 for RGB, the 2-D image for grayscale)."""
    options = {"orientations": 24, "pixels_per_cell": (8, 8), "cells_per_block": (1, 1), "block_norm": "L2-Hys"}
    options.update(kwargs)
    out = []
    for image in images:
        if image.shape[0] == 1:
            out.append(skimage_feature.hog(image[0].numpy(), channel_axis=None, **options))
        else:
            out.append(skimage_feature.hog(image.permute(1, 2, 0).numpy(), channel_axis=-1, **options))
    return np.stack(out)


def l2_hys(hist: np.ndarray, eps: float = 1e-5) -> np.ndarray:
    """L2-Hys of each cell histogram (last axis), as skimage's _hog_normalize_block."""
    out = hist / np.sqrt(np.sum(hist**2, axis=-1, keepdims=True) + eps**2)
    out = np.minimum(out, 0.2)
    return out / np.sqrt(np.sum(out**2, axis=-1, keepdims=True) + eps**2)


# ----------------------------------------------------------------------------- registry


def test_registry_has_the_built_ins_and_builds_them_by_name() -> None:
    assert set(BUILT_INS) <= set(available())
    classes = {
        "pixels": Pixels,
        "scatnet": ScatNet,
        "hog": HOG,
        "local_std": LocalStd,
        "augmented_pixels": AugmentedPixels,
    }
    for name, cls in classes.items():
        rep = build(name)
        assert type(rep) is cls and rep.name == name and isinstance(rep, Representation)
    hog = build("hog", orientations=9, cell=4)
    assert (hog.orientations, hog.cell) == (9, 4)


def test_registry_unknown_name_and_duplicate_registration() -> None:
    with pytest.raises(ValueError, match="unknown representation 'nope'.*hog"):
        build("nope")
    with pytest.raises(ValueError, match="already registered"):
        register("hog")(Pixels)
    with pytest.raises(TypeError):
        build("hog", bins=24)  # a misspelt keyword is not silently ignored


def test_register_a_new_representation() -> None:
    @register("test-edges")
    class Edges(Representation):
        name = "test-edges"

        def output_dim(self, channels: int, height: int, width: int) -> int:
            return channels * height * (width - 1)

        def forward(self, images: torch.Tensor) -> torch.Tensor:
            return (images[..., 1:] - images[..., :-1]).flatten(1)

    try:
        assert "test-edges" in available()
        rep = build("test-edges")
        assert rep(torch.rand(2, 3, 4, 5)).shape == (2, rep.output_dim(3, 4, 5))
        assert register("test-edges")(Edges) is Edges  # re-registering the same class is fine
    finally:
        reps_base.REPRESENTATIONS.unregister("test-edges")


def test_deterministic_flags() -> None:
    assert {name: build(name).deterministic for name in BUILT_INS} == {
        "augmented_pixels": False,
        "hog": True,
        "local_std": True,
        "pixels": True,
        "scatnet": True,
    }


@pytest.mark.parametrize("name", BUILT_INS)
@pytest.mark.parametrize("channels", [1, 3])
def test_every_representation_on_gray_and_rgb(name: str, channels: int, cifar_images: torch.Tensor) -> None:
    images = cifar_images[:3] if channels == 3 else gray(cifar_images[:3])
    rep = build(name)
    out = rep(images)
    assert out.shape == (3, rep.output_dim(channels, 32, 32))
    assert out.dtype == torch.float32 and torch.isfinite(out).all()
    assert not out.requires_grad
    if rep.deterministic:
        assert torch.equal(out, rep(images))
    assert rep.state_dict() == {} or all(not v.requires_grad for v in rep.state_dict().values())


@pytest.mark.parametrize("name", BUILT_INS)
def test_bad_input_is_refused(name: str) -> None:
    rep = build(name)
    with pytest.raises(ValueError, match="B, C, H, W"):
        rep(torch.rand(3, 32, 32))
    with pytest.raises(ValueError, match="float"):
        rep(torch.zeros(1, 3, 32, 32, dtype=torch.uint8))


# ----------------------------------------------------------------------------- pixels


def test_pixels_is_the_flattened_image(cifar_images: torch.Tensor) -> None:
    images = cifar_images[:4]
    out = Pixels()(images.double())
    assert out.dtype == torch.float32
    assert torch.equal(out, images.reshape(4, -1))
    assert torch.equal(out[1].view(3, 32, 32), images[1])
    assert Pixels().output_dim(3, 96, 96) == 27648


# ----------------------------------------------------------------------------- HOG


@pytest.mark.parametrize("dataset", ["cifar", "imagenette"])
@pytest.mark.parametrize("colour", ["rgb", "gray"])
def test_hog_equals_skimage(
    dataset: str, colour: str, cifar_images: torch.Tensor, imagenette_images: torch.Tensor
) -> None:
    images = cifar_images[::4] if dataset == "cifar" else imagenette_images[::4]
    if colour == "gray":
        images = gray(images)
    ours = HOG()(images)
    expected = skimage_hog(images)
    assert ours.shape == expected.shape == (len(images), HOG().output_dim(images.shape[1], *images.shape[-2:]))
    np.testing.assert_allclose(ours.numpy(), expected, rtol=0, atol=1e-4)


def test_hog_other_settings_and_partial_cells_equal_skimage(imagenette_images: torch.Tensor) -> None:
    # 37 x 45 pixels: skimage ignores the rows/columns beyond the last whole cell.
    images = imagenette_images[:3, :, 5:42, 7:52]
    # 180/7 is inexact; for n = 78 the 90 degree edge is inexact and exact angles take the slow path
    for orientations, cell in [(9, 6), (7, 5), (24, 8), (78, 8)]:
        ours = HOG(orientations=orientations, cell=cell)(images)
        expected = skimage_hog(images, orientations=orientations, pixels_per_cell=(cell, cell))
        np.testing.assert_allclose(ours.numpy(), expected, rtol=0, atol=1e-4)


def test_hog_on_continuous_valued_images_equals_skimage(imagenette_images: torch.Tensor) -> None:
    # Bicubic-resized images: gradients are arbitrary floats, not multiples of 1/255.
    images = torch.nn.functional.interpolate(imagenette_images[:4], size=(40, 40), mode="bicubic").clamp(0, 1)
    np.testing.assert_allclose(HOG()(images).numpy(), skimage_hog(images), rtol=0, atol=1e-4)


def test_hog_without_block_norm_gives_skimages_cell_histograms(
    cifar_images: torch.Tensor, imagenette_images: torch.Tensor
) -> None:
    from skimage.feature import _hoghistogram
    from skimage.feature._hog import _hog_channel_gradient

    images = gray(imagenette_images[:3])
    raw = HOG(block_norm=False)(images).numpy().reshape(3, 12, 12, 24)
    for image, ours in zip(images, raw, strict=True):
        g_row, g_col = _hog_channel_gradient(image[0].numpy())
        hist = np.zeros((12, 12, 24))
        _hoghistogram.hog_histograms(g_col.astype(float), g_row.astype(float), 8, 8, 96, 96, 12, 12, 24, hist)
        np.testing.assert_allclose(ours, hist, rtol=1e-5, atol=1e-7)
    # RGB: normalising the raw histograms per cell gives skimage's (dominant-channel) HOG.
    images = cifar_images[:8]
    raw = HOG(block_norm=False)(images).numpy().reshape(8, 16, 24)
    assert (raw >= 0).all() and raw.max() > 0
    np.testing.assert_allclose(l2_hys(raw.astype(np.float64)).reshape(8, -1), skimage_hog(images), atol=1e-4)


def test_hog_per_channel(cifar_images: torch.Tensor) -> None:
    images = cifar_images[:6]
    per_channel = HOG(per_channel=True)
    out = per_channel(images)
    assert out.shape == (6, 3 * 384) == (6, per_channel.output_dim(3, 32, 32))
    expected = np.concatenate([skimage_hog(images[:, c : c + 1]) for c in range(3)], axis=1)
    np.testing.assert_allclose(out.numpy(), expected, rtol=0, atol=1e-4)
    # on a single channel it is the grayscale HOG
    one = gray(images)
    assert torch.equal(per_channel(one), HOG()(one))
    # and differs from the dominant-channel HOG of a colour image
    assert not torch.allclose(out[:, :384], HOG()(images))


def test_hog_flat_image_and_errors() -> None:
    flat = torch.full((2, 3, 16, 16), 0.5)
    assert torch.equal(HOG()(flat), torch.zeros(2, 4 * 24))
    with pytest.raises(ValueError, match="smaller than one 8x8 cell"):
        HOG()(torch.rand(1, 3, 7, 32))
    with pytest.raises(ValueError, match="smaller than one 8x8 cell"):
        HOG().output_dim(3, 32, 4)
    with pytest.raises(ValueError, match="orientations"):
        HOG(orientations=0)
    with pytest.raises(ValueError, match="cell"):
        HOG(cell=2.5)  # type: ignore[arg-type]


@pytest.mark.cuda
def test_hog_on_gpu_equals_cpu(imagenette_images: torch.Tensor) -> None:
    images = imagenette_images[:8]
    for hog in (HOG(), HOG(per_channel=True)):
        torch.testing.assert_close(hog(images.cuda()).cpu(), hog(images), rtol=0, atol=1e-5)


# ----------------------------------------------------------------------------- local std


def scipy_local_std(images: torch.Tensor, kernel: int) -> np.ndarray:
    return np.stack(
        [[ndimage.generic_filter(c, np.std, size=kernel, mode="reflect") for c in image.numpy()] for image in images]
    ).reshape(len(images), -1)


@pytest.mark.parametrize("kernel", [3, 5])
def test_local_std_equals_scipy_generic_filter(
    kernel: int, cifar_images: torch.Tensor, imagenette_images: torch.Tensor
) -> None:
    for images in (cifar_images[:3], gray(cifar_images[3:5]), imagenette_images[:1]):
        out = LocalStd(kernel=kernel)(images)
        assert out.shape == (len(images), images[0].numel())
        np.testing.assert_allclose(out.numpy(), scipy_local_std(images, kernel), rtol=0, atol=1e-5)


def test_local_std_is_zero_on_flat_regions_never_nan() -> None:
    levels = torch.arange(256, dtype=torch.float32) / 255
    flat = levels.view(-1, 1, 1, 1).expand(256, 3, 8, 8).contiguous()
    out = LocalStd()(flat)
    assert not torch.isnan(out).any() and torch.equal(out, torch.zeros_like(out))
    # a large offset with a tiny texture: E[x^2] - E[x]^2 cancels badly in float32
    x = 0.9 + 1e-6 * torch.rand(2, 1, 12, 12, generator=torch.Generator().manual_seed(0))
    out = LocalStd(kernel=5)(x)
    assert torch.isfinite(out).all()
    np.testing.assert_allclose(out.numpy(), scipy_local_std(x.double(), 5), atol=1e-9)


def test_symmetric_pad_is_scipy_reflect() -> None:
    x = torch.arange(12.0).view(1, 1, 3, 4)
    for pad in (0, 1, 2, 3, 5):  # wider than the image keeps reflecting
        expected = np.pad(x[0, 0].numpy(), pad, mode="symmetric")
        np.testing.assert_array_equal(symmetric_pad(x, pad)[0, 0].numpy(), expected)
    # torch's "reflect" (scipy's "mirror") would differ
    assert not torch.equal(symmetric_pad(x, 1), torch.nn.functional.pad(x, (1, 1, 1, 1), mode="reflect"))


def test_local_std_rejects_even_kernels() -> None:
    for bad in (2, 4, 0, -3):
        with pytest.raises(ValueError, match="odd"):
            LocalStd(kernel=bad)


# ----------------------------------------------------------------------------- ScatNet


def test_scatnet_shape_and_equality_with_kymatio(imagenette_images: torch.Tensor) -> None:
    from kymatio.torch import Scattering2D

    images = imagenette_images[:2]
    rep = ScatNet()
    out = rep(images)
    assert out.shape == (2, 139_968) == (2, rep.output_dim(3, 96, 96))
    assert out.dtype == torch.float32
    direct = Scattering2D(J=2, shape=(96, 96), L=8)
    expected = torch.cat([direct(images[:, c].contiguous()).reshape(2, -1) for c in range(3)], dim=1)
    torch.testing.assert_close(out, expected, rtol=1e-5, atol=1e-6)


def test_scatnet_builds_filters_once_and_keeps_them_out_of_the_state_dict(cifar_images: torch.Tensor) -> None:
    rep = ScatNet()
    first = rep(cifar_images[:2])
    module = rep.scattering(32, 32, torch.device("cpu"))
    second = rep(cifar_images[:2])
    assert rep.scattering(32, 32, torch.device("cpu")) is module
    assert len(rep._scatterings) == 1 and torch.equal(first, second)
    assert rep.state_dict() == {} and list(rep.parameters()) == []
    assert rep(gray(cifar_images[:2])).shape == (2, 81 * 8 * 8)
    assert len(rep._scatterings) == 1  # same size, same device: still one filter bank
    assert ScatNet(J=3, L=4).output_dim(3, 32, 32) == 3 * (1 + 12 + 48) * 4 * 4


def test_scatnet_refuses_sizes_it_cannot_handle() -> None:
    rep = ScatNet()
    for height, width in [(30, 32), (32, 2), (6, 6)]:
        with pytest.raises(ValueError, match="multiples of 2\\^J = 4"):
            rep(torch.rand(1, 3, height, width))
    with pytest.raises(ValueError, match="multiples"):
        rep.output_dim(3, 2, 2)
    with pytest.raises(ValueError, match="J"):
        ScatNet(J=0)


# ----------------------------------------------------------------------------- augmented pixels


def test_augmented_pixels_draws_each_image_independently(imagenette_images: torch.Tensor) -> None:
    same = imagenette_images[:1].expand(6, -1, -1, -1).contiguous()
    out = AugmentedPixels(generator=torch.Generator().manual_seed(0))(same)
    assert out.shape == (6, 3 * 96 * 96)
    for i in range(6):
        for j in range(i + 1, 6):
            assert not torch.allclose(out[i], out[j]), (i, j)
    # with crop only, each image still gets its own crop
    crop_only = {"flip": False, "color": False, "grayscale": False, "blur": False}
    crops = AugmentedPixels(**crop_only, generator=torch.Generator().manual_seed(1))(same)
    assert len({tuple(row[:50].tolist()) for row in crops}) == 6


def test_augmented_pixels_is_reproducible_with_a_generator(cifar_images: torch.Tensor) -> None:
    images = cifar_images[:5]

    def run(seed: int) -> torch.Tensor:
        return AugmentedPixels(size=24, generator=torch.Generator().manual_seed(seed))(images)

    assert torch.equal(run(3), run(3))
    assert not torch.equal(run(3), run(4))
    assert run(3).shape == (5, 3 * 24 * 24)
    assert torch.equal(AugmentedPixels(size=24, seed=3)(images), run(3))
    rep = AugmentedPixels(generator=torch.Generator().manual_seed(0))
    assert not torch.equal(rep(images), rep(images))  # the generator advances: a new draw each call
    with pytest.raises(ValueError, match="not both"):
        AugmentedPixels(seed=1, generator=torch.Generator())


def test_augmented_pixels_with_everything_off_is_pixels(cifar_images: torch.Tensor) -> None:
    images = cifar_images[:4]
    rep = AugmentedPixels(crop=False, flip=False, color=False, grayscale=False, blur=False)
    assert torch.equal(rep(images), Pixels()(images))
    assert torch.equal(rep(gray(images)), Pixels()(gray(images)))
    assert AugmentedPixels(size=16).output_dim(1, 32, 32) == 256


def test_package_exports() -> None:
    names = ["Representation", "register", "build", "available", "Pixels", "ScatNet", "HOG", "LocalStd"]
    for name in [*names, "AugmentedPixels"]:
        assert hasattr(reps, name) and name in reps.__all__
    import mvmr.cache

    assert "FeatureCache" not in reps.__all__  # the cache is a layer above the representations
    assert all(hasattr(mvmr.cache, n) for n in ("FeatureCache", "build_cache", "open_or_build"))


def test_hog_angle_of_exactly_180_degrees_is_bin_0_like_skimage():
    """atan2(1e-30, -1) is pi in float64: skimage's ``% 180`` makes it 0 (bin 0), it must not be dropped.
    L2 normalisation (not L2-Hys, whose clipping would hide one missing vote here) against skimage."""
    from skimage.feature import hog

    x = np.zeros((16, 16))
    x[5, 4] = 1.0  # gradients of 0, 90 and 180 degrees around it ...
    x[6, 5] = 1e-30  # ... and a row gradient of 1e-30 where the column gradient is -1
    ref = hog(x, orientations=24, pixels_per_cell=(8, 8), cells_per_block=(1, 1), block_norm="L2", feature_vector=True)
    raw = HOG(block_norm=False)(torch.from_numpy(x)[None, None]).double().numpy()[0].reshape(-1, 24)
    ours = raw / np.sqrt((raw**2).sum(1, keepdims=True) + 1e-10)
    np.testing.assert_allclose(ours.reshape(-1), ref, rtol=0, atol=1e-6)
