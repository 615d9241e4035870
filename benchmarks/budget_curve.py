"""Linear top-1 against the pretraining budget: MV-MR against its ablation and two peer methods.

Each budget is a separate run of ``benchmarks/accuracy.py`` (its own cosine schedule, so a
5-epoch row is a 5-epoch run, not the 5th epoch of a 20-epoch one) with the settings of the
10,000-image table, and every row is resumable: a row whose ``result.json`` exists is skipped.

Phases:

1. seed 0 of every trained row at every budget (shortest budgets first), and the reference rows
   (untrained encoder, raw pixels, HOG alone, ScatNet alone) once: they do not train;
2. a second seed (1) for both rows of every pair whose seed-0 linear top-1 differ by less than
   ``--close`` points at a budget (decided from the finished results, so it is reproducible).

Points measured before, in runs whose folders are gone (another machine, an earlier session), come
from ``--earlier``: a JSON file with one linear top-1 per seed (``{budget: {row: [seed 0, seed 1]}}``,
``null`` for a seed not run; ``"reference": {row: {"linear_top1": .., "knn_top1": ..}}``; ``"source"``).
``--earlier`` also takes record lists (``accuracy.py --records``: one object per run, with
``method``, ``epochs``, ``seed`` and ``linear_top1``), several files in order, each filling only the
seeds the files before it lack. A point in ``<out>`` wins over the same seed's earlier point; a run
with an earlier point is not scheduled again, and both the table (†) and the plot (hollow) mark cells
that use earlier points.

``--chosen`` takes the records of ``peer_sweep.py``: each method there trains with the learning rate
chosen on validation (``--set optim.lr=...`` after its own settings), and the chosen run itself, the
same command at the sweep's budget and seed, is that cell's point.

Output: ``<out>/budget_curve.md`` (one table: mean +- sd over the seeds run, and the seeds) and
``<out>/budget_curve.png`` (linear top-1 against epochs, the reference rows as horizontal lines).

    python benchmarks/budget_curve.py --out runs/cpu/budget            # everything, resumable
    python benchmarks/budget_curve.py --out runs/cpu/budget --collect  # only the table and the plot
    python benchmarks/budget_curve.py --out runs/cpu/budget --collect --records docs/results/budget-curve.json
    python benchmarks/budget_curve.py --out runs/cpu/budget --plan     # list the runs, run nothing
    python benchmarks/budget_curve.py --out runs/cpu/budget --parallel 2  # two runs at a time (CPU)

With ``--parallel N`` up to N runs go at once, each with ``OMP_NUM_THREADS`` = cores / N (unless
set) and its output in ``<folder>/<key>.log``: on a 2-core CPU two one-thread runs make more steps
per second than one two-thread run (docs/benchmarks.md). Until the feature cache holds a finished
build, trained rows run one at a time, so that a single run fills it.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import statistics
import subprocess
import sys
import time
from collections.abc import Set as AbstractSet
from itertools import combinations
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
from _children import Children  # noqa: E402

from mvmr.workflows.ablation.report import binomial_se  # noqa: E402

#: the settings of the 10k table in docs/results.md (encoder, projector, optimiser, probe)
TABLE_10K = [
    "--pretrain-size",
    "10000",
    "--probe-train-size",
    "10000",
    "--batch-size",
    "64",
    "--projector",
    "1024-1024-1024",
    "--lr",
    "1e-3",
    "--probe-epochs",
    "100",
]
TRAINED = ["mvmr_paper", "l1_l3", "vicreg", "barlow_twins"]
REFERENCES = ["random", "rep_pixels", "rep_hog", "rep_scatnet"]
POLL_S = 0.5  # how often run() looks for finished runs


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--out", default="runs/cpu/budget")
    p.add_argument("--budgets", default="1,2,5,10,20", help="pretraining epochs, comma-separated")
    p.add_argument("--rows", default=",".join(TRAINED), help="trained rows of benchmarks/accuracy.py")
    p.add_argument("--references", default=",".join(REFERENCES), help="reference rows (run once)")
    p.add_argument("--close", type=float, default=3.0, help="run a second seed for two rows closer than this")
    p.add_argument("--cache", default=None, help="feature-cache folder (default: <out>/rep-cache)")
    p.add_argument("--collect", action="store_true", help="run nothing: write the table and the plot")
    p.add_argument("--plan", action="store_true", help="print the runs still to do and exit")
    p.add_argument(
        "--parallel",
        type=int,
        default=1,
        help="runs at a time, each with OMP_NUM_THREADS = cores / N and its own log file "
        "(<folder>/<key>.log); 1: one at a time, output to this terminal",
    )
    p.add_argument(
        "--earlier",
        nargs="+",
        default=[],
        metavar="FILE",
        help="JSON of points measured earlier with the same settings ({budget: {row: [seed 0, seed 1]}}, "
        "'reference' and 'source'; or a list of accuracy.py records; see the module docstring): "
        "each fills a seed <out> lacks, marked",
    )
    p.add_argument(
        "--chosen",
        default=None,
        metavar="FILE",
        help="peer_sweep.py's records: its methods train with the lr chosen on validation, and the "
        "chosen runs are points",
    )
    p.add_argument(
        "--records",
        default=None,
        metavar="FILE",
        help="also write accuracy.py's record of every finished run in <out> (every budget, seed and "
        "reference row: metrics, settings, times, machine) to this JSON list, to commit under "
        "docs/results/",
    )
    p.add_argument("extra", nargs="*", help="more benchmarks/accuracy.py options, after --")
    return p.parse_args(argv)


def _result(out: Path, key: str) -> dict | None:
    path = out / key / "result.json"
    return json.loads(path.read_text()) if path.is_file() else None


def merge_points(earlier: dict, records: list[dict]) -> dict:
    """``earlier`` ({budget: {row: [seed 0, seed 1]}}) with each record's linear top-1 in a seed it lacks."""
    merged = json.loads(json.dumps(earlier))  # a deep copy
    for r in records:
        seeds = merged.setdefault(str(r["epochs"]), {}).setdefault(r["method"], [])
        seeds.extend([None] * (r["seed"] + 1 - len(seeds)))
        if seeds[r["seed"]] is None:
            seeds[r["seed"]] = r["linear_top1"]
    return merged


def chosen_runs(sweep: list[dict]) -> list[dict]:
    """The run of each method of a peer sweep at the learning rate chosen on validation."""
    from peer_sweep import chosen

    return list(chosen(sweep).values())


def _earlier(args: argparse.Namespace) -> dict:
    points: dict = {}
    for path in args.earlier:
        data = json.loads(Path(path).read_text())
        if isinstance(data, list):
            points = merge_points(points, data)
            continue
        points = merge_points(points, _flatten(data))
        for name, ref in data.get("reference", {}).items():
            points.setdefault("reference", {}).setdefault(name, ref)
        if "source" in data:
            points["source"] = " ".join(filter(None, [points.get("source"), data["source"]]))
    if args.chosen:
        points = merge_points(points, chosen_runs(json.loads(Path(args.chosen).read_text())))
    return points


def _flatten(points: dict) -> list[dict]:
    """Points back as records (budget, row, seed), for merging them under a file read later."""
    return [
        {"epochs": b, "method": row, "seed": s, "linear_top1": v}
        for b, rows in points.items()
        if b.isdigit()
        for row, seeds in rows.items()
        for s, v in enumerate(seeds)
        if v is not None
    ]


def chosen_lr(args: argparse.Namespace) -> dict[str, float]:
    """Each swept method's learning rate chosen on validation (``--chosen``), by row."""
    if not args.chosen:
        return {}
    return {r["method"]: r["lr"] for r in chosen_runs(json.loads(Path(args.chosen).read_text()))}


def point(out: Path | None, earlier: dict, budget: int, row: str, seed: int) -> tuple[float | None, bool]:
    """Linear top-1 of ``row@seed`` at ``budget``: from its run in ``out`` (None: no run folder), else from
    ``earlier`` (then the flag is True), else None."""
    if out is not None and (r := _result(out / f"e{budget}", f"{row}@{seed}")):
        return r["linear_top1"], False
    seeds = earlier.get(str(budget), {}).get(row) or []
    value = seeds[seed] if seed < len(seeds) else None
    return value, value is not None


def reference(out: Path | None, earlier: dict, name: str) -> tuple[dict | None, bool]:
    """A reference row's result from its run in ``out`` (None: no run folder), else from ``earlier`` (flag
    True), else None."""
    if out is not None and (r := _result(out / "reference", name)):
        return r, False
    r = earlier.get("reference", {}).get(name)
    return r, r is not None


def second_seed_rows(out: Path, budget: int, rows: list[str], close: float, earlier: dict | None = None) -> list[str]:
    """Rows that need seed 1 at ``budget``: both members of every pair closer than ``close``."""
    first = {r: point(out, earlier or {}, budget, r, 0)[0] for r in rows}
    need: set[str] = set()
    for a, b in combinations(rows, 2):
        fa, fb = first[a], first[b]
        if fa is not None and fb is not None and abs(fa - fb) < close:
            need |= {a, b}
    return [r for r in rows if r in need]


def runs_to_do(args: argparse.Namespace) -> list[tuple[Path, str, int | None]]:
    """(folder, row key, epochs) still missing, in the order they run; epochs None: a reference row."""
    out, rows, earlier = Path(args.out), args.rows.split(","), _earlier(args)
    budgets = [int(b) for b in args.budgets.split(",")]
    todo: list[tuple[Path, str, int | None]] = [
        (out / "reference", ref, None)
        for ref in args.references.split(",")
        if ref and reference(out, earlier, ref)[0] is None
    ]
    seed1 = {b: second_seed_rows(out, b, rows, args.close, earlier) for b in budgets}
    todo += [
        (out / f"e{b}", f"{r}@{s}", b)
        for s in (0, 1)
        for b in budgets
        for r in (rows if s == 0 else seed1[b])
        if point(out, earlier, b, r, s)[0] is None
    ]
    return todo


def row_command(args: argparse.Namespace, folder: Path, key: str, epochs: int | None, cache: str) -> list[str]:
    """The ``benchmarks/accuracy.py`` call for one run (reference rows: ``epochs`` None)."""
    lr = chosen_lr(args).get(key.split("@")[0])
    return [
        sys.executable,
        str(HERE / "accuracy.py"),
        *TABLE_10K,
        "--seeds",
        "0,1",
        "--all-seeds",
        "--epochs",
        str(epochs or 1),
        "--out",
        str(folder),
        "--cache",
        cache,
        "--rows",
        key,
        *args.extra,
        *(["--set", f"optim.lr={lr:g}"] if lr is not None else []),
    ]


def run_records(args: argparse.Namespace) -> list[dict]:
    """``accuracy.py``'s record of every finished run in ``<out>``: the reference rows, then budget by budget
    each row's seeds (runs not finished are left out)."""
    import accuracy

    out, cache = Path(args.out), args.cache or str(Path(args.out) / "rep-cache")
    calls: list[tuple[Path, str, int | None]] = [
        (out / "reference", ref, None) for ref in args.references.split(",") if ref
    ]
    calls += [
        (out / f"e{b}", row, b) for b in sorted(int(x) for x in args.budgets.split(",")) for row in args.rows.split(",")
    ]
    found: list[dict] = []
    for folder, key, epochs in calls:
        found += accuracy.records(accuracy.parse_args(row_command(args, folder, key, epochs, cache)[2:]))
    return found


def _cache_ready(cache: str) -> bool:
    """Whether ``cache`` holds a finished feature-cache build (its manifest is written last)."""
    from mvmr.cache.manifest import MANIFEST

    return any((p / MANIFEST).is_file() for p in Path(cache).glob("*") if p.is_dir())


def run(args: argparse.Namespace) -> None:
    """Run what :func:`runs_to_do` lists, ``args.parallel`` at a time; a failed run is reported, not fatal."""
    if args.parallel < 1:
        raise SystemExit(f"--parallel must be at least 1, not {args.parallel}")
    cache = args.cache or str(Path(args.out) / "rep-cache")
    env = dict(os.environ)
    if args.parallel > 1:
        threads = str(max(1, (os.cpu_count() or 1) // args.parallel))
        for var in ("OMP_NUM_THREADS", "MKL_NUM_THREADS"):
            env.setdefault(var, threads)
    failed: list[str] = []
    started: set[tuple[Path, str]] = set()
    with Children() as children:  # SIGTERM here stops the running rows (they checkpoint) and the rest
        for phase in (1, 2):  # phase 2 sees the seed-0 results of phase 1 (and does not retry its failures)
            queue = [
                job
                for job in runs_to_do(args)
                if (phase == 2 or not job[1].endswith("@1")) and (job[0], job[1]) not in started
            ]
            started |= {(job[0], job[1]) for job in queue}
            keys: dict[subprocess.Popen, tuple[str, bool]] = {}
            while (queue and not children.stopping) or children.running:
                for proc in children.finished():
                    if proc.returncode:
                        failed.append(keys[proc][0])
                        print(f"[budget] {keys[proc][0]} failed (exit {proc.returncode})", flush=True)
                trained_running = any(keys[p][1] for p in children.running)
                while queue and not children.stopping and len(children.running) < args.parallel:
                    folder, key, epochs = queue[0]
                    trained = epochs is not None
                    if trained and trained_running and not _cache_ready(cache):
                        break  # the first trained run fills the cache alone
                    queue.pop(0)
                    cmd = row_command(args, folder, key, epochs, cache)
                    if args.parallel == 1:
                        print(f"[budget] {key} at {epochs if epochs else '-'} epochs -> {folder}", flush=True)
                        out = None
                    else:
                        folder.mkdir(parents=True, exist_ok=True)
                        log = folder / f"{key}.log"
                        print(
                            f"[budget] {key} at {epochs if epochs else '-'} epochs -> {folder} (log: {log})", flush=True
                        )
                        out = open(log, "a", encoding="utf-8")
                    proc = children.start(cmd, env=env, stdout=out, stderr=subprocess.STDOUT if out else None)
                    if out is not None:
                        out.close()  # the child holds its own descriptor
                    keys[proc] = (key, trained)
                    trained_running = trained_running or trained
                if children.running:
                    time.sleep(POLL_S)
            if children.stopping:
                break
    if failed:
        print(f"[budget] {len(failed)} run(s) failed: {', '.join(failed)}; run again to retry them", flush=True)
    if children.stopping:
        print(
            "[budget] SIGTERM: the running rows were stopped (they resume from their checkpoints next time)", flush=True
        )
        raise SystemExit(128 + signal.SIGTERM)


def tables(
    out: Path | None,
    earlier: dict,
    rows: list[str],
    budgets: list[int],
    references: list[str],
    source: str = "",
) -> tuple[str, dict, dict, set]:
    """The budget table and the references' table, from the runs in ``out`` and the ``earlier`` points
    (marked †); with ``out=None``, from ``earlier`` alone: committed records, which need no mark.
    Also returns what the plot needs: the series, the references and the marked points."""
    mark_earlier = out is not None
    series: dict[str, list[tuple[int, list[float]]]] = {}
    marked: set[tuple[str, int]] = set()
    head = "| row | " + " | ".join(f"{b} ep" for b in budgets) + " |"
    lines = [head, "|---|" + "---:|" * len(budgets)]
    for row in rows:
        cells = []
        for b in budgets:
            points = [p for s in (0, 1) if (p := point(out, earlier, b, row, s))[0] is not None]
            vals, mark = [v for v, _ in points if v is not None], ""  # every one: points keeps only values
            if mark_earlier and any(was_earlier for _, was_earlier in points):
                mark = " †"
                marked.add((row, b))
            series.setdefault(row, []).append((b, vals))
            if not vals:
                cells.append("not run")
            elif len(vals) == 1:
                cells.append(f"{vals[0]:.2f}{mark}")
            else:
                cells.append(f"{statistics.mean(vals):.2f} ± {statistics.stdev(vals):.2f} ({len(vals)} seeds){mark}")
        lines.append(f"| {row} | " + " | ".join(cells) + " |")
    found = {ref: reference(out, earlier, ref) for ref in references if ref}
    found = {k: (r, e and mark_earlier) for k, (r, e) in found.items()}
    refs = {k + (" †" if e else ""): r for k, (r, e) in found.items()}  # the plot's legend marks them too
    lines += ["", "| reference (no training) | linear top-1 | k-NN top-1 |", "|---|---:|---:|"]
    lines += [
        f"| {k} | {r['linear_top1']:.2f}{' †' if e else ''} | {r['knn_top1']:.2f} |" if r else f"| {k} | not run | — |"
        for k, (r, e) in found.items()
    ]
    if marked or any(e for _, e in found.values()):
        where = f", not in {out}" if out is not None else ""
        lines += ["", f"† uses points measured earlier with the same settings{where}: {earlier.get('source', source)}"]
    return "\n".join(lines) + "\n", series, refs, marked


def lead_table(
    series: dict[str, list[tuple[int, list[float]]]], base: str, peers: list[str], n_test: int = 10_000
) -> str:
    """``base``'s lead over each of ``peers`` at every budget both ran, with its noise: the largest seed
    sd of the two cells and the binomial SE of the difference on ``n_test`` images. The reading says
    "within noise" unless the lead exceeds both that sd and twice that SE."""
    lines = [
        "| budget | peer | " + base + " | peer's | lead | largest seed sd | SE of the difference | reading |",
        "|---:|---|---:|---:|---:|---:|---:|---|",
    ]
    mine = {b: v for b, v in series.get(base, []) if v}
    for peer in peers:
        for b, vals in series.get(peer, []):
            if not vals or b not in mine:
                continue
            a, p = statistics.mean(mine[b]), statistics.mean(vals)
            sds = [statistics.stdev(v) for v in (mine[b], vals) if len(v) > 1]
            sd = max(sds) if sds else None
            se = (binomial_se(a, n_test) ** 2 + binomial_se(p, n_test) ** 2) ** 0.5
            lead = a - p
            beyond = abs(lead) > 2 * se and (sd is None or abs(lead) > sd)
            reading = f"{base if lead > 0 else peer} ahead" if beyond else "within noise"
            seeds = f"{len(mine[b])}/{len(vals)} seeds"
            lines.append(
                f"| {b} ep | {peer} | {a:.2f} | {p:.2f} | {lead:+.2f} | "
                f"{f'{sd:.2f}' if sd is not None else '—'} ({seeds}) | {se:.2f} | {reading} |"
            )
    return "\n".join(lines) + "\n"


def collect(args: argparse.Namespace) -> str:
    out, rows, earlier = Path(args.out), args.rows.split(","), _earlier(args)
    budgets = sorted({int(b) for b in args.budgets.split(",")} | {int(b) for b in earlier if b.isdigit()})
    md, series, refs, marked = tables(out, earlier, rows, budgets, args.references.split(","), " ".join(args.earlier))
    plot(series, refs, out / "budget_curve.png", marked)
    return md


def plot(
    series: dict[str, list[tuple[int, list[float]]]],
    refs: dict[str, dict | None],
    path: Path,
    marked: AbstractSet[tuple[str, int]] = frozenset(),
) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(9.0, 4.6))
    for row, points in series.items():
        pts = [(b, statistics.mean(v), statistics.stdev(v) if len(v) > 1 else 0.0) for b, v in points if v]
        if pts:
            xs, ys, sds = zip(*pts, strict=True)
            line = ax.errorbar(xs, ys, yerr=sds, marker="o", capsize=3, label=row)[0]
            hollow = [(x, y) for x, y, _ in pts if (row, x) in marked]  # points from --earlier: hollow
            if hollow:
                ax.plot(*zip(*hollow, strict=True), "o", markersize=9, markerfacecolor="white", color=line.get_color())
    if marked:
        ax.plot([], [], "o", markersize=9, markerfacecolor="white", color="grey", label="† measured earlier")
    styles = iter(["--", ":", "-.", (0, (5, 1))])
    for name, r in refs.items():
        if r:
            ax.axhline(
                r["linear_top1"],
                color="grey",
                linestyle=next(styles),
                linewidth=1.2,
                label=f"{name} ({r['linear_top1']:.1f})",
            )
    ax.set_xscale("log")
    ax.set_xticks(sorted({b for points in series.values() for b, _ in points}))
    ax.get_xaxis().set_major_formatter(matplotlib.ticker.ScalarFormatter())
    ax.set_xlabel("pretraining epochs on 10,000 CIFAR-10 images")
    ax.set_ylabel("linear top-1 on the CIFAR-10 test set (%)")
    epochs = sorted({b for points in series.values() for b, _ in points})
    span = f"{epochs[0]}-{epochs[-1]} epochs" if epochs else "no run yet"
    ax.set_title(
        f"CIFAR-10, 10,000 images, ResNet-18 at 32 px: linear top-1 against the budget ({span})\n"
        "(points: mean over seeds; error bars: sd over 2 seeds where run)",
        fontsize=9,
    )
    if ax.get_legend_handles_labels()[0]:  # nothing finished yet: an empty plot, without a legend
        ax.legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.01, 1.0))  # beside the axes: it hides no point
    ax.grid(alpha=0.3)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args.plan:
        todo = runs_to_do(args)
        for folder, key, epochs in todo:
            print(f"{key:20s} {epochs if epochs else '-':>4} epochs  {folder}")
        if not todo:
            print("nothing left to run: every cell has its seeds (--collect writes the table and the plot)")
        return 0
    if not args.collect:
        run(args)
    md = collect(args)
    (Path(args.out) / "budget_curve.md").write_text(md, encoding="utf-8")
    if args.records:
        from _provenance import write_records

        write_records(Path(args.records), run_records(args))
    print(md, end="")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
