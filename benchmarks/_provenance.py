"""Where and with what a benchmark record was made: the CPU model, the commit, torch and the date
(``mvmr.utils.provenance`` finds them), and the writer every benchmark's records go through."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

from mvmr.utils.provenance import provenance as _provenance

REPO = Path(__file__).resolve().parents[1]


def provenance() -> dict[str, str]:
    """The fields every record carries beside its metrics: machine, this checkout's commit, torch version and
    date (the library's provenance; the commit already names the mvmr version, so records leave that out)."""
    return {k: v for k, v in _provenance(REPO).items() if k != "mvmr"}


#: the fields of :func:`provenance`, which a record carries beside its metrics
FIELDS = ("machine", "commit", "torch", "recorded")


def ran_on(result: dict[str, Any], fallback: dict[str, str]) -> dict[str, Any]:
    """Where and with what code ``result`` ran: its own :data:`FIELDS` (a row records them when it starts),
    and ``fallback`` (the collecting process's :func:`provenance`) for those it lacks (rows run before)."""
    return {**fallback, **{k: result[k] for k in FIELDS if k in result}}


def repo_relative(value: Any) -> Any:
    """``value`` with every string path inside this checkout written relative to it (records name no machine's
    absolute paths); dicts and lists are walked, everything else is returned as it is."""
    if isinstance(value, dict):
        return {k: repo_relative(v) for k, v in value.items()}
    if isinstance(value, list):
        return [repo_relative(v) for v in value]
    if isinstance(value, str):
        root = str(REPO)
        if value == root:
            return "."
        return value.replace(root + "/", "")
    return value


def command(argv: list[str] | None, script: str) -> list[str]:
    """The command line that ran: ``sys.argv``, or ``script`` (a benchmark's ``__file__``) and ``argv`` when its
    ``main`` was called in-process."""
    return list(sys.argv) if argv is None else [str(Path(script).resolve()), *argv]


def write_records(path: str | Path, records: list[dict[str, Any]], *, strict: bool = False) -> Path:
    """Write ``records`` to the JSON file ``path`` (its folder made if missing), every path in them relative to
    this checkout, and say so on stdout. ``strict`` refuses NaN and infinity (standard JSON) instead of writing
    them as JavaScript literals; ``ensure_ascii`` is off either way, so labels keep their characters."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    text = json.dumps(repo_relative(records), indent=1, ensure_ascii=False, allow_nan=not strict)
    path.write_text(text + "\n", encoding="utf-8")
    print(f"records: {path} ({len(records)} {'row' if len(records) == 1 else 'rows'})")
    return path


def updated_records(path: str | Path, new: list[dict[str, Any]], key: str | tuple[str, ...]) -> list[dict[str, Any]]:
    """The records of the JSON file ``path`` with those of ``new`` in place of the ones sharing their ``key``
    (a field, or a tuple of fields that together name a record, such as ``("table", "row")``; a partial
    re-run): the file's other records are kept in their order, and ``new``'s records that replace none follow
    them. Without the file, ``new`` itself."""
    path = Path(path)
    if not path.is_file():
        return list(new)
    fields = (key,) if isinstance(key, str) else key

    def name(record: dict[str, Any]) -> tuple[Any, ...]:
        return tuple(record.get(f) for f in fields)

    fresh = {name(r): r for r in new}
    old = json.loads(path.read_text(encoding="utf-8"))
    kept = [fresh.pop(name(r), r) for r in old]
    return kept + [r for r in new if name(r) in fresh]
