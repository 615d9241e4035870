"""Real images for the benchmarks: the shared archives, extracted once into .test-data/ (the
layout tests/conftest.py uses, so a benchmark and the tests share one extraction)."""

from __future__ import annotations

import os
import tarfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
SHARED_DATA = Path(os.environ.get("MVMR_SHARED_DATA", REPO.parent / "shared" / "data"))
TEST_DATA = Path(os.environ.get("MVMR_TEST_DATA", REPO / ".test-data"))


def extract_once(archive: Path, folder: str, into: Path = TEST_DATA, *, hint: str = "") -> Path:
    """``into/folder``, extracting ``archive`` there the first time; a ``.<folder>.done`` marker
    written after the last file says the extraction finished (an interrupted one is redone)."""
    target, done = into / folder, into / f".{folder}.done"
    if not done.exists():
        if not archive.is_file():
            raise SystemExit(f"real images not found: {archive} is missing{f' ({hint})' if hint else ''}")
        into.mkdir(parents=True, exist_ok=True)
        with tarfile.open(archive) as tar:
            tar.extractall(into, filter="data")
        done.touch()
    return target
