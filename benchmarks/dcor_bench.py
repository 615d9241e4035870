"""Distance-correlation speed, side by side in one run (CPU by default).

Rows compare, for x and y of shape (B, D):

- ``mvmr``: ``mvmr.losses.distance_correlation`` (Gram-matrix distances, gradient-safe), forward + backward;
- ``naive``: ``torch.cdist`` then explicit double centring, forward + backward;
- ``dcor``: the ``dcor`` package (numpy, float64, forward only; it builds a (B, B, D) array, so
  cells where that would exceed ``--dcor-max-gb`` are skipped and say so).

Then the full ``MVMRLoss`` with five representations at B=256 (the sizes of a 96 px RGB image),
against computing each of its distance correlations separately.

``--records FILE`` writes one JSON record per row of either table (its settings, every timed call,
the command line, threads and provenance); :func:`table` renders the tables from those records alone.

    python benchmarks/dcor_bench.py                 # the full grid of issue 2
    python benchmarks/dcor_bench.py --quick         # a small grid
    python benchmarks/dcor_bench.py --records docs/results/bench-dcor.json
"""

from __future__ import annotations

import argparse
import platform
import sys
import time
from collections.abc import Callable
from functools import partial
from pathlib import Path
from typing import Any

import torch

from mvmr.losses import MVMRLoss, distance_correlation, variance_hinge

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _provenance import command, provenance, write_records  # noqa: E402

#: the loss table's rows: record key -> label
LOSS_VARIANTS = {
    "shared": "MVMRLoss (z_aug distances computed once)",
    "separate_mvmr": "each dCor term separately (mvmr dCor)",
    "separate_naive": "each dCor term separately (naive cdist dCor)",
}
MIN_TOTAL_S = 0.5


def naive_dcor(x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """The straightforward implementation: cdist, explicit double centring, eq. (2)."""

    def centred(t: torch.Tensor) -> torch.Tensor:
        d = torch.cdist(t, t)
        return d - d.mean(0, keepdim=True) - d.mean(1, keepdim=True) + d.mean()

    a, b = centred(x.flatten(1)), centred(y.flatten(1))
    return (a * b).mean() / torch.sqrt((a * a).mean() * (b * b).mean())


def timed(fn: Callable[[], object], repeats: int, min_total_s: float = MIN_TOTAL_S) -> list[float]:
    """The seconds of every timed call (after one warm-up): at least ``repeats`` calls, and more while they add
    up to < min_total_s (small cases get many samples, so their best is not a lucky or unlucky one)."""
    fn()  # warm-up
    times: list[float] = []
    while len(times) < repeats or sum(times) < min_total_s:
        t0 = time.perf_counter()
        fn()
        times.append(round(time.perf_counter() - t0, 9))
    return times


def fwd_bwd(
    f: Callable[[torch.Tensor, torch.Tensor], torch.Tensor], x: torch.Tensor, y: torch.Tensor
) -> Callable[[], None]:
    def run() -> None:
        x.grad = None
        f(x, y).backward()

    return run


def dcor_grid(
    batches: list[int], dims: list[int], repeats: int, dcor_max_gb: float, min_total_s: float = MIN_TOTAL_S
) -> list[dict[str, Any]]:
    """One record per (B, D) cell: every timed call of each implementation (``dcor_fwd_s`` None where skipped)."""
    records = []
    for b in batches:
        for d in dims:
            g = torch.Generator().manual_seed(0)
            x = torch.randn(b, d, generator=g, requires_grad=True)
            y = torch.randn(b, d, generator=g) ** 2
            ours = timed(fwd_bwd(distance_correlation, x, y), repeats, min_total_s)
            ours_fwd = timed(partial(distance_correlation, x.detach(), y), repeats, min_total_s)
            naive = timed(fwd_bwd(naive_dcor, x, y), repeats, min_total_s)
            need_gb = b * b * d * 8 / 2**30
            ref = None
            if need_gb <= dcor_max_gb:
                import dcor  # numba compiles on import (seconds): only where a cell needs it

                xn, yn = x.detach().double().numpy(), y.double().numpy()
                ref = timed(partial(dcor.distance_correlation_sqr, xn, yn), 1, min_total_s=0.0)
            records.append(
                {
                    "table": "dcor",
                    "batch": b,
                    "dim": d,
                    "dtype": "float32",
                    "min_repeats": repeats,
                    "min_total_s": min_total_s,
                    "mvmr_fwd_bwd_s": ours,
                    "mvmr_fwd_s": ours_fwd,
                    "naive_fwd_bwd_s": naive,
                    "dcor_fwd_s": ref,
                    "dcor_needs_gb": need_gb,
                    "dcor_max_gb": dcor_max_gb,
                }
            )
            print(f"dcor_bench: B={b} D={d} measured", file=sys.stderr, flush=True)
    return records


def loss_rows(batch: int, repeats: int, min_total_s: float = MIN_TOTAL_S) -> list[dict[str, Any]]:
    """MVMRLoss with 5 representations vs each dCor term computed on its own: one record per variant."""
    g = torch.Generator().manual_seed(0)
    dims = {
        "pixels": 3 * 96 * 96,
        "scatnet": 139_968,
        "hog": 144 * 24,
        "local_std": 3 * 96 * 96,
        "augmented_pixels": 3 * 96 * 96,
    }
    embed = 8192
    reps = {k: torch.rand(batch, d, generator=g) for k, d in dims.items()}
    z = torch.randn(batch, embed, generator=g, requires_grad=True)
    z_aug = torch.randn(batch, embed, generator=g, requires_grad=True)
    loss_fn = MVMRLoss()

    def shared() -> None:
        z.grad = z_aug.grad = None
        loss_fn(z, z_aug, reps)[0].backward()

    def separately(dcor_fn: Callable[[torch.Tensor, torch.Tensor], torch.Tensor]) -> Callable[[], None]:
        def run() -> None:
            z.grad = z_aug.grad = None
            l1 = torch.nn.functional.mse_loss(z, z_aug) + variance_hinge(z) + variance_hinge(z_aug)
            loss = l1 + (1 - dcor_fn(z_aug, z)) + sum(1 - dcor_fn(z_aug, r) for r in reps.values())
            loss.backward()

        return run

    runs = {
        "shared": shared,
        "separate_mvmr": separately(distance_correlation),
        "separate_naive": separately(naive_dcor),
    }
    records = []
    for key, fn in runs.items():
        records.append(
            {
                "table": "mvmr_loss",
                "variant": key,
                "batch": batch,
                "embed_dim": embed,
                "representations": dims,
                "min_repeats": repeats,
                "min_total_s": min_total_s,
                "seconds": timed(fn, repeats, min_total_s),
            }
        )
        print(f"dcor_bench: MVMRLoss {key} measured", file=sys.stderr, flush=True)
    return records


def table(records: list[dict[str, Any]]) -> str:
    """The Markdown of docs/benchmarks.md's distance-correlation section from ``records`` alone: the (B, D) grid
    (ms, best of every timed call) and, where there are ``mvmr_loss`` records, the full loss's table under its
    one-line caption. Either part is left out when no record has it."""
    parts = []
    grid = [r for r in records if r["table"] == "dcor"]
    if grid:
        lines = [
            "| B | D | mvmr fwd+bwd | naive fwd+bwd | naive / mvmr | dcor fwd (float64) | dcor / mvmr fwd | mvmr fwd |",
            "|---:|---:|---:|---:|---:|---:|---:|---:|",
        ]
        for r in grid:
            ours, ours_fwd, naive = min(r["mvmr_fwd_bwd_s"]), min(r["mvmr_fwd_s"]), min(r["naive_fwd_bwd_s"])
            if r["dcor_fwd_s"]:
                ref = min(r["dcor_fwd_s"])
                ref_s, ratio = f"{ref * 1e3:.1f}", f"{ref / ours_fwd:.0f}x"
            else:
                ref_s, ratio = f"skipped (needs {r['dcor_needs_gb']:.0f} GB)", "-"
            lines.append(
                f"| {r['batch']} | {r['dim']} | {ours * 1e3:.1f} | {naive * 1e3:.1f} | {naive / ours:.2f}x | {ref_s} | "
                f"{ratio} | {ours_fwd * 1e3:.1f} |"
            )
        parts.append("\n".join(lines) + "\n")
    loss = {r["variant"]: r for r in records if r["table"] == "mvmr_loss"}
    if loss:
        first = next(iter(loss.values()))
        reps = ", ".join(f"{k} {d}" for k, d in first["representations"].items())
        lines = [
            f"MVMRLoss, B={first['batch']}, z in R^{first['embed_dim']}, {len(first['representations'])} "
            f"representations ({reps}); forward + backward, ms:",
            "",
            "| variant | ms | ratio to MVMRLoss |",
            "|---|---:|---:|",
        ]
        base = min(loss["shared"]["seconds"])
        for key, label in LOSS_VARIANTS.items():
            if key in loss:
                t = min(loss[key]["seconds"])
                lines.append(f"| {label} | {t * 1e3:.0f} | {t / base:.2f}x |")
        parts.append("\n".join(lines) + "\n")
    return "\n".join(parts)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--batches", type=int, nargs="+", default=[64, 256, 1024])
    p.add_argument("--dims", type=int, nargs="+", default=[512, 8192, 140_000])
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--loss-batch", type=int, default=256)
    p.add_argument("--dcor-max-gb", type=float, default=3.0)
    p.add_argument("--quick", action="store_true", help="B in {64, 256}, D in {512, 8192}")
    p.add_argument("--threads", type=int, default=None)
    p.add_argument(
        "--min-seconds",
        type=float,
        default=MIN_TOTAL_S,
        help=f"keep calling a variant until its timed calls add up to this (default {MIN_TOTAL_S})",
    )
    p.add_argument("--records", type=Path, default=None, metavar="FILE", help="write every row's record to this JSON")
    args = p.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    if args.quick:
        args.batches, args.dims, args.loss_batch = [64, 256], [512, 8192], 64
    print(
        f"# dcor_bench: torch {torch.__version__}, {torch.get_num_threads()} threads, "
        f"{platform.processor() or platform.machine()}"
    )
    records = dcor_grid(args.batches, args.dims, args.repeats, args.dcor_max_gb, args.min_seconds)
    records += loss_rows(args.loss_batch, args.repeats, args.min_seconds)
    common = {"command": command(argv, __file__), "threads": torch.get_num_threads(), **provenance()}
    records = [{**r, **common} for r in records]
    if args.records is not None:
        write_records(args.records, records)
    print(
        f"\n## distance correlation, x and y both (B, D), float32; times in ms (best of >= {args.repeats} calls "
        f"and >= {args.min_seconds:g} s)\n"
    )
    print(table(records), end="")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
