"""Finished rows: their ``result.json``, and reusing them instead of running a row again.

A row is finished once ``<run>/result.json`` exists (:func:`save_row_result`): it holds the
metrics, timings, probe settings and full config, which makes an ablation resumable. Other
ablations and benchmarks leave the same files: :func:`find_reusable` finds one with exactly the
same config (run folder aside; the config names the method) and the same probe settings.
"""

from __future__ import annotations

import json
import os
from dataclasses import asdict
from pathlib import Path
from typing import Any, Iterable, Mapping

from mvmr.config import from_dict, to_dict
from mvmr.utils.atomic import atomic_write_json
from mvmr.workflows.ablation.probe import ProbeSettings

__all__ = ["RESULT_FILE", "load_row_result", "save_row_result", "find_reusable"]

#: The result of a row, inside its run folder.
RESULT_FILE = "result.json"


def load_row_result(run_dir: str | os.PathLike[str]) -> dict[str, Any] | None:
    """A finished row's result (``<run>/result.json``), or None."""
    path = Path(run_dir) / RESULT_FILE
    if not path.is_file():
        return None
    return json.loads(path.read_text(encoding="utf-8"))


def save_row_result(run_dir: str | os.PathLike[str], result: Mapping[str, Any]) -> Path:
    """Write ``<run>/result.json`` atomically (a row is finished once this file exists)."""
    return atomic_write_json(Path(run_dir) / RESULT_FILE, dict(result))


def _comparable(config: Mapping[str, Any]) -> dict[str, Any]:
    """A config dict without its run folder (the one key allowed to differ)."""
    out = dict(config)
    out.pop("output_dir", None)
    return out


def _normalised(res: Mapping[str, Any], cls: type) -> dict[str, Any] | None:
    """A stored result's config with today's defaults filled in (sections added since it was
    written), or None when it no longer parses (an unknown key: never reuse what we cannot read).

    Results written before the config had a ``method`` key name a peer method beside the config
    (``pretrain_method: peer:<name>``, or ``method: <name>``); that name wins over the config's.
    """
    stored = dict(res.get("config") or {})
    legacy = str(res.get("pretrain_method") or "")
    if legacy.startswith("peer:") or res.get("method") in ("vicreg", "barlow_twins"):
        stored["method"] = legacy.removeprefix("peer:") if legacy.startswith("peer:") else res["method"]
    try:
        return _comparable(to_dict(from_dict(stored, cls)))
    except (ValueError, TypeError, KeyError):
        return None


def find_reusable(config: Any, probe: ProbeSettings,
                  dirs: Iterable[str | os.PathLike[str]]) -> tuple[Path, dict[str, Any]] | None:
    """A finished row (``<dir>/*/result.json``) with exactly this config (run folder aside; the
    method included) and these probe settings."""
    want_cfg, want_probe = _comparable(to_dict(config)), asdict(probe)
    for d in dirs:
        for path in sorted(Path(d).glob(f"*/{RESULT_FILE}")):
            try:
                res = json.loads(path.read_text(encoding="utf-8"))
            except (OSError, ValueError):
                continue
            if res.get("probe") == want_probe and _normalised(res, type(config)) == want_cfg:
                return path.parent, res
    return None
