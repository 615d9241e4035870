"""The paper's ablations (appendix B, Tables 5-8) generated from one base config, run and collected.

- :mod:`~mvmr.workflows.ablation.tables`: the tables as rows of config overrides, with the paper's
  numbers (:func:`table_rows`, :func:`select_rows`), and a row's config (:func:`row_config`);
- :mod:`~mvmr.workflows.ablation.probe`: the evaluation every row gets (:class:`ProbeSettings`);
- :mod:`~mvmr.workflows.ablation.reuse`: finished rows' ``result.json``, reused instead of run again;
- :mod:`~mvmr.workflows.ablation.runner`: :func:`run_row` pretrains a row and evaluates its encoder
  with :func:`mvmr.evaluation.evaluate_frozen`;
- :mod:`~mvmr.workflows.ablation.launch`: a SLURM array job running every row on a cluster;
- :mod:`~mvmr.workflows.ablation.report`: the table in the paper's layout with the paper's numbers
  beside ours, and its bar chart.
"""

from __future__ import annotations

from mvmr.workflows.ablation.probe import ProbeSettings, probe_datasets
from mvmr.workflows.ablation.launch import SlurmResources, row_command, sbatch_script
from mvmr.workflows.ablation.report import collect_markdown, format_value, plot_table
from mvmr.workflows.ablation.reuse import RESULT_FILE, find_reusable, load_row_result, save_row_result
from mvmr.workflows.ablation.runner import peak_rss_mib, run_row
from mvmr.workflows.ablation.tables import REPRESENTATIONS, TABLES, AblationRow, row_config, select_rows, table_rows
from mvmr.workflows.ablation.tables import with_shared_cache

__all__ = [
    "TABLES", "REPRESENTATIONS", "RESULT_FILE", "AblationRow", "ProbeSettings", "table_rows", "select_rows",
    "row_config", "with_shared_cache", "probe_datasets", "run_row", "peak_rss_mib", "load_row_result",
    "save_row_result", "find_reusable", "SlurmResources", "row_command", "sbatch_script", "collect_markdown", "format_value",
    "plot_table",
]
