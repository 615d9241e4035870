"""PNG plots of a run, read from its CSV logs: loss terms and distance correlations over steps."""

from __future__ import annotations

import csv
import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

__all__ = ["read_metrics", "write_plots"]


def read_metrics(run_dir: str | Path) -> dict[str, list[tuple[int, float]]]:
    """Every logged metric of a run as ``{name: [(step, value), ...]}``, sorted by step, from
    ``<run>/csv/version_*/metrics.csv`` (one per session; where a resume replays steps the later wins)."""
    files = sorted(
        Path(run_dir).glob("csv/version_*/metrics.csv"),
        key=lambda p: int(p.parent.name.split("_")[-1]) if p.parent.name.split("_")[-1].isdigit() else -1,
    )
    series: dict[str, dict[int, float]] = {}
    for path in files:
        with path.open(newline="") as f:
            for row in csv.DictReader(f):
                try:
                    step = int(float(row.get("step") or "nan"))
                except ValueError:
                    continue
                for key, text in row.items():
                    if key in ("step", "epoch") or not text:
                        continue
                    try:
                        series.setdefault(key, {})[step] = float(text)
                    except ValueError:
                        continue
    return {k: sorted(v.items()) for k, v in series.items()}


def _panel(ax: Any, metrics: dict[str, list[tuple[int, float]]], keys: Sequence[str], title: str, strip: str) -> None:
    for key in keys:
        points = [(s, v) for s, v in metrics[key] if math.isfinite(v)]
        if points:
            ax.plot([p[0] for p in points], [p[1] for p in points], label=key.removeprefix(strip), linewidth=1.2)
    ax.set_title(title)
    ax.set_xlabel("optimiser step")
    ax.grid(alpha=0.3)
    if keys:
        ax.legend(fontsize=8)


def write_plots(run_dir: str | Path) -> list[Path]:
    """Write ``<run>/plots/losses.png`` (L1, L2, L3, total and their parts) and
    ``<run>/plots/dcor.png`` (dCor between the views and with each representation), plus
    ``probe.png`` when the online probe was validated. Returns the files written."""
    import matplotlib

    matplotlib.use("Agg", force=True)
    import matplotlib.pyplot as plt

    run_dir = Path(run_dir)
    metrics = read_metrics(run_dir)
    out_dir = run_dir / "plots"
    out_dir.mkdir(parents=True, exist_ok=True)
    written: list[Path] = []

    def save(fig: Any, name: str) -> None:
        path = out_dir / name
        tmp = out_dir / f".{name}.tmp.png"
        fig.savefig(tmp, dpi=110, bbox_inches="tight")
        plt.close(fig)
        tmp.replace(path)
        written.append(path)

    totals = [k for k in ("train/loss", "train/l1", "train/l2", "train/l3") if k in metrics]
    parts = [k for k in ("train/mse", "train/var_z", "train/var_z_aug") if k in metrics]
    if totals or parts:
        fig, axes = plt.subplots(1, 2, figsize=(12, 4))
        _panel(axes[0], metrics, totals, "MV-MR loss (eq. 10) and its terms", "train/")
        _panel(axes[1], metrics, parts, "L1 parts: invariance and variance hinges", "train/")
        save(fig, "losses.png")
    dcor = [k for k in metrics if k == "train/dcor_views" or k.startswith("train/dcor/")]
    if dcor:
        fig, ax = plt.subplots(figsize=(7, 4))
        _panel(ax, metrics, dcor, "distance correlation with the augmented embedding", "train/")
        save(fig, "dcor.png")
    probe = [k for k in ("val/probe_acc",) if k in metrics]
    if probe:
        fig, ax = plt.subplots(figsize=(6, 4))
        _panel(ax, metrics, probe, "online linear probe (held-out train images)", "val/")
        save(fig, "probe.png")
    return written
