"""The linear probe's learning-rate choice: one lockstep fit of all ``lrs`` against one fit per lr.

Both sides run here, alternately, on the same random features at the demo's probe size (9,000 x 512
fit, 1,000 hold-out, 10 classes); the lockstep fit must also pick the same lr and epoch and give the
same weights as the best separate fit, bit for bit.

    python benchmarks/probe_lrs_bench.py               # demo size, 20 epochs, 2 repeats
    python benchmarks/probe_lrs_bench.py --epochs 100 --threads 2
"""

from __future__ import annotations

import argparse
import time

import torch

from mvmr.evaluation.linear import LinearConfig, fit_with_selection


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--n", type=int, default=9000)
    p.add_argument("--dim", type=int, default=512)
    p.add_argument("--epochs", type=int, default=20)
    p.add_argument("--lrs", type=float, nargs="+", default=[1e-4, 1e-3, 1e-2])
    p.add_argument("--repeats", type=int, default=2)
    p.add_argument("--threads", type=int, default=torch.get_num_threads())
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
        fits = {lr: fit_with_selection((x, y), (xv, yv), num_classes=10, config=LinearConfig(lr=lr, **base))
                for lr in args.lrs}
        separate_s.append(time.perf_counter() - t)
        t = time.perf_counter()
        swept = fit_with_selection((x, y), (xv, yv), num_classes=10, config=LinearConfig(lrs=tuple(args.lrs), **base))
        lockstep_s.append(time.perf_counter() - t)
    best = fits[swept.val_metrics["chosen_lr"]]
    same = (swept.chosen_epoch == best.chosen_epoch
            and torch.equal(swept.classifier.linear.weight, best.classifier.linear.weight))
    print("| n x dim | lrs | epochs | threads | separate fits (s) | lockstep (s) | speed-up | same result |")
    print("|---|---|---:|---:|---:|---:|---:|---|")
    print(f"| {args.n} x {args.dim} | {', '.join(f'{lr:g}' for lr in args.lrs)} | {args.epochs} | {args.threads} | "
          f"{min(separate_s):.2f} | {min(lockstep_s):.2f} | {min(separate_s) / min(lockstep_s):.2f}x | {same} |")
    return 0 if same else 1


if __name__ == "__main__":
    raise SystemExit(main())
