"""The CUDA paths, against the CPU: representations, the batched augmentation, distance correlation,
live projection, the feature cache built on the GPU, and 16-mixed training steps.

Marked ``cuda``: they skip without a GPU and ``benchmarks/gpu_check.py`` runs them (``-m cuda``).
"""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
import torch
from torch.utils.data import TensorDataset

pytestmark = pytest.mark.cuda

sys.path.insert(0, str(Path(__file__).parent))
from _training_support import DETERMINISTIC_REPS, FEATURE_DIM, tiny_config, tiny_model  # noqa: E402


@pytest.mark.parametrize("name", ["pixels", "hog", "local_std", "scatnet"])
def test_representations_on_the_gpu_equal_the_cpu(name: str, imagenette_images: torch.Tensor) -> None:
    from mvmr.representations import build

    rep = build(name)
    images = imagenette_images[:16]
    torch.testing.assert_close(rep.cuda()(images.cuda()).cpu(), rep.cpu()(images), rtol=1e-4, atol=1e-4)


def test_batched_augmentation_on_the_gpu_applies_the_same_draws(imagenette_images: torch.Tensor) -> None:
    from mvmr.transforms import BatchAugmentation, PaperAugmentation

    aug = BatchAugmentation(PaperAugmentation(64))
    draws = aug.draw(32, 96, 96, generator=torch.Generator().manual_seed(0))
    cpu = aug.apply(imagenette_images[:32], draws)
    gpu = aug.apply(imagenette_images[:32].cuda(), {k: v.cuda() for k, v in draws.items()})
    torch.testing.assert_close(gpu.cpu(), cpu, rtol=0, atol=1e-4)
    assert aug(imagenette_images[:32].cuda()).device.type == "cuda"


def test_distance_correlation_and_its_gradient_on_the_gpu() -> None:
    from mvmr.losses import distance_correlation

    g = torch.Generator().manual_seed(0)
    x = torch.randn(256, 512, generator=g, dtype=torch.float64, requires_grad=True)
    y = x.detach()[:, :64] ** 2 + 0.1 * torch.randn(256, 64, generator=g, dtype=torch.float64)
    ref = distance_correlation(x, y)
    (grad_ref,) = torch.autograd.grad(ref, x)
    xc = x.detach().float().cuda().requires_grad_(True)
    out = distance_correlation(xc, y.float().cuda())
    (grad,) = torch.autograd.grad(out, xc)
    assert float(out) == pytest.approx(float(ref), rel=1e-4)
    torch.testing.assert_close(grad.double().cpu(), grad_ref, rtol=1e-2, atol=1e-6)


def test_live_projection_on_the_gpu_equals_the_cpu() -> None:
    from mvmr.sources import LiveSource

    images = torch.rand(8, 3, 48, 48)
    from mvmr.representations import build

    cpu = LiveSource({"pixels": build("pixels")}, project_dim=256, seed=3)
    gpu = LiveSource({"pixels": build("pixels")}, project_dim=256, seed=3)
    gpu.prepare("cuda")
    torch.testing.assert_close(
        gpu(images.cuda(), torch.arange(8))["pixels"].cpu(),
        cpu(images, torch.arange(8))["pixels"],
        rtol=1e-4,
        atol=1e-4,
    )


def test_feature_cache_built_on_the_gpu_equals_the_cpu_build(tmp_path: Path, cifar_images: torch.Tensor) -> None:
    from mvmr.cache import build_cache
    from mvmr.representations import build

    reps = {"hog": build("hog", cell=4), "local_std": build("local_std")}
    a = build_cache(
        tmp_path / "gpu",
        dataset=TensorDataset(cifar_images),
        representations=reps,
        image_size=32,
        device="cuda",
        progress=False,
        project_dim=500,
    )
    b = build_cache(
        tmp_path / "cpu",
        dataset=TensorDataset(cifar_images),
        representations=reps,
        image_size=32,
        device="cpu",
        progress=False,
        project_dim=500,
    )
    for name in a.names:
        torch.testing.assert_close(a.get(range(len(a)))[name], b.get(range(len(b)))[name], rtol=2e-3, atol=2e-3)


def test_sixteen_mixed_training_steps_on_the_gpu(cifar10_root: Path, tmp_path: Path) -> None:
    from mvmr.training.trainer import pretrain

    config = tiny_config(
        cifar10_root,
        tmp_path / "run",
        [
            f"representations.items={DETERMINISTIC_REPS}",
            "trainer.accelerator=gpu",
            "trainer.precision=16-mixed",
            "trainer.max_steps=4",
            f"representations.cache_dir={tmp_path / 'cache'}",
        ],
    )
    run = pretrain(config, model=tiny_model(), feature_dim=FEATURE_DIM)
    ckpt = torch.load(run / "checkpoints" / "last.ckpt", weights_only=True)
    assert ckpt["global_step"] == 4
    assert all(torch.isfinite(v).all() for v in ckpt["state_dict"].values() if v.is_floating_point())
