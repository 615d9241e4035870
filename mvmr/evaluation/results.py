"""Evaluation results: one JSON file per protocol plus a growing ``results.md`` per run folder.

Layout of a run folder after ``mvmr evaluate``::

    RUN_DIR/
      results.md                 every evaluation appended, newest last (human-readable history)
      results/<key>.json         the latest result of each protocol variant (machine-readable)
      plots/...                  figures (t-SNE/UMAP maps)
      subsets/...                semi-supervised label subsets that were used

``key`` is the protocol name plus its variant, e.g. ``linear``, ``knn``, ``finetune-1pct``.
Accuracies and mAP are stored in percent.
"""

from __future__ import annotations

import datetime as _dt
import json
import math
import os
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

from mvmr.errors import DataError
from mvmr.utils.atomic import atomic_write_json

__all__ = [
    "ProtocolResult",
    "METRIC_LABELS",
    "save_result",
    "load_results",
    "format_metric",
    "format_metrics_table",
    "result_markdown",
    "headline",
    "keys_in_order",
]

#: Order of the protocols in reports.
PROTOCOL_ORDER: tuple[str, ...] = ("linear", "knn", "finetune", "voc07", "embed")

#: Human-readable names of the metrics, in the order tables show them.
METRIC_LABELS: dict[str, str] = {
    "test_top1": "test top-1 (%)",
    "test_top5": "test top-5 (%)",
    "test_map": "test mAP (%)",
    "val_top1": "val top-1 (%)",
    "val_top5": "val top-5 (%)",
    "val_map": "val mAP (%)",
    "chosen_epoch": "chosen epoch",
    "epochs": "epochs",
    "num_train": "train images",
    "num_val": "val images",
    "num_test": "test images",
    "num_labelled": "labelled images",
    "num_classes": "classes",
    "feature_dim": "feature dim",
    "k": "k",
}


@dataclass
class ProtocolResult:
    """The outcome of one evaluation protocol run.

    ``protocol`` (``linear``, ``knn``, ``finetune``, ``voc07``, ``embed``) and ``variant`` (e.g. ``1pct``)
    name it; ``encoder`` and ``dataset`` say what was evaluated; ``metrics`` hold accuracies in percent,
    the chosen epoch and counts; ``config`` the settings; ``artifacts`` the files written (name -> path,
    relative to the run folder when inside it); ``details`` anything else (per-class AP, history, ...).
    """

    protocol: str
    metrics: dict[str, float]
    encoder: str = ""
    dataset: str = ""
    variant: str = ""
    config: dict[str, Any] = field(default_factory=dict)
    artifacts: dict[str, str] = field(default_factory=dict)
    details: dict[str, Any] = field(default_factory=dict)
    created: str = field(default_factory=lambda: _dt.datetime.now().isoformat(timespec="seconds"))

    @property
    def key(self) -> str:
        """File-name-safe identifier: ``protocol`` or ``protocol-variant``."""
        return f"{self.protocol}-{self.variant}" if self.variant else self.protocol

    def to_dict(self) -> dict[str, Any]:
        return _jsonable(asdict(self))

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> ProtocolResult:
        unknown = set(data) - {f.name for f in fields(cls)}
        if unknown or "protocol" not in data or "metrics" not in data:
            raise DataError(f"not an mvmr evaluation result (keys: {sorted(data)})")
        return cls(**dict(data))


def _jsonable(value: Any) -> Any:
    """Convert tensors/NumPy values/paths to plain JSON types (NaN becomes None)."""
    if isinstance(value, Mapping):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    if isinstance(value, os.PathLike):
        return os.fspath(value)
    if hasattr(value, "tolist") and not isinstance(value, (str, bytes)):
        return _jsonable(value.tolist())
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


def format_metric(value: Any) -> str:
    """Integers as they are, floats with two decimals, missing and NaN values as ``-``."""
    if value is None or (isinstance(value, float) and not math.isfinite(value)):
        return "-"
    return f"{value:.2f}" if isinstance(value, float) else str(value)


def format_metrics_table(result: ProtocolResult) -> str:
    """A Markdown table of one result's metrics (what ``mvmr evaluate`` prints), known metrics first."""
    metrics = result.metrics
    ordered = [k for k in METRIC_LABELS if k in metrics] + sorted(k for k in metrics if k not in METRIC_LABELS)
    lines = [f"| {result.key} | value |", "| --- | ---: |"]
    lines += [f"| {METRIC_LABELS.get(k, k)} | {format_metric(metrics[k])} |" for k in ordered]
    return "\n".join(lines)


def result_markdown(result: ProtocolResult) -> str:
    """The section appended to ``results.md`` for one result."""
    out = [f"## {result.key} ({result.created})", "", f"- encoder: `{result.encoder}`", f"- data: `{result.dataset}`"]
    if result.config:
        settings = ", ".join(f"{k}={v}" for k, v in result.config.items() if v is not None)
        out.append(f"- settings: {settings}")
    out += ["", format_metrics_table(result), ""]
    for name, path in result.artifacts.items():
        link = path.replace(" ", "%20")
        out.append(f"![{name}]({link})" if path.lower().endswith(".png") else f"- {name}: [{path}]({link})")
    if result.artifacts:
        out.append("")
    return "\n".join(out) + "\n"


def save_result(run_dir: str | os.PathLike[str], result: ProtocolResult) -> tuple[Path, Path]:
    """Write ``results/<key>.json`` (replacing an older one) and append to ``results.md``; returns the two paths."""
    root = Path(run_dir)
    root.mkdir(parents=True, exist_ok=True)
    rel: dict[str, str] = {}
    for name, path in result.artifacts.items():
        p = Path(path)
        try:
            rel[name] = p.resolve().relative_to(root.resolve()).as_posix()
        except ValueError:
            rel[name] = str(p)
    result.artifacts = rel
    json_path = root / "results" / f"{result.key}.json"
    atomic_write_json(json_path, result.to_dict())
    md_path = root / "results.md"
    header = "" if md_path.exists() else f"# Evaluation results: {root.resolve().name}\n\n"
    with md_path.open("a", encoding="utf-8") as fh:
        fh.write(header + result_markdown(result) + "\n")
    return json_path, md_path


def load_results(run_dir: str | os.PathLike[str]) -> list[ProtocolResult]:
    """All results of a run folder (``results/*.json``), sorted by key; DataError when there are none."""
    root = Path(run_dir)
    if not root.is_dir():
        raise DataError(f"run folder not found: {root}")
    files = sorted((root / "results").glob("*.json"))
    if not files:
        raise DataError(
            f"no evaluation results in {root} (expected {root / 'results'}/<protocol>.json; run `mvmr evaluate`)"
        )
    out = []
    for f in files:
        try:
            data = json.loads(f.read_text(encoding="utf-8"))
        except json.JSONDecodeError as exc:
            raise DataError(f"cannot parse {f}: {exc}") from exc
        out.append(ProtocolResult.from_dict(data))
    return out


def _protocol_rank(protocol: str) -> int:
    """The position of ``protocol`` in :data:`PROTOCOL_ORDER` (unknown protocols last)."""
    return PROTOCOL_ORDER.index(protocol) if protocol in PROTOCOL_ORDER else len(PROTOCOL_ORDER)


def headline(results: Iterable[ProtocolResult]) -> dict[str, Any]:
    """``{"<key> <metric>": value}`` for the test metrics of every result (used by reports)."""
    row: dict[str, Any] = {}
    for r in sorted(results, key=lambda r: (_protocol_rank(r.protocol), r.key)):
        for metric in ("test_top1", "test_top5", "test_map"):
            if metric in r.metrics:
                row[f"{r.key} {METRIC_LABELS[metric].replace('test ', '').replace(' (%)', '')}"] = r.metrics[metric]
    return row


def keys_in_order(rows: Sequence[Mapping[str, Any]]) -> list[str]:
    """Column names of several :func:`headline` rows: by protocol (:data:`PROTOCOL_ORDER`), then first seen."""
    seen = dict.fromkeys(k for row in rows for k in row)  # first seen first; sorted() keeps that order on ties
    return sorted(seen, key=lambda column: _protocol_rank(column.split(" ", 1)[0].split("-", 1)[0]))
