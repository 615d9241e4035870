"""Every method at its best: the same learning-rate sweep for MV-MR and its peers, chosen on validation.

Each method of ``--methods`` (rows of ``benchmarks/accuracy.py``: MV-MR with the paper's choices, and
VICReg, Barlow Twins and BYOL with solo-learn's CIFAR settings) trains at every learning rate of its
grid, at one seed and one budget, through ``accuracy.py`` (the same images, encoder, probe and
schedule as the budget curve). The learning rate of each method is chosen on ``val top-1``, the
probe's hold-out of the training images; the test column is printed beside it, never used to choose.
Then ``accuracy.py --set optim.lr=<chosen>`` runs the budget points with the chosen settings.

Grids (3 values each, around the method's own optimiser and learning rate): MV-MR Adam 3e-4, 1e-3,
3e-3; VICReg and Barlow Twins LARS 0.15, 0.3, 0.6; BYOL LARS 0.5, 1, 2 (LARS values are for batch 256,
scaled linearly to the batch). A grid whose best value on validation is at an edge grows by one value
beyond it, at the grid's own ratio, up to twice per side (:func:`grid`): no method is chosen at the
edge of its sweep unless it has grown twice.

Example::

    python benchmarks/peer_sweep.py --epochs 5 --plan        # the runs, as commands
    python benchmarks/peer_sweep.py --epochs 5               # run them (resumable), one at a time
    python benchmarks/peer_sweep.py --epochs 5 --collect --records docs/results/peer-sweep.json
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "benchmarks"))
ACCURACY = REPO / "benchmarks" / "accuracy.py"

#: method (a row of accuracy.py) -> its learning-rate grid
GRIDS: dict[str, list[float]] = {
    "mvmr_paper": [3e-4, 1e-3, 3e-3],
    "vicreg_tuned": [0.15, 0.3, 0.6],
    "barlow_twins_tuned": [0.15, 0.3, 0.6],
    "byol_tuned": [0.5, 1.0, 2.0],
}
#: the budget curve's setting (docs/results.md), but the epochs
SETTING = [
    "--pretrain-size",
    "10000",
    "--probe-train-size",
    "10000",
    "--probe-test-size",
    "10000",
    "--batch-size",
    "64",
    "--projector",
    "1024-1024-1024",
    "--probe-epochs",
    "100",
]


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--methods", default=",".join(GRIDS), help="comma-separated rows of accuracy.py")
    p.add_argument("--epochs", type=int, default=5, help="the budget the learning rate is chosen at")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", default="runs/cpu/peer-sweep")
    p.add_argument("--cache", default="runs/cpu/rep-cache-a", help="MV-MR's feature cache (shared by the runs)")
    p.add_argument("--plan", action="store_true", help="print the runs as commands and exit")
    p.add_argument("--collect", action="store_true", help="run nothing: print the table of the finished runs")
    p.add_argument("--records", default=None, metavar="FILE", help="with --collect: write every run to this JSON")
    args = p.parse_args(argv)
    args.methods = [m.strip() for m in args.methods.split(",") if m.strip()]
    unknown = [m for m in args.methods if m not in GRIDS]
    if unknown:
        p.error(f"no learning-rate grid for {', '.join(unknown)}; methods: {', '.join(GRIDS)}")
    return args


def run_folder(args: argparse.Namespace, method: str, lr: float) -> Path:
    """A folder per run, so that runs in parallel lanes never share one."""
    return Path(args.out) / f"e{args.epochs}" / method / f"lr{lr:g}"


#: how many values a grid may grow by, beyond either edge
MAX_EXTENSIONS = 2


def grid(method: str, found: list[dict]) -> list[float]:
    """``method``'s grid, grown while its whole grid has run and the best on validation is at an edge:
    one more value beyond that edge, at the grid's own ratio (at most :data:`MAX_EXTENSIONS` per
    side). The same rule for every method, so that no method is chosen at the edge of its sweep."""
    lrs = sorted(GRIDS[method])
    val = {r["lr"]: r["val_top1"] for r in found if r["method"] == method}
    grown = {"low": 0, "high": 0}
    while set(lrs) <= set(val):
        best = max(lrs, key=lambda lr: (val[lr], -lr))  # ties go to the smaller lr, as chosen() does
        if best == lrs[-1] and grown["high"] < MAX_EXTENSIONS:
            grown["high"] += 1
            lrs.append(_beyond(lrs, high=True))
        elif best == lrs[0] and grown["low"] < MAX_EXTENSIONS:
            grown["low"] += 1
            lrs.insert(0, _beyond(lrs, high=False))
        else:
            break
    return lrs


def _beyond(lrs: list[float], *, high: bool) -> float:
    """The next value past the top (or bottom) of the sorted ``lrs``, at the ratio of its last step."""
    a, b = (lrs[-1], lrs[-2]) if high else (lrs[0], lrs[1])
    return float(f"{a * a / b:.3g}")


def _candidates(method: str) -> list[float]:
    """Every value ``method``'s grid can hold once grown."""
    high, low = sorted(GRIDS[method]), sorted(GRIDS[method])
    for _ in range(MAX_EXTENSIONS):
        high.append(_beyond(high, high=True))
        low.insert(0, _beyond(low, high=False))
    return sorted(set(low) | set(high))


def commands(args: argparse.Namespace, found: list[dict] | None = None) -> list[list[str]]:
    """One accuracy.py call per (method, learning rate) of its grid, grown by the finished runs."""
    found = results(args) if found is None else found
    return [
        [
            sys.executable,
            str(ACCURACY),
            *SETTING,
            "--epochs",
            str(args.epochs),
            "--seeds",
            str(args.seed),
            "--cache",
            args.cache,
            "--out",
            str(run_folder(args, method, lr)),
            "--rows",
            f"{method}@{args.seed}",
            "--set",
            f"optim.lr={lr:g}",
        ]
        for method in args.methods
        for lr in grid(method, found)
    ]


def results(args: argparse.Namespace) -> list[dict]:
    """The finished runs: method, lr, and the row's result (val top-1, test top-1, k-NN, times)."""
    from _provenance import provenance

    found, where = [], provenance()
    for method in args.methods:
        for lr in _candidates(method):
            path = run_folder(args, method, lr) / f"{method}@{args.seed}" / "result.json"
            if path.is_file():
                found.append(
                    {"method": method, "lr": lr, "epochs": args.epochs, **where, **json.loads(path.read_text())}
                )
    return found


def chosen(found: list[dict]) -> dict[str, dict]:
    """Each method's run with the best val top-1 (validation data only; ties go to the smaller lr), for
    the methods whose whole grid has run: a choice among part of the grid is no choice yet."""
    best: dict[str, dict] = {}
    for r in sorted(found, key=lambda r: r["lr"]):
        if r["method"] not in best or r["val_top1"] > best[r["method"]]["val_top1"]:
            best[r["method"]] = r
    ran = {m: {r["lr"] for r in found if r["method"] == m} for m in best}
    return {m: r for m, r in best.items() if m not in GRIDS or set(grid(m, found)) <= ran[m]}


def table(found: list[dict]) -> str:
    """A row per (method, lr): val top-1 (what chooses), test top-1 and k-NN; the chosen lr in bold."""
    best = chosen(found)
    lines = [
        "| method | lr | val top-1 | linear top-1 (test) | k-NN top-1 | pretrain (s) |",
        "|---|---:|---:|---:|---:|---:|",
    ]
    for r in found:
        mark = "**" if best.get(r["method"]) is r else ""
        lines.append(
            f"| {r['method']} | {mark}{r['lr']:g}{mark} | {r['val_top1']:.2f} | {r['linear_top1']:.2f} | "
            f"{r['knn_top1']:.2f} | {r['pretrain_s']:.0f} |"
        )
    pending = sorted({r["method"] for r in found} - set(best))
    if pending:
        lines += ["", f"Not chosen yet (part of the grid still to run): {', '.join(pending)}."]
    return "\n".join(lines) + "\n"


#: what every method of accuracy.py gets before its own overrides (its base_overrides and SETTING)
BASE = {
    "method": "mvmr",
    "optim.optimizer": "adam",
    "optim.weight_decay": "0",
    "optim.lr_scaling": "none",
    "optim.base_batch_size": "256",
    "optim.warmup_epochs": "0",
    "model.projector": "1024-1024-1024",
    "method_kwargs": "{}",
}


def settings(method: str, lr: float, batch_size: int = 64) -> dict[str, str]:
    """The settings ``method`` trains with at ``lr``: its accuracy.py overrides over :data:`BASE`."""
    import accuracy

    kv = dict(BASE)
    for item in accuracy.METHODS[method][1]:
        key, value = item.split("=", 1)
        kv[key] = value.strip("'")
    kv["optim.lr"] = f"{lr:g}"
    scale = batch_size / float(kv["optim.base_batch_size"]) if kv["optim.lr_scaling"] == "linear" else 1.0
    kv["lr at batch"] = f"{lr * scale:.3g}"
    return kv


def chosen_table(found: list[dict]) -> str:
    """The settings each method was chosen with: optimiser, lr (as given and at the batch), projector, loss."""
    if not chosen(found):
        return "No method has run its whole grid yet.\n"
    lines = [
        "| method | optimiser | lr chosen | lr at batch 64 | weight decay | warm-up (epochs) | projector | "
        "loss settings | val top-1 | linear top-1 (test) |",
        "|---|---|---:|---:|---:|---:|---|---|---:|---:|",
    ]
    for method, r in chosen(found).items():
        kv = settings(method, r["lr"])
        per = " per 256" if kv["optim.lr_scaling"] == "linear" else ""
        loss = kv["method_kwargs"] if kv["method_kwargs"] != "{}" else "defaults"
        lines.append(
            f"| {method} | {kv['optim.optimizer']} | {kv['optim.lr']}{per} | {kv['lr at batch']} | "
            f"{kv['optim.weight_decay']} | {kv['optim.warmup_epochs']} | {kv['model.projector']} | "
            f"{kv['method']}, {loss} | {r['val_top1']:.2f} | {r['linear_top1']:.2f} |"
        )
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args.plan:
        print("\n".join(" ".join(c) for c in commands(args)))
        return 0
    if args.collect:
        found = results(args)
        if args.records:  # written before the table is printed, so that a closed pipe cannot lose them
            from _provenance import write_records

            write_records(args.records, found)
        print(table(found) + "\n" + chosen_table(found) if found else "no finished run")
        return 0
    while todo := [c for c in commands(args) if not _finished(c)]:  # a grid may grow as its runs finish
        rc = subprocess.call(todo[0])  # accuracy.py resumes an interrupted row
        if rc != 0:
            return rc
    return 0


def _finished(cmd: list[str]) -> bool:
    out, row = cmd[cmd.index("--out") + 1], cmd[cmd.index("--rows") + 1]
    return (Path(out) / row / "result.json").is_file()


if __name__ == "__main__":
    sys.exit(main())
