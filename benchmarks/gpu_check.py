"""The prepared GPU check: the CUDA tests, then the stl10 config's training step on one card.

Run on a machine with a GPU (about 5 minutes on one H100)::

    python benchmarks/gpu_check.py --out runs/gpu-check          # Markdown table + gpu_check.json

and without one, inside the test suite, the same code at tiny sizes on the CPU::

    python benchmarks/gpu_check.py --smoke --out runs/gpu-check-smoke

What it does:

1. runs the tests marked ``cuda`` (``pytest -m cuda``);
2. trains a few dozen 16-mixed steps of the ``stl10`` config (ResNet-50, 96 px, batch 256,
   projector 8192-8192-8192) through the real trainer, once per variant: L1 only, MV-MR with
   live representations, MV-MR with the feature cache, and VICReg (lightly's loss) — images per
   second from the step time (data loading excluded) with the ratio to L1 only, the time between
   steps (data loading included: did the loader keep the GPU busy?) and the peak GPU memory;
3. times dCor at B = 256, D = 140,000 (forward + backward) and HOG and ScatNet on the GPU.

The images are a folder of JPEGs (``--data``), by default synthetic 96 px JPEGs written once
(real decoding work, no download). The targets: MV-MR with the cache at most 1.15x the step time
of L1 only, with live representations at most 1.5x, and the loader not the bottleneck. The JSON
holds the images per second that ``mvmr plan --throughput`` takes.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import torch
import torch.nn.functional as F

if TYPE_CHECKING:
    from mvmr.models import MVMRModel

REPO = Path(__file__).resolve().parents[1]


@dataclass(frozen=True)
class Sizes:
    encoder: str
    projector: str
    image_size: int
    batch: int
    images: int
    steps: int
    warmup: int
    dcor_batch: int
    dcor_dim: int
    workers: int


FULL = Sizes("resnet50", "8192-8192-8192", 96, 256, 256 * 24, 30, 5, 256, 140_000, min(12, os.cpu_count() or 1))
SMOKE = Sizes("resnet18", "64-64", 32, 8, 48, 2, 1, 16, 2_000, 0)


def register_l1_only() -> None:
    """``method: gpu_check_l1``, MV-MR's L1 alone on its two views (eq. 7: MSE between the views + the
    variance hinges): the baseline step."""
    from mvmr.losses import variance_hinge
    from mvmr.methods import MVMR, Method, StepOutput, available_methods, register_method

    class L1Only(Method):
        name = "gpu_check_l1"
        description = "L1 only (gpu_check baseline)"
        views = MVMR.views  # the clean view and an augmented one

        def step(self, model: MVMRModel, batch: Any) -> StepOutput:
            h, z_a = model.forward_with_features(batch[0])
            z_b = model(batch[1])
            loss = F.mse_loss(z_a, z_b) + variance_hinge(z_a) + variance_hinge(z_b)
            return StepOutput(loss, {"loss": loss.detach()}, h, z_a)

    if "gpu_check_l1" not in available_methods():
        register_method(L1Only)


def synthetic_jpegs(root: Path, n: int, size: int) -> Path:
    """``n`` JPEGs of ``size`` px in 10 class folders: smooth random colour fields plus noise (decoded
    like photos, nothing to download). Written once."""
    from PIL import Image

    done = root / ".done"
    if done.is_file():
        return root
    rng = np.random.default_rng(0)
    for i in range(n):
        low = rng.random((4, 4, 3))
        image = np.kron(low, np.ones((size // 4 + 1, size // 4 + 1, 1)))[:size, :size]
        image = np.clip(image + 0.15 * rng.standard_normal((size, size, 3)), 0, 1)
        folder = root / "train" / f"class{i % 10}"
        folder.mkdir(parents=True, exist_ok=True)
        Image.fromarray((image * 255).astype(np.uint8)).save(folder / f"{i:06d}.jpg", quality=90)
    done.touch()
    return root


def run_cuda_tests() -> str:
    proc = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-m", "cuda", "-p", "no:cacheprovider", str(REPO / "tests")],
        cwd=REPO,
        capture_output=True,
        text=True,
    )
    last = (proc.stdout.strip().splitlines() or ["no output"])[-1]
    return ("passed: " if proc.returncode == 0 else "FAILED: ") + last


def time_variants(sizes: Sizes, data: Path, out: Path, device: str) -> dict[str, dict]:
    from mvmr.config import load_config
    from mvmr.training.timing import time_steps

    register_l1_only()
    gpu = device == "cuda"
    base = [
        "data.kind=imagefolder",
        f"data.root={data}",
        "data.split=train",
        f"data.image_size={sizes.image_size}",
        f"data.batch_size={sizes.batch}",
        f"data.num_workers={sizes.workers}",
        "data.val_fraction=0",
        f"model.encoder={sizes.encoder}",
        f"model.projector='{sizes.projector}'",
        "probe.enabled=false",
        f"trainer.accelerator={'gpu' if gpu else 'cpu'}",
        "trainer.devices=1",
        f"trainer.precision={'16-mixed' if gpu else '32-true'}",
        "trainer.accumulate_grad_batches=1",
        "trainer.log_every_n_steps=1000",
        f"output_dir={out / 'run'}",
    ]
    variants = {
        "L1 only": ["method=gpu_check_l1"],
        "MV-MR, live representations": ["method=mvmr", "representations.cache_dir=null"],
        "MV-MR, feature cache": ["method=mvmr", f"representations.cache_dir={out / 'cache'}"],
        "VICReg (lightly)": ["method=vicreg"],
    }
    results = {}
    for name, over in variants.items():
        config = load_config("stl10", [*base, *over])
        if gpu:
            torch.cuda.empty_cache()
            torch.cuda.reset_peak_memory_stats()
        t = time_steps(config, steps=sizes.steps, warmup=sizes.warmup)
        t["peak_gpu_bytes"] = torch.cuda.max_memory_allocated() if gpu else None
        results[name] = t
        print(f"[gpu_check] {name}: {t['images_per_s']:.0f} images/s", flush=True)
    return results


def time_kernels(sizes: Sizes, device: str) -> dict[str, float]:
    from mvmr.losses import distance_correlation
    from mvmr.representations import build

    def clock(fn: Callable[[], object], repeats: int = 5) -> float:
        fn()
        times = []
        for _ in range(repeats):
            if device == "cuda":
                torch.cuda.synchronize()
            start = time.perf_counter()
            fn()
            if device == "cuda":
                torch.cuda.synchronize()
            times.append(time.perf_counter() - start)
        return statistics.median(times)

    z = torch.randn(sizes.dcor_batch, 8192 if sizes is FULL else 64, device=device, requires_grad=True)
    rep = torch.randn(sizes.dcor_batch, sizes.dcor_dim, device=device)
    out = {"dcor_seconds": clock(lambda: distance_correlation(z, rep).backward())}
    images = torch.rand(sizes.batch, 3, sizes.image_size, sizes.image_size, device=device)
    for name in ("hog", "scatnet"):
        module = build(name).to(device)
        with torch.no_grad():
            out[f"{name}_images_per_s"] = sizes.batch / clock(partial(module, images), repeats=3)
    return out


def report(device_name: str, sizes: Sizes, tests: str, variants: dict[str, dict], kernels: dict[str, float]) -> str:
    base = variants["L1 only"]["seconds"]
    lines = [
        f"### GPU check on {device_name}: {sizes.encoder}, {sizes.image_size} px, batch {sizes.batch}, "
        f"projector {sizes.projector}, {sizes.steps} timed steps",
        "",
        f"CUDA tests: {tests}",
        "",
        "| variant | images/s (step) | step vs L1 only | images/s (with data loading) | loader kept up "
        "| peak GPU memory |",
        "|---|---:|---:|---:|---|---:|",
    ]
    for name, t in variants.items():
        busy = t["seconds"] / t["interval"]
        mem = "—" if t["peak_gpu_bytes"] is None else f"{t['peak_gpu_bytes'] / 2**30:.1f} GiB"
        lines.append(
            f"| {name} | {t['images_per_s']:.0f} | {t['seconds'] / base:.2f}x | {sizes.batch / t['interval']:.0f} | "
            f"{'yes' if busy >= 0.9 else 'NO'} ({100 * busy:.0f}% busy) | {mem} |"
        )
    lines += [
        "",
        "| kernel | value |",
        "|---|---:|",
        f"| dCor, B = {sizes.dcor_batch}, D = {sizes.dcor_dim:,} (forward + backward) "
        f"| {1000 * kernels['dcor_seconds']:.1f} ms |",
        f"| HOG, {sizes.image_size} px | {kernels['hog_images_per_s']:.0f} images/s |",
        f"| ScatNet (J=2, L=8), {sizes.image_size} px | {kernels['scatnet_images_per_s']:.0f} images/s |",
        "",
    ]
    cache = variants["MV-MR, feature cache"]["seconds"] / base
    live = variants["MV-MR, live representations"]["seconds"] / base
    loader = min(t["seconds"] / t["interval"] for t in variants.values())
    lines += [
        f"- MV-MR with the cache: {cache:.2f}x L1 only (target <= 1.15): {'met' if cache <= 1.15 else 'NOT met'}",
        f"- MV-MR with live representations: {live:.2f}x L1 only (target <= 1.5): "
        f"{'met' if live <= 1.5 else 'NOT met'}",
        f"- data loading: the GPU was busy >= {100 * loader:.0f}% of the time: "
        f"{'not the bottleneck' if loader >= 0.9 else 'THE BOTTLENECK'}",
    ]
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--smoke", action="store_true", help="tiny sizes on the CPU (the test suite runs this)")
    p.add_argument("--data", type=Path, default=None, help="an ImageFolder root with train/ (default: synthetic JPEGs)")
    p.add_argument("--out", type=Path, default=Path("runs/gpu-check"))
    p.add_argument("--skip-tests", action="store_true", help="do not run the cuda-marked tests first")
    args = p.parse_args(argv)
    if not args.smoke and not torch.cuda.is_available():
        raise SystemExit("benchmarks/gpu_check.py needs a CUDA GPU; without one, run it with --smoke")
    sizes, device = (SMOKE, "cpu") if args.smoke else (FULL, "cuda")
    device_name = "CPU (smoke sizes)" if args.smoke else torch.cuda.get_device_name()
    args.out.mkdir(parents=True, exist_ok=True)
    tests = "not run (--skip-tests / --smoke)" if (args.skip_tests or args.smoke) else run_cuda_tests()
    data = args.data or synthetic_jpegs(args.out / "images", sizes.images, 96 if not args.smoke else 40)
    variants = time_variants(sizes, data, args.out, device)
    kernels = time_kernels(sizes, device)
    text = report(device_name, sizes, tests, variants, kernels)
    (args.out / "gpu_check.md").write_text(text, encoding="utf-8")
    summary = {
        "device": device_name,
        "sizes": sizes.__dict__,
        "tests": tests,
        "kernels": kernels,
        "variants": {k: {kk: vv for kk, vv in v.items() if kk != "all"} for k, v in variants.items()},
    }
    (args.out / "gpu_check.json").write_text(json.dumps(summary, indent=2, default=str), encoding="utf-8")
    print(text, end="")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
