"""Shared fixtures: real images from ``../shared/data``, extracted once into ``.test-data/``."""

from __future__ import annotations

import os
import tarfile
from pathlib import Path

import pytest
import torch

REPO = Path(__file__).resolve().parents[1]
SHARED_DATA = Path(os.environ.get("MVMR_SHARED_DATA", REPO.parent / "shared" / "data"))
TEST_DATA = Path(os.environ.get("MVMR_TEST_DATA", REPO / ".test-data"))


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Tests marked ``cuda`` skip, saying so, where there is no GPU."""
    if torch.cuda.is_available():
        return
    skip = pytest.mark.skip(reason="needs a CUDA GPU (run benchmarks/gpu_check.py where there is one)")
    for item in items:
        if "cuda" in item.keywords:
            item.add_marker(skip)


def _extract(archive: str, folder: str) -> Path:
    target = TEST_DATA / folder
    done = TEST_DATA / f".{folder}.done"
    if done.exists():
        return target
    src = SHARED_DATA / archive
    if not src.exists():
        message = f"real test images not found: {src} (set MVMR_SHARED_DATA)"
        if os.environ.get("CI"):  # in CI the data is part of the contract: never skip silently
            pytest.fail(message)
        pytest.skip(message)
    TEST_DATA.mkdir(parents=True, exist_ok=True)
    with tarfile.open(src) as tar:
        tar.extractall(TEST_DATA, filter="data")
    done.touch()
    return target


@pytest.fixture(scope="session")
def cifar10_root() -> Path:
    """ImageFolder root with ``train/`` and ``test/`` (32x32 RGB JPEG, 10 classes)."""
    return _extract("cifar10-jpeg.tar.gz", "cifar10")


@pytest.fixture(scope="session")
def imagenette_root() -> Path:
    """ImageFolder root with ``train/`` and ``val/`` (96x96 RGB JPEG, 10 classes)."""
    return _extract("imagenette96.tar.gz", "imagenette96")


def load_images(folder: Path, n: int, size: int | None = None) -> torch.Tensor:
    """The first ``n`` images (sorted by path) of an ImageFolder split, as float (n, 3, H, W) in [0, 1]."""
    import numpy as np
    from PIL import Image

    all_paths = sorted(folder.rglob("*.jpg"))
    paths = all_paths[:: max(1, len(all_paths) // n)][:n]
    out = []
    for p in paths:
        img = Image.open(p).convert("RGB")
        if size is not None and img.size != (size, size):
            img = img.resize((size, size), Image.BICUBIC)
        out.append(torch.from_numpy(np.asarray(img, dtype=np.float32) / 255.0).permute(2, 0, 1))
    return torch.stack(out)


@pytest.fixture(scope="session")
def cifar_images(cifar10_root: Path) -> torch.Tensor:
    """64 real CIFAR-10 test images spread over the classes, (64, 3, 32, 32) in [0, 1]."""
    return load_images(cifar10_root / "test", 64)


@pytest.fixture(scope="session")
def imagenette_images(imagenette_root: Path) -> torch.Tensor:
    """32 real Imagenette val images spread over the classes, (32, 3, 96, 96) in [0, 1]."""
    return load_images(imagenette_root / "val", 32)
