"""The paper's ablations (appendix B, Tables 5-8) generated from one base config, run and collected.

- :mod:`~mvmr.workflows.ablation.tables`: the tables as rows of config overrides, with the paper's
  numbers (:func:`table_rows`, :func:`select_rows`), and a row's config (:func:`row_config`);
- :mod:`~mvmr.workflows.ablation.runner`: the evaluation every row gets (:class:`ProbeSettings`),
  :func:`run_row` that pretrains a row and evaluates its encoder with
  :func:`mvmr.evaluation.evaluate_frozen`, and finished rows' ``result.json``, reused instead of run again;
- :mod:`~mvmr.workflows.ablation.report`: a SLURM array job running every row on a cluster, the
  table in the paper's layout with the paper's numbers beside ours, and its bar chart.
"""

from __future__ import annotations

from mvmr.workflows.ablation.report import (
    SlurmResources,
    collect_markdown,
    format_value,
    plot_table,
    sbatch_script,
    shown_rows,
)
from mvmr.workflows.ablation.runner import (
    RESULT_FILE,
    ProbeSettings,
    find_reusable,
    load_row_result,
    peak_rss_mib,
    probe_datasets,
    run_row,
    save_row_result,
)
from mvmr.workflows.ablation.tables import (
    REPRESENTATIONS,
    TABLES,
    AblationRow,
    row_config,
    select_rows,
    table_rows,
    with_shared_cache,
)

__all__ = [
    "TABLES",
    "REPRESENTATIONS",
    "RESULT_FILE",
    "AblationRow",
    "ProbeSettings",
    "table_rows",
    "select_rows",
    "row_config",
    "with_shared_cache",
    "probe_datasets",
    "run_row",
    "peak_rss_mib",
    "load_row_result",
    "save_row_result",
    "find_reusable",
    "SlurmResources",
    "sbatch_script",
    "shown_rows",
    "collect_markdown",
    "format_value",
    "plot_table",
]
