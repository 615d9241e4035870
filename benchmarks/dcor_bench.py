"""Distance-correlation speed, side by side in one run (CPU by default).

Rows compare, for x and y of shape (B, D):

- ``mvmr``: ``mvmr.losses.distance_correlation`` (Gram-matrix distances, gradient-safe), forward + backward;
- ``naive``: ``torch.cdist`` then explicit double centring, forward + backward;
- ``dcor``: the ``dcor`` package (numpy, float64, forward only; it builds a (B, B, D) array, so
  cells where that would exceed ``--dcor-max-gb`` are skipped and say so).

Then the full ``MVMRLoss`` with five representations at B=256 (the sizes of a 96 px RGB image),
against computing each of its distance correlations separately.

    python benchmarks/dcor_bench.py                 # the full grid of issue 2
    python benchmarks/dcor_bench.py --quick         # a small grid
"""

from __future__ import annotations

import argparse
import platform
import time
from typing import Callable

import torch

from mvmr.losses import MVMRLoss, distance_correlation, variance_hinge


def naive_dcor(x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """The straightforward implementation: cdist, explicit double centring, eq. (2)."""

    def centred(t: torch.Tensor) -> torch.Tensor:
        d = torch.cdist(t, t)
        return d - d.mean(0, keepdim=True) - d.mean(1, keepdim=True) + d.mean()

    a, b = centred(x.flatten(1)), centred(y.flatten(1))
    return (a * b).mean() / torch.sqrt((a * a).mean() * (b * b).mean())


def timed(fn: Callable[[], object], repeats: int, min_total_s: float = 0.5) -> float:
    """Best time of at least ``repeats`` calls, and of more while they add up to < min_total_s
    (small cases get many samples, so their best is not a lucky or unlucky one)."""
    fn()  # warm-up
    best, total, n = float("inf"), 0.0, 0
    while n < repeats or total < min_total_s:
        t0 = time.perf_counter()
        fn()
        dt = time.perf_counter() - t0
        best, total, n = min(best, dt), total + dt, n + 1
    return best


def fwd_bwd(f, x: torch.Tensor, y: torch.Tensor) -> Callable[[], None]:
    def run() -> None:
        x.grad = None
        f(x, y).backward()

    return run


def dcor_grid(batches: list[int], dims: list[int], repeats: int, dcor_max_gb: float) -> None:
    import dcor
    import numpy as np

    print("\n## distance correlation, x and y both (B, D), float32; times in ms (best of >= %d calls and >= 0.5 s)\n" % repeats)
    print("| B | D | mvmr fwd+bwd | naive fwd+bwd | naive / mvmr | dcor fwd (float64) | dcor / mvmr fwd | mvmr fwd |")
    print("|---:|---:|---:|---:|---:|---:|---:|---:|")
    for b in batches:
        for d in dims:
            g = torch.Generator().manual_seed(0)
            x = torch.randn(b, d, generator=g, requires_grad=True)
            y = torch.randn(b, d, generator=g) ** 2
            ours = timed(fwd_bwd(distance_correlation, x, y), repeats)
            ours_fwd = timed(lambda: distance_correlation(x.detach(), y), repeats)
            naive = timed(fwd_bwd(naive_dcor, x, y), repeats)
            need_gb = b * b * d * 8 / 2**30
            if need_gb <= dcor_max_gb:
                xn, yn = x.detach().double().numpy(), y.double().numpy()
                ref = timed(lambda: dcor.distance_correlation_sqr(xn, yn), 1, min_total_s=0.0)
                ref_s, ratio = f"{ref * 1e3:.1f}", f"{ref / ours_fwd:.0f}x"
            else:
                ref_s, ratio = f"skipped (needs {need_gb:.0f} GB)", "-"
            print(f"| {b} | {d} | {ours * 1e3:.1f} | {naive * 1e3:.1f} | {naive / ours:.2f}x | {ref_s} | {ratio} | {ours_fwd * 1e3:.1f} |", flush=True)


def loss_row(batch: int, repeats: int) -> None:
    """MVMRLoss with 5 representations vs each dCor term computed on its own."""
    g = torch.Generator().manual_seed(0)
    dims = {"pixels": 3 * 96 * 96, "scatnet": 139_968, "hog": 144 * 24, "local_std": 3 * 96 * 96, "augmented_pixels": 3 * 96 * 96}
    reps = {k: torch.rand(batch, d, generator=g) for k, d in dims.items()}
    z = torch.randn(batch, 8192, generator=g, requires_grad=True)
    z_aug = torch.randn(batch, 8192, generator=g, requires_grad=True)
    loss_fn = MVMRLoss()

    def shared() -> None:
        z.grad = z_aug.grad = None
        loss_fn(z, z_aug, reps)[0].backward()

    def separately(dcor_fn) -> Callable[[], None]:
        def run() -> None:
            z.grad = z_aug.grad = None
            l1 = torch.nn.functional.mse_loss(z, z_aug) + variance_hinge(z) + variance_hinge(z_aug)
            loss = l1 + (1 - dcor_fn(z_aug, z)) + sum(1 - dcor_fn(z_aug, r) for r in reps.values())
            loss.backward()

        return run

    t_shared = timed(shared, repeats)
    t_sep = timed(separately(distance_correlation), repeats)
    t_naive = timed(separately(naive_dcor), repeats)
    print(f"\n## MVMRLoss, B={batch}, z in R^8192, 5 representations ({', '.join(f'{k} {d}' for k, d in dims.items())}); forward + backward, ms\n")
    print("| variant | ms | ratio to MVMRLoss |")
    print("|---|---:|---:|")
    print(f"| MVMRLoss (z_aug distances computed once) | {t_shared * 1e3:.0f} | 1.00x |")
    print(f"| each dCor term separately (mvmr dCor) | {t_sep * 1e3:.0f} | {t_sep / t_shared:.2f}x |")
    print(f"| each dCor term separately (naive cdist dCor) | {t_naive * 1e3:.0f} | {t_naive / t_shared:.2f}x |")


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--batches", type=int, nargs="+", default=[64, 256, 1024])
    p.add_argument("--dims", type=int, nargs="+", default=[512, 8192, 140_000])
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--loss-batch", type=int, default=256)
    p.add_argument("--dcor-max-gb", type=float, default=3.0)
    p.add_argument("--quick", action="store_true", help="B in {64, 256}, D in {512, 8192}")
    p.add_argument("--threads", type=int, default=None)
    args = p.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    if args.quick:
        args.batches, args.dims, args.loss_batch = [64, 256], [512, 8192], 64
    print(f"# dcor_bench: torch {torch.__version__}, {torch.get_num_threads()} threads, {platform.processor() or platform.machine()}")
    dcor_grid(args.batches, args.dims, args.repeats, args.dcor_max_gb)
    loss_row(args.loss_batch, args.repeats)


if __name__ == "__main__":
    main()
