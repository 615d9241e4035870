"""Side-by-side comparison of several run folders as one Markdown table (``mvmr report``)."""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

from mvmr.errors import DataError
from mvmr.evaluation.results import ProtocolResult, format_metric, headline, keys_in_order, load_results
from mvmr.utils.atomic import atomic_write_text

__all__ = ["build_report", "write_report"]


def _link(target: Path, base: Path) -> str:
    """A relative link from folder ``base`` to ``target`` (absolute when on another drive)."""
    try:
        rel = os.path.relpath(target.resolve(), base.resolve())
    except ValueError:
        rel = str(target.resolve())
    return Path(rel).as_posix().replace(" ", "%20")


_FIGURES = (".png", ".jpg", ".svg", ".pdf")


def _plots(run_dir: Path, results: Sequence[ProtocolResult]) -> list[Path]:
    """Figures of a run: the evaluation artifacts plus everything in ``run_dir/plots`` (training curves)."""
    found: dict[Path, None] = {}
    for r in results:
        for art in r.artifacts.values():
            if art.lower().endswith(_FIGURES):
                found.setdefault(Path(art) if Path(art).is_absolute() else run_dir / art, None)
    if (run_dir / "plots").is_dir():
        for p in sorted((run_dir / "plots").iterdir()):
            if p.suffix.lower() in _FIGURES:
                found.setdefault(p, None)
    return list(found)


def build_report(run_dirs: Sequence[str | os.PathLike[str]], *, link_base: str | os.PathLike[str] | None = None) -> str:
    """One Markdown table: a row per run folder (``results/<key>.json``), a column per protocol metric
    (``-`` when missing), and links to the evaluation figures and every figure in ``RUN_DIR/plots``,
    relative to ``link_base`` (the folder the Markdown will live in; default: the current directory).
    Raises :class:`DataError` for a folder without results.
    """
    if not run_dirs:
        raise DataError("give at least one run folder")
    base = Path(link_base) if link_base is not None else Path.cwd()
    runs: list[tuple[Path, list[ProtocolResult]]] = [(Path(d), load_results(d)) for d in run_dirs]
    names = [p.resolve().name for p, _ in runs]
    if len(set(names)) != len(names):
        names = [str(p) for p, _ in runs]
    rows = [headline(results) for _, results in runs]
    columns = keys_in_order(rows)
    header = ["run", "encoder", *columns, "plots"]
    lines = [
        "| " + " | ".join(header) + " |",
        "| " + " | ".join(["---", "---"] + ["---:"] * len(columns) + ["---"]) + " |",
    ]
    for name, (path, results), row in zip(names, runs, rows, strict=True):
        encoders = sorted({r.encoder for r in results if r.encoder})
        plots = [f"[{p.stem}]({_link(p, base)})" for p in _plots(path, results)]
        cells = [
            name,
            ", ".join(f"`{e}`" for e in encoders) or "-",
            *(format_metric(row.get(c)) for c in columns),
            " ".join(plots) or "-",
        ]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def write_report(
    run_dirs: Sequence[str | os.PathLike[str]], out: str | os.PathLike[str], *, title: str = "MV-MR evaluation report"
) -> Path:
    """Write :func:`build_report` (with a title and the list of runs) to ``out``; returns its path."""
    path = Path(out)
    table = build_report(run_dirs, link_base=path.parent)
    sources = "\n".join(f"- `{Path(d)}`" for d in run_dirs)
    return atomic_write_text(path, f"# {title}\n\n{table}\nRuns:\n\n{sources}\n")
