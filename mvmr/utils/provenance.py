"""Where and with what a result was made: the CPU model, the code's commit and version, torch and the date.

A result that a document quotes carries these fields beside its numbers, so that a reader can tell
which machine and which code produced it (``mvmr demo`` writes them into ``demo_results.json``).
"""

from __future__ import annotations

import os
import platform
import resource
import subprocess
import time
from importlib import metadata
from pathlib import Path

#: the checkout this package was imported from (its ``git`` commit names the code that ran)
PACKAGE_ROOT = Path(__file__).resolve().parents[2]


def machine() -> str:
    """The CPU model (``model name`` in ``/proc/cpuinfo``, else the platform's name) and the core count."""
    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text(encoding="utf-8").splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return f"{cpu}, {os.cpu_count()} cores"


def git_commit(root: str | os.PathLike[str] = PACKAGE_ROOT) -> str:
    """The short commit hash of the git checkout at ``root``, or ``unknown`` (an installed wheel, no git)."""
    try:
        return subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"], cwd=root, capture_output=True, text=True, check=True
        ).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "unknown"


def peak_rss_mib(children: bool = False) -> float:
    """Peak resident memory so far, in MiB: of this process, or (``children``) of the largest child it waited for.

    ``ru_maxrss`` is in KiB on Linux; for children it is the largest of those already waited for.
    """
    who = resource.RUSAGE_CHILDREN if children else resource.RUSAGE_SELF
    return resource.getrusage(who).ru_maxrss / 1024.0


def provenance(root: str | os.PathLike[str] = PACKAGE_ROOT) -> dict[str, str]:
    """The fields a quoted result carries: ``machine``, ``commit`` (of the checkout at ``root``), ``mvmr`` and
    ``torch`` versions, ``recorded``."""
    import torch

    try:
        version = metadata.version("mvmr")
    except metadata.PackageNotFoundError:  # imported from a checkout that was never installed
        version = "unknown"
    return {
        "machine": machine(),
        "commit": git_commit(root),
        "mvmr": version,
        "torch": torch.__version__,
        "recorded": time.strftime("%Y-%m-%d"),
    }
