"""PaperAugmentation and augment_batch: the paper's augmentation of one image, reproducible."""

from __future__ import annotations

import pytest
import torch

from mvmr.transforms.augmentation import PaperAugmentation, _blur_kernel, _Random, augment_batch

ALL_OFF = {"crop": False, "flip": False, "color": False, "grayscale": False, "blur": False}


def only(part: str, **kwargs: object) -> dict[str, object]:
    return {**ALL_OFF, part: True, **kwargs}


def seeded(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


@pytest.fixture(autouse=True, scope="module")
def _one_thread() -> object:
    """One intra-op thread: many tiny ops on a busy 2-core machine are much faster without a team."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def image(imagenette_images: torch.Tensor) -> torch.Tensor:
    return imagenette_images[3]


def test_identity_with_every_part_off(image: torch.Tensor) -> None:
    aug = PaperAugmentation(96, **ALL_OFF)
    assert torch.equal(aug(image, generator=seeded(0)), image)
    assert torch.equal(aug(image[:1]), image[:1])
    # without crop a different size is a plain resize
    assert PaperAugmentation(48, **ALL_OFF)(image).shape == (3, 48, 48)


@pytest.mark.parametrize("channels", [1, 3])
def test_full_augmentation_shape_range_and_change(image: torch.Tensor, channels: int) -> None:
    img = image if channels == 3 else image.mean(0, keepdim=True)
    aug = PaperAugmentation(64)
    g = seeded(0)
    for _ in range(10):
        out = aug(img, generator=g)
        assert out.shape == (channels, 64, 64) and out.dtype == img.dtype
        assert out.min() >= 0 and out.max() <= 1
    assert not torch.allclose(aug(img, generator=g), aug(img, generator=g))


def test_same_seed_same_result_different_seed_different(image: torch.Tensor) -> None:
    aug = PaperAugmentation(96)
    assert torch.equal(aug(image, generator=seeded(5)), aug(image, generator=seeded(5)))
    assert not torch.equal(aug(image, generator=seeded(5)), aug(image, generator=seeded(6)))
    torch.manual_seed(11)
    a = aug(image)
    torch.manual_seed(11)
    assert torch.equal(a, aug(image))  # without a generator: torch's global one


def test_crop_boxes_follow_scale_and_ratio() -> None:
    aug = PaperAugmentation(32)
    rand = _Random(seeded(0))
    areas = []
    for _ in range(300):
        top, left, h, w = aug._crop_box(60, 80, rand)
        assert 0 <= top <= 60 - h and 0 <= left <= 80 - w and h > 0 and w > 0
        areas.append(h * w / (60 * 80))
        assert 3 / 4 * 0.85 <= w / h <= 4 / 3 * 1.15  # rounding of small boxes
    assert 0.06 <= min(areas) < 0.2 and max(areas) > 0.8
    # a full-image crop of a square image is the identity
    full = PaperAugmentation(20, **only("crop", crop_scale=(1.0, 1.0), crop_ratio=(1.0, 1.0)))
    img = torch.rand(3, 20, 20)
    torch.testing.assert_close(full(img, generator=seeded(0)), img)


def test_crop_changes_the_view(image: torch.Tensor) -> None:
    aug = PaperAugmentation(96, **only("crop"))
    views = [aug(image, generator=seeded(s)) for s in range(4)]
    assert all(not torch.allclose(v, image) for v in views)
    assert all(not torch.allclose(views[0], v) for v in views[1:])


def test_flip_half_of_the_time(image: torch.Tensor) -> None:
    aug = PaperAugmentation(96, **only("flip"))
    g = seeded(0)
    flips = 0
    for _ in range(200):
        out = aug(image, generator=g)
        if torch.equal(out, image.flip(-1)):
            flips += 1
        else:
            assert torch.equal(out, image)
    assert 70 <= flips <= 130


def test_grayscale_twenty_percent_and_keeps_channels(image: torch.Tensor) -> None:
    aug = PaperAugmentation(96, **only("grayscale"))
    g = seeded(0)
    grays = 0
    for _ in range(300):
        out = aug(image, generator=g)
        assert out.shape == (3, 96, 96)
        if torch.equal(out[0], out[1]) and torch.equal(out[1], out[2]):
            grays += 1
        else:
            assert torch.equal(out, image)
    assert 35 <= grays <= 90
    one = image[:1]
    assert torch.equal(aug(one, generator=g), one)  # nothing to do on one channel


def test_color_jitter_eighty_percent_and_gray_inputs(image: torch.Tensor) -> None:
    aug = PaperAugmentation(96, **only("color"))
    g = seeded(0)
    changed = sum(not torch.equal(aug(image, generator=g), image) for _ in range(100))
    assert 65 <= changed <= 95
    one = image.mean(0, keepdim=True)
    outs = [aug(one, generator=g) for _ in range(20)]
    assert all(o.shape == (1, 96, 96) and 0 <= o.min() and o.max() <= 1 for o in outs)
    assert any(not torch.allclose(o, one) for o in outs)  # brightness/contrast still apply


def test_blur_kernel_and_effect(image: torch.Tensor) -> None:
    assert [_blur_kernel((s, s)) for s in (32, 64, 96, 224)] == [3, 7, 9, 23]
    assert _blur_kernel((2, 2)) == 3 and _blur_kernel((1, 1)) == 1
    aug = PaperAugmentation(96, **only("blur"))
    out = aug(image, generator=seeded(0))

    def total_variation(x: torch.Tensor) -> float:
        return float((x[..., 1:, :] - x[..., :-1, :]).abs().mean() + (x[..., 1:] - x[..., :-1]).abs().mean())

    assert total_variation(out) < total_variation(image)
    never = PaperAugmentation(96, **only("blur", blur_p=0.0))
    assert torch.equal(never(image, generator=seeded(0)), image)
    tiny = PaperAugmentation(1, **only("blur"))
    assert tiny(torch.rand(3, 1, 1)).shape == (3, 1, 1)


def test_augment_batch_is_per_image_and_reproducible(cifar_images: torch.Tensor) -> None:
    same = cifar_images[:1].expand(5, -1, -1, -1)
    aug = PaperAugmentation(24)
    out = augment_batch(same, aug, generator=seeded(0))
    assert out.shape == (5, 3, 24, 24)
    assert all(not torch.allclose(out[i], out[j]) for i in range(5) for j in range(i + 1, 5))
    assert torch.equal(out, augment_batch(same, aug, generator=seeded(0)))
    assert augment_batch(cifar_images[:0], aug).shape == (0, 3, 24, 24)


def test_bad_inputs_and_settings() -> None:
    aug = PaperAugmentation(32)
    with pytest.raises(ValueError, match="ONE float image"):
        aug(torch.rand(2, 3, 32, 32))
    with pytest.raises(ValueError, match="ONE float image"):
        aug(torch.zeros(3, 32, 32, dtype=torch.uint8))
    with pytest.raises(ValueError, match="1 or 3 channels"):
        aug(torch.rand(4, 32, 32))
    with pytest.raises(ValueError, match="crop_scale"):
        PaperAugmentation(32, crop_scale=(0.5, 0.1))
    with pytest.raises(ValueError, match="size"):
        PaperAugmentation(0)
    with pytest.raises(ValueError, match="blur_p"):
        PaperAugmentation(32, blur_p=1.5)
    with pytest.raises(ValueError, match="B, C, H, W"):
        augment_batch(torch.rand(3, 32, 32), aug)


# --------------------------------------------------------------------------------------------
# the batched augmentation: the per-image distributions, the per-image result
# --------------------------------------------------------------------------------------------
def _per_image_row(aug: PaperAugmentation, draws: dict, i: int) -> dict:
    """Row ``i`` of batched draws in the per-image format of PaperAugmentation.draw."""
    return {
        "crop": tuple(int(v) for v in draws["crop"][i].tolist()) if aug.crop else None,
        "flip": bool(draws["flip"][i]),
        "jitter": tuple(draws["factors"][i].tolist()) if bool(draws["jitter"][i]) else None,
        "order": draws["order"][i].tolist(),
        "gray": bool(draws["gray"][i]),
        "sigma": float(draws["sigma"][i]) if bool(draws["blur"][i]) else None,
    }


@pytest.mark.parametrize("shape", [(96, 96), (24, 100)], ids=["square", "elongated"])
def test_batched_draws_follow_the_per_image_distributions(shape: tuple[int, int]) -> None:
    """Every random parameter of BatchAugmentation has the distribution of PaperAugmentation.draw
    (Kolmogorov-Smirnov for continuous ones, proportions and a chi-square on the 24 jitter orders);
    the elongated input makes many crop tries fail, so the central-crop fallback is compared too."""
    stats = pytest.importorskip("scipy.stats")
    from mvmr.transforms import BatchAugmentation

    n, (height, width) = 4000, shape
    aug = PaperAugmentation(32)
    g = seeded(1)
    single = [aug.draw(height, width, g) for _ in range(n)]
    batched = BatchAugmentation(aug).draw(n, height, width, generator=seeded(2))
    rows = [_per_image_row(aug, batched, i) for i in range(n)]

    def column(draws: list[dict], fn) -> list[float]:  # noqa: ANN001
        return [fn(d) for d in draws if fn(d) is not None]

    continuous = {
        "crop area": lambda d: d["crop"][2] * d["crop"][3] / (height * width),
        "crop aspect": lambda d: d["crop"][3] / d["crop"][2],
        "crop top": lambda d: (d["crop"][0] + 0.5) / (height - d["crop"][2] + 1),
        "crop left": lambda d: (d["crop"][1] + 0.5) / (width - d["crop"][3] + 1),
        **{
            f"jitter {k}": (lambda d, i=i: d["jitter"][i] if d["jitter"] else None)
            for i, k in enumerate(("brightness", "contrast", "saturation", "hue"))
        },
        "blur sigma": lambda d: d["sigma"],
    }
    for name, fn in continuous.items():
        a, b = column(single, fn), column(rows, fn)
        assert stats.ks_2samp(a, b).pvalue > 1e-3, name
    for name in ("flip", "jitter", "gray"):
        p1 = sum(bool(d[name]) for d in single) / n
        p2 = sum(bool(d[name]) for d in rows) / n
        pooled = (p1 + p2) / 2
        assert abs(p1 - p2) < 4 * (2 * pooled * (1 - pooled) / n) ** 0.5, (name, p1, p2)
    assert sum(d["sigma"] is not None for d in rows) == n  # blur on every image (blur_p = 1)
    fallback = [
        sum(d["crop"][2] == height and d["crop"][3] == min(width, round(height * 4 / 3)) for d in draws)
        for draws in (single, rows)
    ]
    assert abs(fallback[0] - fallback[1]) < 4 * max(1.0, fallback[0]) ** 0.5 + 5
    orders = [[tuple(d["order"]) for d in draws if d["jitter"]] for draws in (single, rows)]
    perms = sorted(set(orders[0]) | set(orders[1]))
    assert len(perms) == 24
    table = [[o.count(p) for p in perms] for o in orders]
    assert stats.chi2_contingency(table).pvalue > 1e-3


@pytest.mark.parametrize("channels", [3, 1])
def test_batched_apply_equals_per_image_apply_for_the_same_draws(
    imagenette_images: torch.Tensor, channels: int
) -> None:
    from mvmr.transforms import BatchAugmentation

    images = imagenette_images[:24, :channels] if channels == 3 else imagenette_images[:24].mean(1, keepdim=True)
    aug = PaperAugmentation(96, crop=False)  # resampling aside: flip, jitter (any order, hue), grayscale, blur
    batched = BatchAugmentation(aug)
    draws = batched.draw(len(images), 96, 96, generator=seeded(3))
    assert draws["jitter"].any() and (~draws["jitter"]).any() and draws["gray"].any() and draws["flip"].any()
    out = batched.apply(images, draws)
    expected = torch.stack([aug.apply(img, _per_image_row(aug, draws, i)) for i, img in enumerate(images)])
    torch.testing.assert_close(out, expected, atol=2e-4, rtol=0)


def test_batched_crop_resamples_like_the_per_image_crop(imagenette_images: torch.Tensor) -> None:
    """roi_align averages over each output pixel's footprint: close to the antialiased resize."""
    from mvmr.transforms import BatchAugmentation

    aug = PaperAugmentation(48, flip=False, color=False, grayscale=False, blur=False)
    batched = BatchAugmentation(aug)
    draws = batched.draw(32, 96, 96, generator=seeded(4))
    out = batched(imagenette_images[:32], generator=seeded(4))
    expected = torch.stack(
        [aug.apply(img, _per_image_row(aug, draws, i)) for i, img in enumerate(imagenette_images[:32])]
    )
    diff = (out - expected).abs()
    assert out.shape == (32, 3, 48, 48) and float(diff.mean()) < 0.01 and float(diff.max()) < 0.25
    other = torch.stack(
        [aug.apply(img, _per_image_row(aug, draws, (i + 1) % 32)) for i, img in enumerate(imagenette_images[:32])]
    )
    assert float((out - other).abs().mean()) > 10 * float(diff.mean())  # the crops themselves matter
