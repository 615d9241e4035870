"""Finished rows: their ``result.json``, and reusing them instead of running a row again.

A row is finished once ``<run>/result.json`` exists (:func:`save_row_result`): it holds the
metrics, timings, probe settings and full config, which makes an ablation resumable. Other
ablations and benchmarks leave the same files: :func:`find_reusable` finds one with exactly the
same config (run folder aside), the same probe settings and the same pretraining method.
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


def _normalised(stored: Mapping[str, Any], cls: type) -> dict[str, Any] | None:
    """A stored config with today's defaults filled in (sections added since it was written), or
    None when it no longer parses (an unknown key: never reuse what we cannot read)."""
    try:
        return _comparable(to_dict(from_dict(stored, cls)))
    except (ValueError, TypeError, KeyError):
        return None


def _pretrain_method(res: Mapping[str, Any]) -> str:
    """How a result's encoder was pretrained: ``mvmr`` or ``peer:<method>`` (the config alone does not say)."""
    if res.get("pretrain_method"):
        return str(res["pretrain_method"])
    method = res.get("method")
    return f"peer:{method}" if method in ("vicreg", "barlow_twins") else "mvmr"


def find_reusable(config: Any, probe: ProbeSettings, dirs: Iterable[str | os.PathLike[str]],
                  method: str = "mvmr") -> tuple[Path, dict[str, Any]] | None:
    """A finished row (``<dir>/*/result.json``) pretrained by ``method`` with exactly this config
    (run folder aside) and probe settings."""
    want_cfg, want_probe = _comparable(to_dict(config)), asdict(probe)
    for d in dirs:
        for path in sorted(Path(d).glob(f"*/{RESULT_FILE}")):
            try:
                res = json.loads(path.read_text(encoding="utf-8"))
            except (OSError, ValueError):
                continue
            if (_pretrain_method(res) == method and res.get("probe") == want_probe
                    and _normalised(res.get("config") or {}, type(config)) == want_cfg):
                return path.parent, res
    return None
