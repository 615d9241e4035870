"""Running an ablation's rows on a cluster: one SLURM array job, one task per row.

:func:`sbatch_script` gives a complete script for ``sbatch``: the resource directives, a
preemption warning (``--signal=USR1@90`` with ``--requeue``: Lightning's SLURM environment writes
a checkpoint and requeues the job, and the row resumes from it), and one ``srun mvmr ablate ...
--rows <row>`` per array task. Each row is resumable and writes ``<out>/table<N>/<row>/result.json``;
``mvmr ablate ... --collect`` gathers the table once the array has finished.
"""

from __future__ import annotations

import shlex
from dataclasses import dataclass
from typing import Sequence

from mvmr.workflows.ablation.tables import AblationRow

__all__ = ["SlurmResources", "row_command", "sbatch_script"]


@dataclass(frozen=True)
class SlurmResources:
    """What each row's job asks SLURM for (``gpus_per_node = 0``: one CPU task)."""

    nodes: int = 1
    gpus_per_node: int = 1
    cpus_per_task: int = 8
    time: str = "24:00:00"
    partition: str | None = None


def row_command(table: int, config: str, row: AblationRow, out: str, extra_args: Sequence[str],
                overrides: Sequence[str]) -> list[str]:
    """The ``mvmr ablate`` command that runs one row alone (resumable)."""
    return ["mvmr", "ablate", "--table", str(table), "--config", str(config), "--rows", row.key, "--out", str(out),
            *extra_args, *overrides]


def sbatch_script(table: int, config: str, rows: Sequence[AblationRow], out: str, extra_args: Sequence[str],
                  overrides: Sequence[str], resources: SlurmResources = SlurmResources()) -> str:
    """A SLURM array-job script running every row of ``rows`` (task i runs row i)."""
    r = resources
    tasks = max(1, r.gpus_per_node)
    distributed = [f"trainer.num_nodes={r.nodes}", f"trainer.devices={r.gpus_per_node}", "trainer.accelerator=gpu",
                   "trainer.strategy=ddp"] if r.gpus_per_node else ["trainer.accelerator=cpu", "trainer.devices=1"]
    lines = ["#!/bin/bash", f"#SBATCH --job-name=mvmr-table{table}", f"#SBATCH --array=0-{len(rows) - 1}",
             f"#SBATCH --nodes={r.nodes}", f"#SBATCH --ntasks-per-node={tasks}", f"#SBATCH --cpus-per-task={r.cpus_per_task}",
             f"#SBATCH --time={r.time}", f"#SBATCH --output={out}/table{table}/slurm-%A_%a.out",
             "#SBATCH --signal=USR1@90", "#SBATCH --requeue"]
    if r.gpus_per_node:
        lines.append(f"#SBATCH --gres=gpu:{r.gpus_per_node}")
    if r.partition:
        lines.append(f"#SBATCH --partition={r.partition}")
    keys = " ".join(shlex.quote(row.key) for row in rows)
    command = row_command(table, config, rows[0], out, extra_args, [*overrides, *distributed])
    at = command.index(rows[0].key)
    lines += ["", f"# {len(rows)} rows of the paper's Table {table}; each task runs one, resumable", "set -euo pipefail",
              f"ROWS=({keys})", f"mkdir -p {shlex.quote(str(out))}/table{table}",
              "srun " + shlex.join(command[:at]) + ' "${ROWS[$SLURM_ARRAY_TASK_ID]}" ' + shlex.join(command[at + 1:]), ""]
    return "\n".join(lines)
