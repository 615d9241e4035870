"""FeatureCache, RandomProjection and the ``mvmr cache`` command."""

from __future__ import annotations

import json
import os
import pickle
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch.utils.data import DataLoader, TensorDataset

from mvmr.representations.base import Representation, register
from mvmr.representations.cache import (
    CachedDataset,
    CacheError,
    CacheMismatchError,
    FeatureCache,
    IncompleteCacheError,
    dataset_fingerprint,
)
from mvmr.representations.projection import BLOCK_ROWS, RandomProjection

REPO = Path(__file__).resolve().parents[1]


# ----------------------------------------------------------------------------- test representations


class FlatPixels(Representation):
    """Flattened pixels."""

    name = "flat"

    def output_dim(self, channels: int, height: int, width: int) -> int:
        return channels * height * width

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return images.flatten(1)


class AvgPool(Representation):
    """``factor`` x ``factor`` average pooling, flattened; has a ``config()``."""

    name = "pool"

    def __init__(self, factor: int = 2) -> None:
        super().__init__()
        self.factor = factor

    def config(self) -> dict[str, int]:
        return {"factor": self.factor}

    def output_dim(self, channels: int, height: int, width: int) -> int:
        return channels * (height // self.factor) * (width // self.factor)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return F.avg_pool2d(images, self.factor).flatten(1)


class PixelsAndGradients(Representation):
    """A big (ScatNet-sized-ish) deterministic rep: upsampled pixels + gradient magnitudes."""

    name = "pixgrad"

    def __init__(self, size: int = 64) -> None:
        super().__init__()
        self.size = size

    def output_dim(self, channels: int, height: int, width: int) -> int:
        return 2 * channels * self.size * self.size

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        x = F.interpolate(images, size=(self.size, self.size), mode="bilinear", align_corners=False)
        gx = F.pad(x[..., :, 1:] - x[..., :, :-1], (0, 1))
        gy = F.pad(x[..., 1:, :] - x[..., :-1, :], (0, 0, 0, 1))
        return torch.cat([x.flatten(1), (gx.square() + gy.square()).sqrt().flatten(1)], dim=1)


class FailsOnSecondBatch(FlatPixels):
    name = "fails"

    def __init__(self) -> None:
        super().__init__()
        self.calls = 0

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        self.calls += 1
        if self.calls == 2:
            raise RuntimeError("boom on batch 2")
        return super().forward(images)


class Noisy(FlatPixels):
    name = "noisy"
    deterministic = False


class Huge(FlatPixels):
    name = "huge"

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return images.flatten(1) * 1e6


def tensor_dataset(images: torch.Tensor) -> TensorDataset:
    labels = torch.arange(images.shape[0])
    return TensorDataset(images, labels)


@pytest.fixture()
def small_images() -> torch.Tensor:
    g = torch.Generator().manual_seed(0)
    return torch.rand(10, 3, 8, 8, generator=g)


def build(root: Path, images: torch.Tensor, **kwargs):
    defaults = dict(
        dataset=tensor_dataset(images),
        representations=[FlatPixels(), AvgPool(2)],
        image_size=images.shape[-1],
        batch_size=4,
        progress=False,
        fingerprint="fp-a",
    )
    defaults.update(kwargs)
    return FeatureCache.build(root, **defaults)


# ----------------------------------------------------------------------------- projection


def test_projection_reproducible_and_keyed():
    a = RandomProjection(2 * BLOCK_ROWS + 5, 16, seed=3, key="hog")
    b = RandomProjection(2 * BLOCK_ROWS + 5, 16, seed=3, key="hog")
    c = RandomProjection(2 * BLOCK_ROWS + 5, 16, seed=3, key="scatnet")
    d = RandomProjection(2 * BLOCK_ROWS + 5, 16, seed=4, key="hog")
    m = a.matrix()
    assert m.shape == (2 * BLOCK_ROWS + 5, 16)
    assert torch.equal(m, b.matrix())
    assert not torch.allclose(m, c.matrix())
    assert not torch.allclose(m, d.matrix())
    # entries ~ N(0, 1/out_dim)
    assert abs(m.std().item() - 16**-0.5) < 0.02
    # chunked (non-materialised) and materialised paths agree with x @ W
    x = torch.randn(5, 2 * BLOCK_ROWS + 5, dtype=torch.float64)
    chunked = RandomProjection(2 * BLOCK_ROWS + 5, 16, seed=3, key="hog", materialize=False)
    assert torch.allclose(chunked(x), x @ m.double(), atol=1e-9)
    assert torch.allclose(a(x.float()), (x @ m.double()).float(), atol=1e-4)
    assert chunked(x[0]).shape == (16,)
    assert "weight" not in a.state_dict()
    with pytest.raises(ValueError, match=r"\(\.\.\., 2053\)"):
        a(torch.randn(2, 7))


def test_projection_same_matrix_in_another_process():
    code = "from mvmr.representations.projection import RandomProjection as P; print(float(P(3000, 32, 7, key='scatnet').matrix().double().sum()))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=REPO)
    here = float(RandomProjection(3000, 32, 7, key="scatnet").matrix().double().sum())
    assert float(out.stdout.strip()) == here


# ----------------------------------------------------------------------------- build / read


def test_roundtrip_matches_fresh_computation(tmp_path, small_images):
    cache = build(tmp_path / "c", small_images)
    assert cache.names == ["flat", "pool"]
    assert cache.dims == {"flat": 192, "pool": 48} and len(cache) == 10
    got = cache.get(torch.arange(10))
    assert got["flat"].dtype == torch.float32
    torch.testing.assert_close(got["flat"], small_images.flatten(1), atol=1e-3, rtol=1e-3)
    torch.testing.assert_close(got["pool"], AvgPool(2)(small_images), atol=1e-3, rtol=1e-3)
    # manifest contents
    manifest = json.loads((tmp_path / "c" / "manifest.json").read_text())
    assert manifest["version"] == 1 and manifest["complete"] is True
    assert manifest["dtype"] == "float16" and manifest["n"] == 10 and manifest["image_size"] == 8
    assert manifest["dataset_fingerprint"] == "fp-a"
    pool = manifest["representations"][1]
    assert pool["config"] == {"factor": 2} and pool["class"].endswith("AvgPool")
    assert pool["raw_dim"] == pool["dim"] == 48 and pool["projection"] is None
    # reopen read-only
    again = FeatureCache.open(tmp_path / "c")
    assert not again.array("flat").flags.writeable
    torch.testing.assert_close(again.get([3])["pool"], got["pool"][3:4])


def test_get_unordered_duplicates_and_bounds(tmp_path, small_images):
    cache = build(tmp_path / "c", small_images)
    full = cache.get(range(10))
    idx = [7, 2, 7, 0, 9, 2]
    got = cache.get(torch.tensor(idx), names=["pool"])
    assert list(got) == ["pool"]
    assert torch.equal(got["pool"], full["pool"][idx])
    assert torch.equal(cache.get(np.array(idx))["flat"], full["flat"][idx])
    assert cache[4]["flat"].shape == (192,)
    assert cache.get([])["flat"].shape == (0, 192)
    with pytest.raises(IndexError, match="10"):
        cache.get([1, 10])
    with pytest.raises(IndexError):
        cache.get([-1])


def test_picklable_and_usable_in_workers(tmp_path, small_images):
    cache = build(tmp_path / "c", small_images)
    cache.get([0])  # opens the memory maps
    clone = pickle.loads(pickle.dumps(cache))
    assert torch.equal(clone.get([1, 5])["flat"], cache.get([1, 5])["flat"])
    wrapped = CachedDataset(tensor_dataset(small_images), cache)
    loader = DataLoader(wrapped, batch_size=4, num_workers=2)
    images, labels, feats = next(iter(loader))
    assert torch.equal(feats["pool"], cache.get(labels)["pool"])
    assert images.shape == (4, 3, 8, 8)


def test_non_deterministic_refused(tmp_path, small_images):
    with pytest.raises(ValueError, match="not deterministic"):
        build(tmp_path / "c", small_images, representations=[FlatPixels(), Noisy()])
    assert not (tmp_path / "c").exists()


def test_float16_overflow_is_an_error(tmp_path, small_images):
    with pytest.raises(CacheError, match="float16"):
        build(tmp_path / "c", small_images, representations=[Huge()])
    assert not (tmp_path / "c").exists()


def test_wrong_image_size_refused(tmp_path, small_images):
    with pytest.raises(CacheError, match="image_size=16"):
        build(tmp_path / "c", small_images, image_size=16)


def test_fingerprint_fallback_hash(small_images):
    a = dataset_fingerprint(tensor_dataset(small_images))
    assert a == dataset_fingerprint(tensor_dataset(small_images.clone()))
    changed = small_images.clone()
    changed[-1, 0, 0, 0] += 0.5  # the last item is always sampled
    assert a != dataset_fingerprint(tensor_dataset(changed))
    assert a != dataset_fingerprint(tensor_dataset(small_images[:9]))


# ----------------------------------------------------------------------------- mismatch


def test_mismatch_refused_naming_the_field(tmp_path, small_images):
    root = tmp_path / "c"
    build(root, small_images, project_dim=100, seed=1)  # flat (192) projected, pool (48) not
    base = dict(
        dataset=tensor_dataset(small_images),
        representations=[FlatPixels(), AvgPool(2)],
        image_size=8,
        batch_size=4,
        progress=False,
        fingerprint="fp-a",
        project_dim=100,
        seed=1,
    )
    ok = FeatureCache.open_or_build(root, **base)
    assert ok.dims == {"flat": 100, "pool": 48} and ok.raw_dims["flat"] == 192
    cases = [
        (dict(fingerprint="fp-b"), "dataset_fingerprint"),
        (dict(representations=[FlatPixels(), AvgPool(4)]), "representations['pool'].config"),
        (dict(representations=[FlatPixels()]), "'representations'"),
        (dict(project_dim=64), "project_dim"),
        (dict(seed=2), "seed"),
        (dict(dataset=tensor_dataset(F.avg_pool2d(small_images, 2)), image_size=4), "image_size"),
    ]
    for change, field in cases:
        with pytest.raises(CacheMismatchError, match=field.replace("[", r"\[").replace("]", r"\]")):
            FeatureCache.open_or_build(root, **{**base, **change})
    with pytest.raises(CacheMismatchError, match="image_size"):
        FeatureCache.open(root, expect={"image_size": 16})
    # the refused cache is untouched; rebuild=True replaces it
    assert FeatureCache.open(root).manifest["seed"] == 1
    rebuilt = FeatureCache.open_or_build(root, **{**base, "seed": 2, "rebuild": True})
    assert rebuilt.manifest["seed"] == 2
    assert FeatureCache.open(root).manifest["seed"] == 2
    with pytest.raises(FileExistsError):
        build(root, small_images)
    assert not [p for p in tmp_path.iterdir() if p.name != "c"]  # no leftovers


def test_projected_cache_equals_on_the_fly_projection(tmp_path, small_images):
    cache = build(tmp_path / "c", small_images, project_dim=100, seed=5)
    proj = RandomProjection(192, 100, 5, key="flat")
    torch.testing.assert_close(cache.get(range(10))["flat"], proj(small_images.flatten(1)), atol=2e-3, rtol=2e-3)


# ----------------------------------------------------------------------------- crash safety


def test_interrupted_build_leaves_nothing_and_is_rebuilt(tmp_path, small_images):
    root = tmp_path / "c"
    with pytest.raises(RuntimeError, match="boom"):
        build(root, small_images, representations=[FlatPixels(), FailsOnSecondBatch()])
    assert list(tmp_path.iterdir()) == []  # nothing readable, temp dir cleaned
    with pytest.raises(FileNotFoundError):
        FeatureCache.open(root)
    # a marked directory without manifest (e.g. torn copy) is incomplete, then rebuilt
    root.mkdir()
    (root / ".mvmr-feature-cache").write_text("")
    (root / "00-flat.npy").write_bytes(b"half")
    with pytest.raises(IncompleteCacheError, match="incomplete"):
        FeatureCache.open(root)
    cache = FeatureCache.open_or_build(
        root,
        dataset=tensor_dataset(small_images),
        representations=[FlatPixels()],
        image_size=8,
        fingerprint="fp-a",
        progress=False,
    )
    torch.testing.assert_close(cache.get([2])["flat"], small_images[2:3].flatten(1), atol=1e-3, rtol=1e-3)


def test_hard_crash_mid_build_then_rebuild(tmp_path, small_images):
    """A process killed mid-build (no cleanup at all) leaves no readable cache."""
    torch.save(small_images, tmp_path / "images.pt")
    script = textwrap.dedent(
        f"""
        import os, torch
        from torch.utils.data import TensorDataset
        from mvmr.representations.base import Representation, register
        from mvmr.representations.cache import FeatureCache

        class Dies(Representation):
            name = "flat"
            calls = 0
            def output_dim(self, c, h, w):
                return c * h * w
            def forward(self, x):
                Dies.calls += 1
                if Dies.calls == 2:
                    os._exit(3)
                return x.flatten(1)

        images = torch.load({str(tmp_path / 'images.pt')!r})
        FeatureCache.build({str(tmp_path / 'c')!r}, dataset=TensorDataset(images), representations=[Dies()],
                           image_size=8, batch_size=4, progress=False, fingerprint="fp-a")
        """
    )
    proc = subprocess.run([sys.executable, "-c", script], cwd=REPO, capture_output=True, text=True)
    assert proc.returncode == 3, proc.stderr
    leftovers = [p.name for p in tmp_path.iterdir() if p.name.startswith("c.tmp-")]
    assert len(leftovers) == 1  # the dead process's temp dir
    with pytest.raises(FileNotFoundError):
        FeatureCache.open(tmp_path / "c")
    cache = FeatureCache.open_or_build(
        tmp_path / "c",
        dataset=tensor_dataset(small_images),
        representations=[FlatPixels()],
        image_size=8,
        fingerprint="fp-a",
        progress=False,
    )
    assert len(cache) == 10
    assert sorted(p.name for p in tmp_path.iterdir()) == ["c", "images.pt"]  # stale temp removed


def test_refuses_to_overwrite_foreign_directory(tmp_path, small_images):
    root = tmp_path / "c"
    root.mkdir()
    (root / "notes.txt").write_text("mine")
    with pytest.raises(CacheError, match="not a feature cache"):
        build(root, small_images)
    with pytest.raises(CacheError, match="not a feature cache"):
        FeatureCache.open_or_build(
            root, dataset=tensor_dataset(small_images), representations=[FlatPixels()], image_size=8, progress=False
        )
    assert (root / "notes.txt").read_text() == "mine"
    empty = tmp_path / "empty"
    empty.mkdir()
    assert len(build(empty, small_images)) == 10


# ----------------------------------------------------------------------------- JL on real images


def _random_embedding(images: torch.Tensor) -> torch.Tensor:
    """A fixed random nonlinear embedding (random conv net) standing in for z."""
    g = torch.Generator().manual_seed(1234)
    w1 = torch.randn(16, images.shape[1], 5, 5, generator=g) / (images.shape[1] * 25) ** 0.5
    w2 = torch.randn(32, 16, 3, 3, generator=g) / (16 * 9) ** 0.5
    w3 = torch.randn(32 * 16, 64, generator=g) / (32 * 16) ** 0.5
    with torch.no_grad():
        h = torch.tanh(F.conv2d(images - 0.5, w1, stride=2))
        h = F.relu(F.conv2d(h, w2, stride=2))
        h = F.adaptive_avg_pool2d(h, 4).flatten(1)
        return torch.tanh(h @ w3)


@pytest.mark.parametrize("which", ["imagenette", "cifar"])
def test_projected_dcor_close_to_exact(which, request, tmp_path):
    dcor = pytest.importorskip("dcor")
    if which == "imagenette":
        images = request.getfixturevalue("imagenette_images")  # (32, 3, 96, 96)
        rep: Representation = FlatPixels()  # 27,648 dims
    else:
        images = request.getfixturevalue("cifar_images")  # (64, 3, 32, 32)
        rep = PixelsAndGradients(64)  # 24,576 dims
    cache = FeatureCache.build(
        tmp_path / which,
        dataset=tensor_dataset(images),
        representations=[rep],
        image_size=images.shape[-1],
        project_dim=4096,
        batch_size=16,
        progress=False,
    )
    assert cache.raw_dims[rep.name] > 20000 and cache.dims[rep.name] == 4096
    z = _random_embedding(images).double().numpy()
    with torch.no_grad():
        exact = rep(images).double().numpy()
    projected = cache.get(range(len(cache)))[rep.name].double().numpy()
    r_exact = dcor.distance_correlation_sqr(z, exact)
    r_proj = dcor.distance_correlation_sqr(z, projected)
    assert 0.05 < r_exact < 0.999  # a non-trivial dependence
    assert abs(r_proj - r_exact) < 0.02, (r_exact, r_proj)
    # pairwise distances are preserved (JL) well within 10 %
    d_exact = torch.pdist(torch.from_numpy(exact))
    d_proj = torch.pdist(torch.from_numpy(projected))
    assert (d_proj / d_exact - 1).abs().max() < 0.1


# ----------------------------------------------------------------------------- registry / command


def _registry_with(*names: str):
    reps = pytest.importorskip("mvmr.representations")
    if not hasattr(reps, "build") or not set(names) <= set(reps.available()):
        pytest.skip(f"representations {names} not registered yet")
    return reps


def test_cache_with_builtin_pixels(tmp_path, cifar_images):
    reps = _registry_with("pixels")
    pixels = reps.build("pixels")
    images = cifar_images[:16]
    cache = FeatureCache.build(
        tmp_path / "c", dataset=tensor_dataset(images), representations=[pixels], image_size=32, progress=False
    )
    with torch.no_grad():
        fresh = pixels(images)
    torch.testing.assert_close(cache.get(range(16))["pixels"], fresh, atol=2e-3, rtol=2e-3)


@register("test-cache-flat")
class RegisteredFlat(FlatPixels):
    """Registered under a test-only name so the command test needs no built-in representation."""


def test_cache_command(tmp_path, capsys):
    data = pytest.importorskip("mvmr.data")
    if not hasattr(data, "build_dataset"):
        pytest.skip("mvmr.data.build_dataset not available yet")
    from PIL import Image

    from mvmr.cli import main

    rng = np.random.default_rng(0)
    for cls in ("a", "b"):
        folder = tmp_path / "data" / "train" / cls
        folder.mkdir(parents=True)
        for i in range(3):
            Image.fromarray(rng.integers(0, 256, (40, 40, 3), dtype=np.uint8)).save(folder / f"{i}.png")
    out = tmp_path / "cache"
    argv = ["cache", "--data", str(tmp_path / "data"), "--dataset", "imagefolder", "--split", "train",
            "--size", "32", "--reps", "test-cache-flat", "--project-dim", "1024", "--out", str(out), "--no-progress"]
    assert main(argv) == 0
    assert "6 images" in capsys.readouterr().out
    cache = FeatureCache.open(out)
    assert cache.dims == {"test-cache-flat": 1024} and cache.raw_dims == {"test-cache-flat": 3072}
    assert cache.fingerprint == data.build_dataset("imagefolder", tmp_path / "data", split="train", size=32).fingerprint()
    assert main(argv) == 0  # reused
    bad = argv.copy()
    bad[bad.index("1024")] = "512"
    assert main(bad) == 2
    assert "project_dim" in capsys.readouterr().err
    assert main(bad + ["--rebuild"]) == 0
    assert FeatureCache.open(out).dims == {"test-cache-flat": 512}
    assert main(argv + ["--reps", "no-such-rep"]) == 2
    assert "no-such-rep" in capsys.readouterr().err
