"""Distillation at equal budget: which objective and which view let a student absorb its teacher?

EfficientNet-Lite0 (ImageNet, shipped in a wheel) is distilled into a ResNet-18 on Imagenette-96 at
64 px without labels, with the ``distill_demo`` config: its 2,560 images, batch 32, Adam 1e-3 with a
cosine schedule. The budget is counted in optimiser steps: ``--budget 1`` is the demo's 228 steps,
``--budget 4`` 912, ``--budget 16`` 3,648 (each its own run, with its own schedule). Rows:

- ``paper``: dCor to the teacher's embedding of the clean view (the paper, ``distill_demo_paper``);
- ``cos_clean``, ``cos_aug``: a cosine regression head (SimReg), of the clean / the augmented view;
- ``dcor_aug``, ``dcos_aug``: dCor, and dCor + cosine, to the teacher's embedding of the augmented view
  (``dcos_aug`` is ``distill_demo``'s default, chosen by this benchmark);
- ``stored<K>`` (e.g. ``stored4``): ``--stored-objective`` on K stored augmented views of each image;
- ``ssl``: the same student by MV-MR self-supervision alone (no teacher, the demo's representations);
- references: ``untrained`` (the student's random initialisation) and ``teacher`` (its embedding).

``--set KEY=VALUE`` applies overrides to every trained row (a recipe change: all the images, another
lr, ...) and ``--tag`` names the folder of such a variant. Every row is probed alike: a linear probe
(the paper's protocol: Adam, lr 1e-4, batch 256, 100 epochs, features standardised) on all 9,469
training images, whose 10% stratified hold-out chooses the epoch and gives ``val top-1`` (validation
data: settings are chosen on it), then scored once on the 3,925 images of Imagenette's val split
(the test set); and weighted k-NN (k = 20). ``gap closed`` is (row - untrained) / (teacher -
untrained) on the linear test top-1. ``s / step`` is the median training step (from the images/s
each run logs: a cache fill is not in it); ``wall`` is pretraining, fills included, plus the probes.

Each row runs in its own process (``--parallel N`` runs N at once, each on cores/N threads); a row
whose ``result.json`` exists is skipped and an interrupted one resumes. ``--collect`` writes the
table (``distill.md``), the plot (``distill.png``) and, with ``--records FILE``, every result as one
JSON record per run (commit it under docs/results/).

Example::

    python benchmarks/distill_objectives.py --rows paper,cos_clean,untrained,teacher --budget 1 --seeds 0 --parallel 2
    python benchmarks/distill_objectives.py --collect --records docs/results/distill-objectives.json
"""

from __future__ import annotations

import argparse
import json
import os
import re
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING, cast

if TYPE_CHECKING:
    from matplotlib.colors import ListedColormap

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(Path(__file__).resolve().parent))
from _children import Children  # noqa: E402
from _data import SHARED_DATA, extract_once  # noqa: E402
from _provenance import provenance, write_records  # noqa: E402

DEMO_STEPS = 228  #: distill_demo: 2,560 images, 5% held out for the online probe, batch 32, 3 epochs

#: row -> (label, overrides on top of distill_demo; each names its objective and view, whatever the default)
ROWS: dict[str, tuple[str, list[str]]] = {
    "paper": ("paper: dCor, clean view", ["teacher.objective=dcor", "teacher.view=clean"]),
    "cos_clean": ("cosine head, clean view", ["teacher.objective=cosine", "teacher.view=clean"]),
    "cos_aug": ("cosine head, augmented view", ["teacher.objective=cosine", "teacher.view=augmented"]),
    "dcor_aug": ("dCor, augmented view", ["teacher.objective=dcor", "teacher.view=augmented"]),
    "dcos_aug": ("dCor + cosine, augmented view", ["teacher.objective=dcor+cosine", "teacher.view=augmented"]),
}
REFERENCES = {
    "ssl": "MV-MR self-supervised (no teacher)",
    "untrained": "untrained student",
    "teacher": "teacher (EfficientNet-Lite0)",
}
STORED = re.compile(r"stored(\d+)$")


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument(
        "--data",
        default=None,
        help="Imagenette-96 ImageFolder root (default: ../shared/data's archive, extracted to .test-data)",
    )
    p.add_argument("--out", default="runs/cpu/distill", help="output folder")
    p.add_argument(
        "--rows",
        default="paper,cos_clean,cos_aug,dcor_aug,dcos_aug,ssl,untrained,teacher",
        help="comma-separated rows (stored<K> for K stored views)",
    )
    p.add_argument("--budget", default="1", help="comma-separated multiples of the demo's 228 steps")
    p.add_argument("--seeds", default="0", help="comma-separated seeds")
    p.add_argument("--stored-objective", default="dcor+cosine", help="objective of the stored<K> rows")
    p.add_argument(
        "--set",
        dest="overrides",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="override for every trained row (repeatable)",
    )
    p.add_argument("--tag", default="base", help="folder name of this recipe (use one per --set combination)")
    p.add_argument("--parallel", type=int, default=1, help="rows at once (each on cores/N threads)")
    p.add_argument("--threads", type=int, default=None, help="threads per row (default: cores / --parallel)")
    p.add_argument("--collect", action="store_true", help="run nothing; write the table and plot of every finished row")
    p.add_argument("--records", default=None, metavar="FILE", help="with --collect: write every result to this JSON")
    p.add_argument("--_row", default=None, help=argparse.SUPPRESS)
    return p.parse_args(argv)


def data_root(args: argparse.Namespace) -> Path:
    return Path(args.data) if args.data else extract_once(SHARED_DATA / "imagenette96.tar.gz", "imagenette96")


def row_dir(out: Path, tag: str, budget: int, row: str, seed: int) -> Path:
    return out / tag / f"x{budget}" / (row if row in ("teacher",) else f"{row}@{seed}")


def row_overrides(row: str, args: argparse.Namespace) -> list[str]:
    match = STORED.match(row)
    if match:
        return [
            "teacher.view=augmented",
            f"teacher.cached_views={int(match.group(1))}",
            f"teacher.objective={args.stored_objective}",
        ]
    return list(ROWS[row][1])


def row_label(row: str, args: argparse.Namespace | None = None) -> str:
    match = STORED.match(row)
    if match:
        objective = args.stored_objective if args is not None else "?"
        return f"{objective}, {match.group(1)} stored views"
    return ROWS[row][0] if row in ROWS else REFERENCES[row]


def run_one(args: argparse.Namespace, spec: str) -> None:
    """Run one ``row@seed@budget`` in this process."""
    import torch

    from mvmr.config import load_config
    from mvmr.evaluation import FeatureExtractor, evaluate_frozen, resolve_encoder, save_result
    from mvmr.representations.teachers import Teacher, build_teacher
    from mvmr.workflows import ablation
    from mvmr.workflows.distill_report import ssl_baseline_config

    row, seed, budget = spec.split("@")[0], int(spec.split("@")[1]), int(spec.split("@")[2])
    root = data_root(args)
    out = row_dir(Path(args.out), args.tag, budget, row, seed)
    steps, size = DEMO_STEPS * budget, 64
    for override in args.overrides:  # a recipe with its own step count (e.g. batch 64 at half the steps)
        if override.startswith("trainer.max_steps="):
            steps = int(override.split("=", 1)[1])
        if override.startswith("data.image_size="):  # a recipe at another resolution is probed at it
            size = int(override.split("=", 1)[1])
    probe = ablation.ProbeSettings(
        kind="imagefolder",
        root=str(root),
        train_split="train",
        test_split="val",
        image_size=size,
        epochs=100,
        lr=1e-4,
        val_fraction=0.1,
        seed=0,
    )
    extra = {
        "row": row,
        "label": row_label(row, args),
        "tag": args.tag,
        "budget": budget,
        "steps": steps,
        "image_size": size,
        "threads": torch.get_num_threads(),
        "overrides": list(args.overrides),
        **provenance(),
    }
    base = [
        f"data.root={root}",
        f"output_dir={out}",
        f"trainer.seed={seed}",
        f"trainer.max_steps={steps}",
        "trainer.max_epochs=100000",
        "trainer.progress_bar=false",
        *args.overrides,
    ]
    if row in ("untrained", "teacher"):
        config = load_config("distill_demo", base)
        t0 = time.perf_counter()
        if row == "untrained":
            m = config.model
            extractor = resolve_encoder(encoder=f"random:{m.encoder}", small_images=m.small_images, seed=seed)
        else:
            t = config.teacher
            assert t.spec is not None  # distill_demo names its teacher
            teacher = build_teacher(t.spec, weights=t.weights, name=t.name, **t.options)
            assert isinstance(teacher, Teacher)  # a model, not precomputed embeddings (no embed_dim, no forward)
            extractor = FeatureExtractor(
                teacher,
                mean=None,
                std=None,
                description=f"teacher {t.spec}",
                feature_dim=int(teacher.embed_dim),
                trainable=False,
            )
        train_ds, test_ds = ablation.probe_datasets(probe, config)
        evaluation = evaluate_frozen(
            extractor,
            train_ds,
            test_ds,
            linear=probe.linear_config(),
            knn=probe.knn_config(),
            encoder=row,
            dataset=str(root),
        )
        for result in evaluation.results:
            save_result(out, result)
        wall = time.perf_counter() - t0
        ablation.save_row_result(
            out,
            {
                "key": spec,
                **evaluation.summary(),
                "pretrain_s": 0.0,
                "eval_s": round(wall, 1),
                "wall_s": round(wall, 1),
                "seed": seed,
                **extra,
                "steps": 0,
            },
        )
        print(f"[done] {spec}: linear {evaluation.summary()['linear_top1']:.2f}", flush=True)
        return
    config = load_config("distill_demo", base + (row_overrides(row, args) if row != "ssl" else []))
    if row == "ssl":
        config = ssl_baseline_config(config, out)
    ablation.run_row(config, probe, key=spec, extra=extra)


# ------------------------------------------------------------------------------------------ driver
def planned(args: argparse.Namespace) -> list[str]:
    rows = [r.strip() for r in args.rows.split(",") if r.strip()]
    for r in rows:
        if r not in ROWS and r not in REFERENCES and not STORED.match(r):
            raise SystemExit(f"unknown row {r!r}; rows: {', '.join([*ROWS, 'stored<K>', *REFERENCES])}")
    budgets = [int(b) for b in str(args.budget).split(",")]
    seeds = [int(s) for s in str(args.seeds).split(",")]
    specs = []
    for budget in budgets:
        for seed in seeds:
            for r in rows:
                if r == "teacher" and (seed != seeds[0] or budget != budgets[0]):
                    continue  # the teacher is one fixed model
                specs.append(f"{r}@{seed}@{budget}")
    return specs


def run_all(args: argparse.Namespace, argv: list[str]) -> int:
    from mvmr.workflows import ablation

    todo = []
    for spec in planned(args):
        row, seed, budget = spec.split("@")
        if ablation.load_row_result(row_dir(Path(args.out), args.tag, int(budget), row, int(seed))) is not None:
            print(f"[skip] {spec}: result exists", flush=True)
        else:
            todo.append(spec)
    threads = args.threads or max(1, (os.cpu_count() or 1) // max(1, args.parallel))
    env = {**os.environ, "OMP_NUM_THREADS": str(threads)}
    failed = []
    with Children() as children:
        pending = list(todo)
        while (pending or children.running) and not children.stopping:
            while pending and len(children.running) < args.parallel:
                spec = pending.pop(0)
                log = Path(args.out) / args.tag / "logs" / f"{spec}.log"
                log.parent.mkdir(parents=True, exist_ok=True)
                print(f"[start] {spec} ({threads} thread(s)), log {log}", flush=True)
                proc = children.start(
                    [sys.executable, str(Path(__file__).resolve()), *argv, "--_row", spec],
                    env=env,
                    stdout=log.open("a"),
                    stderr=subprocess.STDOUT,
                )
                proc.spec = spec  # type: ignore[attr-defined]
            time.sleep(2)
            for proc in children.finished():
                status = "done" if proc.returncode == 0 else f"FAILED (exit {proc.returncode})"
                print(f"[{status}] {proc.spec}", flush=True)  # type: ignore[attr-defined]
                if proc.returncode != 0:
                    failed.append(proc.spec)  # type: ignore[attr-defined]
    if children.stopping:
        print("[stop] SIGTERM: running rows checkpointed; run again to resume", flush=True)
        return 143
    return 1 if failed else 0


# ------------------------------------------------------------------------------------------ table
def step_seconds(run_dir: Path) -> float | None:
    """The median training step of a run, from the images/s its module logs every step (cache fills and
    probes left out; a resumed run's sessions pooled)."""
    import csv

    rates = []
    for path in run_dir.glob("csv/version_*/metrics.csv"):
        with path.open() as fh:
            rates += [float(r["train/images_per_s"]) for r in csv.DictReader(fh) if r.get("train/images_per_s")]
    if not rates:
        return None
    batch = 32
    config = run_dir / "config.yaml"
    if config.is_file():
        match = re.search(r"^  batch_size: (\d+)$", config.read_text(), re.M)
        batch = int(match.group(1)) if match else batch
    return statistics.median(batch / r for r in rates)


def load_results(out: Path) -> list[dict]:
    results = []
    for path in sorted(out.glob("*/x*/*/result.json")):
        r = json.loads(path.read_text())
        if r.get("steps") and r.get("step_s") is None:
            r["step_s"] = step_seconds(path.parent)
        results.append(r)
    return results


def _mean_sd(values: list[float]) -> str:
    if len(values) == 1:
        return f"{values[0]:.2f}"
    return f"{statistics.mean(values):.2f} ± {statistics.stdev(values):.2f} ({len(values)} seeds)"


def references(results: list[dict], tag: str) -> tuple[float | None, float | None]:
    """(untrained, teacher) linear test top-1 of a recipe: its own reference rows, else the base recipe's
    (a recipe that changes neither the student's architecture nor the images keeps both)."""

    def mean(row: str) -> float | None:
        for t in (tag, "base"):
            values = [r["linear_top1"] for r in results if r.get("tag") == t and r["row"] == row]
            if values:
                return statistics.mean(values)
        return None

    return mean("untrained"), mean("teacher")


def table(results: list[dict], tag: str) -> str:
    """The Markdown table of one recipe (``tag``): a row per (budget, row), seeds pooled."""
    mine = [r for r in results if r.get("tag") == tag]
    base, top = references(results, tag)
    lines = [
        "| budget (steps) | row | linear top-1 (test) | k-NN top-1 | gap closed | val top-1 | s / step | wall (min) |",
        "|---|---|---:|---:|---:|---:|---:|---:|",
    ]
    groups: dict[tuple[int, str], list[dict]] = {}
    for r in mine:
        groups.setdefault((r["budget"], r["row"]), []).append(r)
    order = {k: i for i, k in enumerate([*ROWS, "stored", "ssl", "untrained", "teacher"])}
    for (budget, row), rs in sorted(
        groups.items(), key=lambda kv: (kv[0][0], order.get(STORED.sub("stored", kv[0][1]), 99))
    ):
        lin = [r["linear_top1"] for r in rs]
        gap = "—"
        if base is not None and top is not None and row not in ("untrained", "teacher"):
            closed = [100 * (v - base) / (top - base) for v in lin]
            gap = f"{statistics.mean(closed):.0f}%" + (f" ± {statistics.stdev(closed):.0f}" if len(closed) > 1 else "")
        steps = rs[0].get("steps") or 0
        per_step = (
            f"{statistics.mean(r['step_s'] for r in rs):.2f}" if steps and all(r.get("step_s") for r in rs) else "—"
        )
        wall = statistics.mean(r["wall_s"] for r in rs) / 60
        where = (
            f"{DEMO_STEPS * budget} ({budget}x)"
            if steps == DEMO_STEPS * budget
            else f"{steps} (the {budget}x budget)"
            if steps
            else "—"
        )
        lines.append(
            f"| {where} | {rs[0]['label']} | {_mean_sd(lin)} | {_mean_sd([r['knn_top1'] for r in rs])} | "
            f"{gap} | {_mean_sd([r['val_top1'] for r in rs])} | {per_step} | {wall:.1f} |"
        )
    return "\n".join(lines) + "\n"


def plot(results: list[dict], path: Path) -> None:
    """Gap closed against the budget, one line per (recipe, row), the seed sd as error bars."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(8.5, 4.6))
    tab20 = cast("ListedColormap", plt.get_cmap("tab20"))  # get_cmap is typed as returning any Colormap
    colours = cast("tuple[tuple[float, float, float], ...]", tab20.colors)  # typed as any ArrayLike or colour
    markers = "os^vDPX*<>hp"
    series = 0  # every series gets its own colour and marker: no two lines look alike
    for tag in sorted({r["tag"] for r in results}):
        mine = [r for r in results if r["tag"] == tag]
        base, top = references(results, tag)
        if base is None or top is None:
            continue
        for row in sorted({r["row"] for r in mine} - {"untrained", "teacher"}):
            pts: dict[int, list[float]] = {}
            for r in mine:
                if r["row"] == row:
                    pts.setdefault(r["budget"], []).append(100 * (r["linear_top1"] - base) / (top - base))
            xs = sorted(pts)
            ys = [statistics.mean(pts[x]) for x in xs]
            es = [statistics.stdev(pts[x]) if len(pts[x]) > 1 else 0.0 for x in xs]
            label = next((r["label"] for r in mine if r["row"] == row and r.get("label")), row_label(row))
            ax.errorbar(
                [DEMO_STEPS * x for x in xs],
                ys,
                yerr=es,
                marker=markers[series % len(markers)],
                color=colours[series % len(colours)],
                capsize=3,
                label=label + (f" [{tag}]" if tag != "base" else ""),
            )
            series += 1
    ax.axhline(50, color="grey", ls=":", lw=1)
    ax.set_xscale("log")
    budgets = sorted({DEMO_STEPS * r["budget"] for r in results if r["row"] not in ("untrained", "teacher")})
    ax.set_xticks(budgets, [f"{b:,}" for b in budgets])
    ax.minorticks_off()
    ax.set_xlabel(
        "budget: optimiser steps at batch 32 (a recipe with its own step count, e.g. [b64], sits at its budget)",
        fontsize=8,
    )
    ax.set_ylabel("untrained-to-teacher gap closed (%)")
    ax.set_title(
        "Distillation on Imagenette-96 at 64 px, EfficientNet-Lite0 -> ResNet-18,\n"
        "228 to 3,648 steps (points: mean over seeds; error bars: sd over 2 seeds where run)",
        fontsize=9,
    )
    ax.legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.01, 1.0))
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)


def collect(args: argparse.Namespace) -> int:
    out = Path(args.out)
    results = load_results(out)
    if not results:
        raise SystemExit(f"no finished rows under {out}")
    md = "".join(f"\n### recipe `{tag}`\n\n" + table(results, tag) for tag in sorted({r["tag"] for r in results}))
    (out / "distill.md").write_text(md, encoding="utf-8")
    plot(results, out / "distill.png")
    print(md)
    if args.records:
        keep = (
            "key",
            "row",
            "label",
            "tag",
            "budget",
            "steps",
            "image_size",
            "seed",
            "linear_top1",
            "knn_top1",
            "val_top1",
            "step_s",
            "pretrain_s",
            "pretrain_sessions",
            "eval_s",
            "wall_s",
            "threads",
            "machine",
            "commit",
            "torch",
            "overrides",
            "recorded",
            "note",
        )
        records = [{k: r.get(k) for k in keep} for r in results]
        write_records(args.records, records)
    return 0


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    args = parse_args(argv)
    if args._row:  # one row, in a child of the driver: its log gets the CLI's clean output (no library tips)
        from mvmr.training.quiet import clean_output

        with clean_output():
            run_one(args, args._row)
        return 0
    if args.collect:
        return collect(args)
    return run_all(args, argv)


if __name__ == "__main__":
    raise SystemExit(main())
