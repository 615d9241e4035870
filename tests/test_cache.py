"""The feature cache (format, build, reading), RandomProjection and the ``mvmr cache`` command."""

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

from mvmr.cache import (
    CachedDataset,
    CacheError,
    CacheMismatchError,
    FeatureCache,
    IncompleteCacheError,
    build_cache,
    dataset_fingerprint,
    open_or_build,
)
from mvmr.representations.base import Representation
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
    return build_cache(root, **defaults)


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
    code = (
        "from mvmr.representations.projection import RandomProjection as P; "
        "print(float(P(3000, 32, 7, key='scatnet').matrix().double().sum()))"
    )
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
    assert manifest["version"] == 2 and manifest["complete"] is True
    assert manifest["dtype"] == "float16" and manifest["n"] == 10 and manifest["image_size"] == 8
    assert manifest["dataset_fingerprint"] == "fp-a"
    pool = manifest["representations"][1]
    assert pool["config"] == {"factor": 2} and pool["class"].endswith("AvgPool")
    # without its own config(), the base class identifies a representation by its repr
    assert manifest["representations"][0]["config"] == {"repr": "FlatPixels(name='flat', deterministic=True)"}
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
    ok = open_or_build(root, **base)
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
            open_or_build(root, **{**base, **change})
    with pytest.raises(CacheMismatchError, match="image_size"):
        FeatureCache.open(root, expect={"image_size": 16})
    # the refused cache is untouched; rebuild=True replaces it
    assert FeatureCache.open(root).manifest["seed"] == 1
    rebuilt = open_or_build(root, **{**base, "seed": 2, "rebuild": True})
    assert rebuilt.manifest["seed"] == 2
    assert FeatureCache.open(root).manifest["seed"] == 2
    with pytest.raises(FileExistsError):
        build(root, small_images)
    assert not [p for p in tmp_path.iterdir() if p.name != "c"]  # no leftovers


def test_an_unprojected_cache_opens_for_any_seed(tmp_path, small_images):
    """Without a projection the seed changes nothing in the features, so another seed reuses the
    cache rather than refusing or rebuilding it."""
    root = tmp_path / "c"
    built = build(root, small_images, seed=0).manifest["build_id"]
    opened = open_or_build(
        root,
        dataset=tensor_dataset(small_images),
        representations=[FlatPixels(), AvgPool(2)],
        image_size=8,
        batch_size=4,
        progress=False,
        fingerprint="fp-a",
        seed=7,
    )
    assert opened.manifest["build_id"] == built


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
    cache = open_or_build(
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
        from mvmr.cache import build_cache

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

        images = torch.load({str(tmp_path / "images.pt")!r})
        build_cache({str(tmp_path / "c")!r}, dataset=TensorDataset(images), representations=[Dies()],
                           image_size=8, batch_size=4, progress=False, fingerprint="fp-a")
        """
    )
    proc = subprocess.run([sys.executable, "-c", script], cwd=REPO, capture_output=True, text=True)
    assert proc.returncode == 3, proc.stderr
    leftovers = [p.name for p in tmp_path.iterdir() if p.name.startswith("c.tmp-")]
    assert len(leftovers) == 1  # the dead process's temp dir
    with pytest.raises(FileNotFoundError):
        FeatureCache.open(tmp_path / "c")
    cache = open_or_build(
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
        open_or_build(
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
    cache = build_cache(
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
    cache = build_cache(
        tmp_path / "c", dataset=tensor_dataset(images), representations=[pixels], image_size=32, progress=False
    )
    with torch.no_grad():
        fresh = pixels(images)
    torch.testing.assert_close(cache.get(range(16))["pixels"], fresh, atol=2e-3, rtol=2e-3)


# ----------------------------------------------------------------------------- one build, shared by the ranks


class CountingPixels(Representation):
    """Flattened pixels that count the images this process computed (the work share of a rank)."""

    name = "counted"
    seen = 0

    def output_dim(self, c: int, h: int, w: int) -> int:
        return c * h * w

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        CountingPixels.seen += x.shape[0]
        return x.flatten(1) * 2


class FingerprintedImages(TensorDataset):
    """Images with a fingerprint() that counts its calls (a large dataset is fingerprinted once per run)."""

    calls = 0

    def fingerprint(self) -> str:
        FingerprintedImages.calls += 1
        return "fp-shared-build"


def _view_bank(images: torch.Tensor):  # noqa: ANN202
    """Two stored augmented views of each image (rows, parameters and all)."""
    from mvmr.data import AugmentedViewBank
    from mvmr.transforms import PaperAugmentation

    labelled = TensorDataset(images, torch.zeros(len(images), dtype=torch.long))
    return AugmentedViewBank(labelled, size=32, augmentation=PaperAugmentation(32), count=2, seed=5)


def _build_worker(rank: int, world: int, port: int, root: str, images_file: str, queue) -> None:
    import torch.distributed as dist

    from mvmr.cache import open_or_build
    from mvmr.representations.local_std import LocalStd
    from mvmr.utils.distributed import current_group

    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
    dist.init_process_group("gloo", rank=rank, world_size=world)
    try:
        images = torch.load(images_file)
        open_or_build(
            root,
            dataset=FingerprintedImages(images),
            representations=[CountingPixels(), LocalStd()],
            image_size=32,
            batch_size=8,
            progress=False,
            group=current_group(),
        )
        queue.put((rank, CountingPixels.seen, FingerprintedImages.calls))
        open_or_build(
            root + "-views",
            dataset=_view_bank(images),
            representations=[LocalStd()],
            image_size=32,
            batch_size=8,
            progress=False,
            group=current_group(),
        )  # stored views: the same sharded build
        dist.barrier()
    finally:
        dist.destroy_process_group()


def test_two_ranks_share_the_build_and_equal_one_process(tmp_path, cifar_images):
    """A real 2-process gloo group: rank 0 alone fingerprints the data, each rank computes about half
    of the rows, rank 0 commits the manifest, and the cache equals a single-process build."""
    import torch.multiprocessing as mp

    from mvmr.representations.local_std import LocalStd

    images = cifar_images[:50]
    torch.save(images, tmp_path / "images.pt")
    ctx = mp.get_context("spawn")
    queue = ctx.Queue()
    with __import__("socket").socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    procs = [
        ctx.Process(target=_build_worker, args=(r, 2, port, str(tmp_path / "ddp"), str(tmp_path / "images.pt"), queue))
        for r in range(2)
    ]
    for p in procs:
        p.start()
    results = sorted(queue.get(timeout=180) for _ in procs)
    for p in procs:
        p.join(timeout=60)
        assert p.exitcode == 0
    assert [(rank, seen) for rank, seen, _ in results] == [(0, 25), (1, 25)]  # each computed its half
    assert [calls for _, _, calls in results] == [1, 0]  # the dataset is checked once, on rank 0
    shared = FeatureCache.open(tmp_path / "ddp")
    assert shared.manifest["shards"] == [{"rank": 0, "rows": [0, 25]}, {"rank": 1, "rows": [25, 50]}]
    single = build_cache(
        tmp_path / "one",
        dataset=FingerprintedImages(images),
        representations=[CountingPixels(), LocalStd()],
        image_size=32,
        batch_size=8,
        progress=False,
    )
    for name in single.names:
        np.testing.assert_array_equal(shared.array(name), single.array(name), err_msg=name)
    assert shared.fingerprint == single.fingerprint
    views = FeatureCache.open(tmp_path / "ddp-views")  # 100 stored views: 50 made and embedded by each rank
    assert views.manifest["shards"] == [{"rank": 0, "rows": [0, 50]}, {"rank": 1, "rows": [50, 100]}]
    one = build_cache(
        tmp_path / "one-views",
        dataset=_view_bank(images),
        representations=[LocalStd()],
        image_size=32,
        batch_size=8,
        progress=False,
    )
    np.testing.assert_array_equal(views.view_parameters(np.arange(100)), one.view_parameters(np.arange(100)))
    np.testing.assert_array_equal(views.array("local_std"), one.array("local_std"))
    assert sorted(p.name for p in tmp_path.iterdir()) == ["ddp", "ddp-views", "images.pt", "one", "one-views"]


def test_cache_command_builds_what_pretrain_reads(tmp_path, cifar10_root, capsys):
    """``mvmr cache`` with a shipped config, then ``mvmr pretrain`` with the same config: the cache
    is opened, not rebuilt (the dataset fingerprints agree, channels included)."""
    from mvmr.cli import main

    cache_dir = tmp_path / "feature-cache"
    common = [
        "data.kind=imagefolder",
        f"data.root={cifar10_root}",
        "data.split=test",
        "data.image_size=32",
        "data.subset=24",
        "data.batch_size=8",
        "data.num_workers=0",
        "data.val_fraction=0",
        "representations.items=[{name: pixels}, {name: local_std}, {name: augmented_pixels}]",
        f"representations.cache_dir={cache_dir}",
        "representations.project_dim=1024",
        "trainer.progress_bar=false",
    ]
    assert main(["cache", "--config", "stl10", "--out", str(tmp_path / "run"), *common]) == 0
    out = capsys.readouterr().out
    assert "(built): 24 images, pixels=3072->1024, local_std=3072->1024" in out
    built = FeatureCache.open(cache_dir).manifest["build_id"]
    assert main(["cache", "--config", "stl10", "--out", str(tmp_path / "run"), *common]) == 0
    assert "(reused)" in capsys.readouterr().out
    train = [
        "model.encoder=resnet18",
        "model.projector=64-64",
        "trainer.max_steps=2",
        "trainer.accelerator=cpu",
        "trainer.devices=1",
        "trainer.precision=32-true",
        "trainer.accumulate_grad_batches=1",
        "probe.enabled=false",
    ]
    assert main(["pretrain", "--config", "stl10", "--out", str(tmp_path / "run"), *common, *train]) == 0
    assert FeatureCache.open(cache_dir).manifest["build_id"] == built  # reused, not rebuilt
    assert (tmp_path / "run" / "checkpoints" / "last.ckpt").is_file()
    assert main(["cache", "--config", "stl10", *common, "representations.project_dim=512"]) == 2
    assert "project_dim" in capsys.readouterr().err
    assert main(["cache", "--config", "stl10", *common, "representations.project_dim=512", "--rebuild"]) == 0
    assert FeatureCache.open(cache_dir).dims == {"pixels": 512, "local_std": 512}
    assert main(["cache", "--config", "stl10", *common, "representations.cache_dir=null"]) == 2
    assert "nothing to cache" in capsys.readouterr().err


def test_every_store_checks_its_row_indices_the_same_way(tmp_path, small_images):
    """The feature cache and precomputed teacher embeddings share one index check (mvmr.utils.row_index):
    unordered and repeated rows come back in the order asked, an int gives one row, and a float or
    out-of-range index is an error that names the store."""
    from mvmr.representations.teachers.precomputed import PrecomputedEmbeddings

    cache = build(tmp_path / "c", small_images)
    table = np.arange(30, dtype=np.float32).reshape(10, 3)
    np.save(tmp_path / "emb.npy", table)
    emb = PrecomputedEmbeddings(tmp_path / "emb.npy", dataset_length=10)
    order = [7, 2, 7, 0]
    torch.testing.assert_close(cache.get(torch.tensor(order))["flat"], cache.get(order)["flat"])
    torch.testing.assert_close(cache.get(order)["flat"][1], cache.get(2)["flat"])
    assert emb.get(np.array(order))["teacher"].tolist() == table[order].tolist()
    assert emb.get(3)["teacher"].shape == (3,) and cache.get(3)["pool"].shape == (48,)
    for store, what in ((cache, "a feature cache of 10 items"), (emb, "teacher embeddings of 10 rows")):
        with pytest.raises(IndexError, match=f"index 10 out of range for {what}"):
            store.get([1, 10])
        with pytest.raises(IndexError, match=f"index -1 out of range for {what}"):
            store.get(torch.tensor([-1]))
        with pytest.raises(TypeError, match="must be integers, got dtype float"):
            store.get(np.array([1.0]))
