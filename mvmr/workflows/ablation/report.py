"""An ablation's outputs: a SLURM array job that runs its rows, the table in the paper's layout, a bar chart.

:func:`sbatch_script` gives a complete script for ``sbatch``: the resource directives, a
preemption warning (``--signal=USR1@90`` with ``--requeue``: Lightning's SLURM environment writes
a checkpoint and requeues the job, and the row resumes from it), and one ``srun mvmr ablate ...
--rows <row>`` per array task. Each row is resumable and writes ``<out>/table<N>/<row>/result.json``;
``mvmr ablate ... --collect`` gathers the table once the array has finished.

:func:`collect_markdown` writes the paper's left-hand columns, our numbers (linear top-1/top-5,
k-NN top-1, wall time) and the paper's numbers in columns beside ours, for the rows that
:func:`shown_rows` picks; :func:`plot_table` draws our linear top-1 beside the paper's. Both take
the results already loaded (by row key), from run folders or from records.
"""

from __future__ import annotations

import math
import os
import shlex
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from mvmr.workflows.ablation.tables import AblationRow

__all__ = [
    "SlurmResources",
    "sbatch_script",
    "format_value",
    "binomial_se",
    "shown_rows",
    "collect_markdown",
    "plot_table",
]


@dataclass(frozen=True)
class SlurmResources:
    """What each row's job asks SLURM for (``gpus_per_node = 0``: one CPU task)."""

    nodes: int = 1
    gpus_per_node: int = 1
    cpus_per_task: int = 8
    time: str = "24:00:00"
    partition: str | None = None


def sbatch_script(
    table: int,
    config: str,
    rows: Sequence[AblationRow],
    out: str,
    extra_args: Sequence[str],
    overrides: Sequence[str],
    resources: SlurmResources = SlurmResources(),
) -> str:
    """A SLURM array-job script running every row of ``rows`` (task i runs row i)."""
    r = resources
    distributed = (
        [
            f"trainer.num_nodes={r.nodes}",
            f"trainer.devices={r.gpus_per_node}",
            "trainer.accelerator=gpu",
            "trainer.strategy=ddp",
        ]
        if r.gpus_per_node
        else ["trainer.accelerator=cpu", "trainer.devices=1"]
    )
    lines = [
        "#!/bin/bash",
        f"#SBATCH --job-name=mvmr-table{table}",
        f"#SBATCH --array=0-{len(rows) - 1}",
        f"#SBATCH --nodes={r.nodes}",
        f"#SBATCH --ntasks-per-node={max(1, r.gpus_per_node)}",
        f"#SBATCH --cpus-per-task={r.cpus_per_task}",
        f"#SBATCH --time={r.time}",
        f"#SBATCH --output={out}/table{table}/slurm-%A_%a.out",
        "#SBATCH --signal=USR1@90",
        "#SBATCH --requeue",
    ]
    if r.gpus_per_node:
        lines.append(f"#SBATCH --gres=gpu:{r.gpus_per_node}")
    if r.partition:
        lines.append(f"#SBATCH --partition={r.partition}")
    keys = " ".join(shlex.quote(row.key) for row in rows)
    head = ["mvmr", "ablate", "--table", str(table), "--config", str(config), "--rows"]
    tail = ["--out", str(out), *extra_args, *overrides, *distributed]
    lines += [
        "",
        f"# {len(rows)} rows of the paper's Table {table}; each task runs one, resumable",
        "set -euo pipefail",
        f"ROWS=({keys})",
        f"mkdir -p {shlex.quote(str(out))}/table{table}",
        "srun " + shlex.join(head) + ' "${ROWS[$SLURM_ARRAY_TASK_ID]}" ' + shlex.join(tail),
        "",
    ]
    return "\n".join(lines)


def format_value(value: Any, digits: int = 2) -> str:
    """A number with ``digits`` decimals; "—" for missing and NaN values; anything else as text."""
    try:
        v = float(value)
    except (TypeError, ValueError):
        return "—" if value is None else str(value)
    return "—" if v != v else f"{v:.{digits}f}"  # v != v: NaN


def shown_rows(
    rows: Sequence[AblationRow],
    results: Mapping[str, Mapping[str, Any] | None],
    fallback: Sequence[AblationRow] | None = None,
) -> list[AblationRow]:
    """The rows a collected table shows: every row of ``rows`` (a whole table) with a result, in the
    table's order; ``fallback`` (default ``rows``) when none has one, which
    :func:`collect_markdown` then marks "not run"."""
    return [r for r in rows if results.get(r.key)] or list(rows if fallback is None else fallback)


def binomial_se(top1: float, n: int) -> float:
    """The binomial standard error, in points, of a top-1 of ``top1`` % on ``n`` test images."""
    p = top1 / 100
    return 100 * math.sqrt(p * (1 - p) / n)


def collect_markdown(table: int, rows: Sequence[AblationRow], results: Mapping[str, Mapping[str, Any] | None]) -> str:
    """The table in the paper's layout: its left-hand columns, ours (linear top-1/top-5, k-NN
    top-1, wall time) and the paper's numbers (STL10, ResNet50, 100 epochs) in a column beside."""
    if not rows:
        return ""
    left = list(rows[0].cells)
    with_top5 = table != 8
    head = [
        *left,
        "ours top-1",
        *(["ours top-5"] if with_top5 else []),
        "ours k-NN top-1",
        "wall (s)",
        "paper top-1",
        *(["paper top-5"] if with_top5 else []),
        "note",
    ]
    lines = [
        "| " + " | ".join(head) + " |",
        "|" + "|".join(["---"] * len(left) + ["---:"] * (len(head) - len(left) - 1) + ["---"]) + "|",
    ]
    group = None
    for row in rows:
        if row.group and row.group != group:
            group = row.group
            lines.append("| " + " | ".join([f"**{group}**"] + [""] * (len(head) - 1)) + " |")
        r = results.get(row.key) or {}
        cells = [row.cells[c] for c in left]
        ours = [format_value(r.get("linear_top1"))] + ([format_value(r.get("linear_top5"))] if with_top5 else [])
        ours += [format_value(r.get("knn_top1")), format_value(r.get("wall_s"), 0)]
        paper = [format_value(row.paper_top1)] + ([format_value(row.paper_top5)] if with_top5 else [])
        note = row.paper_note if r else "; ".join(x for x in (row.paper_note, "not run") if x)
        lines.append("| " + " | ".join([*cells, *ours, *paper, note]) + " |")
    return "\n".join(lines) + "\n"


def plot_table(
    table: int,
    rows: Sequence[AblationRow],
    results: Mapping[str, Mapping[str, Any] | None],
    path: str | os.PathLike[str],
    *,
    setting: str | None = None,
) -> Path | None:
    """A bar chart of our linear top-1 beside the paper's for the rows that ran (PNG).

    Our bars carry error bars of one binomial standard error, sqrt(p(1-p)/n) on the row's ``num_test``
    test images (none where a result lacks it). ``setting`` (e.g. "CIFAR-10, 2,048 images, 2 epochs")
    goes into the title; without it the title names the results' epochs. The legend stands beside
    the axes, over no bar.
    """
    ran = [r for r in rows if results.get(r.key)]
    if not ran:
        return None
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np

    got = [dict(results[r.key] or {}) for r in ran]
    ours = [float(g["linear_top1"]) for g in got]
    tests = [g.get("num_test") for g in got]
    errors = [binomial_se(p, n) if isinstance(n, int) and n > 0 else 0.0 for p, n in zip(ours, tests, strict=True)]
    paper = [float("nan") if r.paper_top1 is None else r.paper_top1 for r in ran]
    if setting is None:
        epochs = sorted({int(g["epochs"]) for g in got if g.get("epochs") is not None})
        setting = f"{'/'.join(map(str, epochs))} epochs" if epochs else "our budget"
    sizes = sorted({n for n in tests if isinstance(n, int) and n > 0})
    on = f"{'/'.join(f'{n:,}' for n in sizes)} test images" if sizes else "the test images"
    x = np.arange(len(ran))
    fig, ax = plt.subplots(figsize=(max(6.0, 0.6 * len(ran) + 2) + 2.6, 4.4))
    ax.bar(x - 0.2, ours, 0.4, yerr=errors, capsize=2, label="ours: linear top-1,\none seed")
    ax.bar(x + 0.2, paper, 0.4, label="paper: linear top-1,\nSTL10, ResNet50,\n100 epochs", alpha=0.6)
    ax.set_xticks(x)
    ax.set_xticklabels([r.key or "none" for r in ran], rotation=45, ha="right", fontsize=8)
    ax.set_ylabel("linear top-1 on the test set (%)")
    ax.set_title(
        f"MV-MR ablation, Table {table}: ours ({setting}) beside the paper's\n"
        f"(bars: linear top-1 per row; error bars: one binomial SE on {on})",
        fontsize=9,
    )
    ax.legend(fontsize=8, loc="upper left", bbox_to_anchor=(1.01, 1.0))  # beside the axes: it hides no bar
    fig.tight_layout()
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path
