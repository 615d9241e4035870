"""``mvmr ablate``: the paper's ablation tables (appendix B, Tables 5-8) from one base config.

Example::

    mvmr ablate --table 5 --config configs/cifar10.yaml --out runs/ablation data.root=/data
    mvmr ablate --table 6 --config cifar10 --rows pixels,scatnet,pixels+scatnet+augmented_pixels+hog+local_std
    mvmr ablate --table 8 --config cifar10 --launcher print > t8.sbatch && sbatch t8.sbatch   # SLURM array job
    mvmr ablate --table 8 --config cifar10 --collect              # only (re)write the table and chart

Each row is the base config plus the row's overrides (after the ``KEY=VALUE`` overrides given
here), pretrained in ``<out>/table<N>/<row>/`` and evaluated as :mod:`mvmr.workflows.ablation`
describes; finished rows are skipped. The collected table (``<out>/table<N>/table<N>.md``) and a
bar chart (``table<N>.png``) are written at the end.
"""

from __future__ import annotations

import argparse
from typing import Any

HELP = "run the paper's ablation tables 5-8 from one base config (resumable; --launcher print for clusters)"
#: the defaults of the evaluation flags (a flag that differs is passed on to each row's command)
_PROBE_DEFAULTS = {
    "probe_kind": None,
    "probe_root": None,
    "probe_train_split": "train",
    "probe_test_split": "test",
    "probe_train_size": None,
    "probe_test_size": None,
    "probe_epochs": 100,
    "probe_lr": 1e-4,
}


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--table",
        type=int,
        required=True,
        choices=(5, 6, 7, 8),
        help="5: loss terms, 6: representations of L3, 7: augmentations, 8: projector sizes",
    )
    parser.add_argument("--config", required=True, metavar="YAML", help="base config file or shipped name")
    parser.add_argument(
        "--rows",
        nargs="+",
        default=None,
        metavar="ROW",
        help="only these rows (keys like L1+L3, pixels+hog, crop+flip, 1024-1024; comma lists allowed)",
    )
    parser.add_argument(
        "--out", default="runs/ablation", metavar="DIR", help="root folder (rows go to DIR/table<N>/<row>)"
    )
    parser.add_argument(
        "--launcher",
        choices=("none", "print"),
        default="none",
        help="print: run nothing, print a SLURM array-job script (one task per row) for sbatch",
    )
    g = parser.add_argument_group("SLURM resources of each row (--launcher print)")
    g.add_argument("--slurm-nodes", type=int, default=1, metavar="N")
    g.add_argument("--slurm-gpus-per-node", type=int, default=1, metavar="G", help="0: one CPU task")
    g.add_argument("--slurm-cpus-per-task", type=int, default=8, metavar="C")
    g.add_argument("--slurm-time", default="24:00:00", metavar="HH:MM:SS")
    g.add_argument("--slurm-partition", default=None, metavar="NAME")
    parser.add_argument("--collect", action="store_true", help="run nothing; collect the finished rows into the table")
    parser.add_argument(
        "--reuse",
        action="append",
        default=[],
        metavar="DIR",
        help="folder of finished runs (DIR/<row>/result.json; repeatable): a row with the identical "
        "config and evaluation is copied from there instead of trained again",
    )
    g = parser.add_argument_group("evaluation (the same for every row)")
    g.add_argument("--probe-kind", default=None, help="labelled dataset kind (default: the config's data.kind)")
    g.add_argument("--probe-root", default=None, help="labelled dataset root (default: the config's data.root)")
    g.add_argument("--probe-train-split")
    g.add_argument("--probe-test-split")
    g.add_argument(
        "--probe-train-size", type=int, default=None, metavar="N", help="fixed random subset of the train split"
    )
    g.add_argument(
        "--probe-test-size", type=int, default=None, metavar="N", help="fixed random subset of the test split"
    )
    g.add_argument("--probe-epochs", type=int, help="linear probe epochs (paper: 100)")
    g.add_argument("--probe-lr", type=float, help="linear probe lr (paper: 1e-4)")
    parser.add_argument(
        "overrides", nargs="*", metavar="KEY=VALUE", help="overrides applied to the base config of every row"
    )
    parser.set_defaults(**_PROBE_DEFAULTS)


def _probe_args(args: argparse.Namespace) -> list[str]:
    """The evaluation flags as given (passed on to the per-row commands of --launcher print)."""
    out = [f"--reuse={d}" for d in args.reuse]
    for name, default in _PROBE_DEFAULTS.items():
        if getattr(args, name) != default:
            out += ["--" + name.replace("_", "-"), str(getattr(args, name))]
    return out


def run(args: argparse.Namespace) -> int:
    from pathlib import Path

    from mvmr.config import load_config
    from mvmr.workflows import ablation

    if args.rows:  # `--rows A B key=value`: argparse gives the overrides after --rows to --rows
        args.overrides = [*[r for r in args.rows if "=" in r], *args.overrides]
        args.rows = [r for r in args.rows if "=" not in r]
    base = load_config(args.config, list(args.overrides))  # validates the base and the overrides once
    rows = ablation.select_rows(ablation.table_rows(args.table, base), args.rows)
    out = Path(args.out) / f"table{args.table}"
    if args.launcher == "print":
        resources = ablation.SlurmResources(
            nodes=args.slurm_nodes,
            gpus_per_node=args.slurm_gpus_per_node,
            cpus_per_task=args.slurm_cpus_per_task,
            time=args.slurm_time,
            partition=args.slurm_partition,
        )
        print(
            ablation.sbatch_script(
                args.table, args.config, rows, args.out, _probe_args(args), args.overrides, resources
            ),
            end="",
        )
        return 0
    configs = {row.key: ablation.row_config(args.config, row, args.overrides, out) for row in rows}  # fail early
    probe = ablation.ProbeSettings(
        kind=args.probe_kind,
        root=args.probe_root,
        train_split=args.probe_train_split,
        test_split=args.probe_test_split,
        train_size=args.probe_train_size,
        test_size=args.probe_test_size,
        epochs=args.probe_epochs,
        lr=args.probe_lr,
    )
    results: dict[str, dict[str, Any] | None] = (
        {}
        if args.collect
        else {row.key: ablation.run_row(configs[row.key], probe, key=row.key, reuse=args.reuse) for row in rows}
    )
    all_rows = ablation.table_rows(args.table, base)
    for row in all_rows:  # the table shows every finished row of this table, not only this call's
        if results.get(row.key) is None:
            results[row.key] = ablation.load_row_result(out / row.key)
    all_rows = ablation.shown_rows(all_rows, results, rows)
    md = ablation.collect_markdown(args.table, all_rows, results)
    out.mkdir(parents=True, exist_ok=True)
    (out / f"table{args.table}.md").write_text(md, encoding="utf-8")
    png = ablation.plot_table(args.table, all_rows, results, out / f"table{args.table}.png")
    print(md, end="")
    print(f"\nwritten: {out / f'table{args.table}.md'}" + (f", {png}" if png else ""))
    return 0
