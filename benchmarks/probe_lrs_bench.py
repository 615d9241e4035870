"""The linear probe's learning-rate choice: one lockstep fit of all ``lrs`` against one fit per lr.

Both sides run here, alternately, on the same random features at the demo's probe size (9,000 x 512
fit, 1,000 hold-out, 10 classes); the lockstep fit must also pick the same lr and epoch and give the
same weights as the best separate fit, bit for bit.

``--records FILE`` writes the run's one record (its settings, every repeat's seconds of both sides, whether the
results agree, the command line, threads and provenance); :func:`table` renders the table from records alone.

    python benchmarks/probe_lrs_bench.py               # demo size, 20 epochs, 2 repeats
    python benchmarks/probe_lrs_bench.py --epochs 100 --threads 2
    python benchmarks/probe_lrs_bench.py --epochs 20 --repeats 2 --records docs/results/bench-probe-lrs.json
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path
from typing import Any

import torch

from mvmr.evaluation.linear import LinearConfig, fit_with_selection

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _provenance import command, provenance, write_records  # noqa: E402


def table(records: list[dict[str, Any]]) -> str:
    """The Markdown table of docs/benchmarks.md's probe section from ``records`` alone: one row per record, each
    side's best repeat (s), the speed-up of the lockstep fit and whether it gave the best separate fit's result."""
    lines = [
        "| n x dim | lrs | epochs | threads | separate fits (s) | lockstep (s) | speed-up | same result |",
        "|---|---|---:|---:|---:|---:|---:|---|",
    ]
    for r in records:
        separate, lockstep = min(r["separate_s"]), min(r["lockstep_s"])
        lines.append(
            f"| {r['n']} x {r['dim']} | {', '.join(f'{lr:g}' for lr in r['lrs'])} | {r['epochs']} | {r['threads']} | "
            f"{separate:.2f} | {lockstep:.2f} | {separate / lockstep:.2f}x | {r['same']} |"
        )
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--n", type=int, default=9000)
    p.add_argument("--dim", type=int, default=512)
    p.add_argument("--epochs", type=int, default=20)
    p.add_argument("--lrs", type=float, nargs="+", default=[1e-4, 1e-3, 1e-2])
    p.add_argument("--repeats", type=int, default=2)
    p.add_argument("--threads", type=int, default=torch.get_num_threads())
    p.add_argument("--records", type=Path, default=None, metavar="FILE", help="write the run's record to this JSON")
    args = p.parse_args(argv)
    torch.set_num_threads(args.threads)
    g = torch.Generator().manual_seed(0)
    centres = torch.randn(10, args.dim, generator=g)
    y, yv = torch.randint(0, 10, (args.n,), generator=g), torch.randint(0, 10, (args.n // 9,), generator=g)
    x = centres[y] + 3 * torch.randn(args.n, args.dim, generator=g)
    xv = centres[yv] + 3 * torch.randn(len(yv), args.dim, generator=g)
    base = dict(epochs=args.epochs, device="cpu", progress=False)
    separate_s, lockstep_s = [], []
    for _ in range(args.repeats):
        t = time.perf_counter()
        fits = {
            lr: fit_with_selection((x, y), (xv, yv), num_classes=10, config=LinearConfig(lr=lr, **base))
            for lr in args.lrs
        }
        separate_s.append(time.perf_counter() - t)
        t = time.perf_counter()
        swept = fit_with_selection((x, y), (xv, yv), num_classes=10, config=LinearConfig(lrs=tuple(args.lrs), **base))
        lockstep_s.append(time.perf_counter() - t)
    best = fits[swept.val_metrics["chosen_lr"]]
    same = swept.chosen_epoch == best.chosen_epoch and torch.equal(
        swept.classifier.linear.weight, best.classifier.linear.weight
    )
    record = {
        "n": args.n,
        "dim": args.dim,
        "holdout": len(yv),
        "classes": 10,
        "lrs": list(args.lrs),
        "epochs": args.epochs,
        "repeats": args.repeats,
        "separate_s": separate_s,
        "lockstep_s": lockstep_s,
        "same": same,
        "chosen_lr": swept.val_metrics["chosen_lr"],
        "chosen_epoch": swept.chosen_epoch,
        "command": command(argv, __file__),
        "threads": args.threads,
        **provenance(),
    }
    if args.records is not None:
        write_records(args.records, [record])
    print(table([record]), end="")
    return 0 if same else 1


if __name__ == "__main__":
    raise SystemExit(main())
