"""The paper's ablation Tables 5-8 (``mvmr ablate``) as committed records, and the tables they give.

``mvmr ablate --table N`` leaves one ``<out>/table<N>/<row>/result.json`` per finished row (written by
:func:`mvmr.workflows.ablation.save_row_result`). :func:`collect` turns them into one JSON record per
row: ``{"table": N, "row": <row key>, <the result: linear_top1, linear_top5, knn_top1, wall_s, ...>,
"config": <the row's resolved config>, "dataset": ..., "finished": ..., <provenance>}``, the provenance
(machine, commit, torch, recorded) being the row's own where its result names it (``run_row`` records
it when the row starts) and this collect's otherwise; the result's ``key`` becomes ``row``, NaN becomes
null, and a result without a config carries the row's ``overrides`` instead. :func:`render` gives the
Markdown table of ``mvmr ablate --table N --collect``
for those records (the same code: :func:`mvmr.workflows.ablation.collect_markdown`, with the rows
that :func:`mvmr.workflows.ablation.shown_rows` picks), and :func:`plot` its bar chart
(:func:`mvmr.workflows.ablation.plot_table`). ``benchmarks/report.py`` regenerates the docs from them.

Example (the runs of docs/results.md)::

    python benchmarks/ablation_records.py --out runs/cpu/ablation --tables 5,6,7,8 \\
        --records docs/results/ablation-tables.json
"""

from __future__ import annotations

import argparse
import math
import sys
import time
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _provenance import FIELDS, provenance, ran_on, updated_records, write_records  # noqa: E402

#: what the docs' ablation rows pretrained on (the config's data.root is a local folder, not a name)
DATASET = "CIFAR-10, 2,048 images"


def _plain(value: Any) -> Any:
    """``value`` with NaN (an unmeasured metric) as None: the records file is strict JSON."""
    if isinstance(value, float) and math.isnan(value):
        return None
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_plain(v) for v in value]
    return value


def collect(out: Path, tables: Sequence[int], dataset: str = DATASET) -> list[dict]:
    """One record per finished row of ``tables`` under ``<out>/table<N>/<row>/result.json``, in the
    tables' row order. A result folder that is no row of its table is reported on stderr and skipped."""
    from mvmr.workflows.ablation import RESULT_FILE, load_row_result, table_rows

    prov = provenance()
    records = []
    for table in tables:
        folder = Path(out) / f"table{table}"
        rows = table_rows(table)
        keys = {row.key for row in rows}
        for path in sorted(folder.glob(f"*/{RESULT_FILE}")):
            if path.parent.name not in keys:
                print(f"{path.parent}: not a row of Table {table}; skipped", file=sys.stderr)
        for row in rows:
            result = load_row_result(folder / row.key)
            if result is None:
                continue
            finished = time.strftime("%Y-%m-%d", time.localtime((folder / row.key / RESULT_FILE).stat().st_mtime))
            # the commit names the mvmr version
            body = {k: v for k, v in result.items() if k not in ("key", "table", "row", "mvmr", *FIELDS)}
            if "config" not in body:
                body["overrides"] = list(row.overrides)
            records.append(
                _plain(
                    {
                        "table": table,
                        "row": row.key,
                        **body,
                        "dataset": dataset,
                        "finished": finished,
                        **ran_on(result, prov),
                    }
                )
            )
    return records


def _results(records: Iterable[dict], table: int) -> dict[str, dict]:
    """The records of ``table`` by row key, as ``collect_markdown`` takes results."""
    return {r["row"]: r for r in records if r.get("table") == table}


def _shown(records: Iterable[dict], table: int, rows: Sequence[str] | None) -> tuple[list, dict[str, dict]]:
    from mvmr.workflows.ablation import select_rows, shown_rows, table_rows

    every = table_rows(table)
    results = _results(records, table)
    shown = shown_rows(every, results)
    if rows:  # these rows as well, finished or not: a missing one is marked "not run"
        wanted = {r.key for r in select_rows(every, rows)}
        shown = [r for r in every if r.key in wanted or results.get(r.key)]
    return shown, results


def render(records: list[dict], table: int, rows: Sequence[str] | None = None) -> str:
    """The Markdown table of ``mvmr ablate --table <table> --collect`` for these records: every row
    with a record, in the table's order (all of the table's rows, marked "not run", when none has one).
    ``rows`` (row keys, as ``--rows`` takes them): rows shown even without a record, marked "not run"."""
    from mvmr.workflows.ablation import collect_markdown

    shown, results = _shown(records, table, rows)
    return collect_markdown(table, shown, results)


def setting(records: Iterable[dict], table: int | None = None) -> str:
    """What the rows trained on, for a title: "CIFAR-10, 2,048 images, 2 epochs"."""
    mine = [r for r in records if table is None or r.get("table") == table]
    data = sorted({str(r["dataset"]) for r in mine if r.get("dataset")}) or [DATASET]
    epochs = sorted({int(r["epochs"]) for r in mine if r.get("epochs") is not None})
    return " / ".join(data) + (f", {'/'.join(map(str, epochs))} epochs" if epochs else "")


def plot(records: list[dict], table: int, path: Path) -> Path | None:
    """The bar chart ``mvmr ablate --table <table> --collect`` draws (``table<N>.png``), titled with
    the dataset and budget; None (nothing drawn) when no row of the table has a record."""
    from mvmr.workflows.ablation import plot_table

    shown, results = _shown(records, table, None)
    return plot_table(table, shown, results, path, setting=setting(records, table))


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--out", required=True, type=Path, help="the --out of `mvmr ablate` (rows in OUT/table<N>/<row>)")
    p.add_argument("--tables", default="5,6,7,8", help="comma list of tables (default: 5,6,7,8)")
    p.add_argument("--records", required=True, type=Path, help="the JSON records file to write")
    p.add_argument("--dataset", default=DATASET, help=f"what the rows pretrained on, for titles (default: {DATASET})")
    p.add_argument(
        "--update",
        action="store_true",
        help="keep the records file's other rows: replace only the records of the rows found under --out "
        "(same table and row), and add the new ones (a partial run, e.g. a table's missing rows)",
    )
    args = p.parse_args(argv)
    tables = [int(t) for t in args.tables.split(",") if t.strip()]
    records = collect(args.out, tables, args.dataset)
    if not records:
        print(
            f"no finished rows of tables {args.tables} under {args.out}; {args.records} left as it was", file=sys.stderr
        )
        return 1
    found = len(records)
    if args.update:
        records = updated_records(args.records, records, ("table", "row"))
    write_records(args.records, records, strict=True)
    for table in tables:
        print(f"\n## Table {table}\n\n" + render(records, table), end="")
    counts = ", ".join(f"Table {t}: {sum(r['table'] == t for r in records)}" for t in tables)
    print(f"\nwritten: {args.records} ({len(records)} records, {found} from {args.out}; {counts})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
