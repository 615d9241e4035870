"""Fault injection for the reliability tests: a full disk, and a run that waits for a signal.

:class:`FullDisk` patches the low-level writes the library's writers go through (``os.write``,
used by :mod:`mvmr.utils.atomic`; ``os.pwrite`` and ``os.posix_fallocate``, used by the feature
cache build) so that files below ``root`` behave as on a file system with ``free`` bytes left: a
write stores what fits and returns a short count, the next one fails with ``ENOSPC``, as the
kernel does. Writes elsewhere (pytest's own files, logs outside ``root``) are untouched. Linux
only (it reads ``/proc/self/fd`` to tell where a descriptor points).
"""

from __future__ import annotations

import errno
import os
import shutil
from pathlib import Path
from typing import Any

import pytest


class FullDisk:
    """A file system below ``root`` with ``free`` bytes left (None: unlimited, until set).

    Args:
        monkeypatch: pytest's monkeypatch (undone at the end of the test).
        root: the folder whose files see the full disk.
        free: bytes that may still be written (None = no limit yet; set ``disk.free`` later).
        fallocate: False makes ``posix_fallocate`` unsupported (EOPNOTSUPP), as on some network
            file systems, so that the cache build meets the full disk at its row writes.
        report_free: also make ``shutil.disk_usage`` report ``free`` bytes free.
    """

    def __init__(
        self,
        monkeypatch: pytest.MonkeyPatch,
        root: Path,
        *,
        free: int | None = 0,
        fallocate: bool = True,
        report_free: bool = False,
    ) -> None:
        self.root = str(Path(root).resolve())
        self.free = free
        self.failures = 0
        self._reserved: set[str] = set()
        real_write, real_pwrite = os.write, os.pwrite
        real_fallocate = getattr(os, "posix_fallocate", None)
        real_usage = shutil.disk_usage

        def write(fd: int, data: Any) -> int:
            if self._path(fd) is None:
                return real_write(fd, data)
            view = memoryview(data).cast("B")
            return real_write(fd, view[: self._take(len(view))])

        def pwrite(fd: int, data: Any, offset: int) -> int:
            path = self._path(fd)
            if path is None or path in self._reserved:
                return real_pwrite(fd, data, offset)
            view = memoryview(data).cast("B")
            return real_pwrite(fd, view[: self._take(len(view))], offset)

        def posix_fallocate(fd: int, offset: int, length: int) -> None:
            path = self._path(fd)
            if path is None:
                return real_fallocate(fd, offset, length)  # type: ignore[misc]
            if not fallocate:
                raise OSError(errno.EOPNOTSUPP, os.strerror(errno.EOPNOTSUPP))
            if self.free is not None:
                if length > self.free:
                    self.failures += 1
                    raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
                self.free -= length
            self._reserved.add(path)
            return real_fallocate(fd, offset, length)  # type: ignore[misc]

        def disk_usage(path: Any) -> Any:
            usage = real_usage(path)
            if report_free and self.free is not None and str(Path(path).resolve()).startswith(self.root):
                return usage._replace(free=self.free)
            return usage

        monkeypatch.setattr(os, "write", write)
        monkeypatch.setattr(os, "pwrite", pwrite)
        if real_fallocate is not None:
            monkeypatch.setattr(os, "posix_fallocate", posix_fallocate)
        monkeypatch.setattr(shutil, "disk_usage", disk_usage)

    def _path(self, fd: int) -> str | None:
        """The file ``fd`` writes to, when it lies below ``root``."""
        try:
            target = os.readlink(f"/proc/self/fd/{fd}")
        except OSError:
            return None
        return target if target.startswith(self.root + os.sep) else None

    def _take(self, n: int) -> int:
        """Bytes of an ``n``-byte write that fit; ENOSPC when none does."""
        if self.free is None:
            return n
        if self.free <= 0 and n > 0:
            self.failures += 1
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        k = min(n, self.free)
        self.free -= k
        return k


def leftovers(folder: Path) -> list[str]:
    """Temporary files or folders of an atomic write or a cache build below ``folder``."""
    return sorted(
        str(p.relative_to(folder))
        for p in folder.rglob("*")
        if p.name.endswith(".tmp") or ".tmp-" in p.name or ".old-" in p.name
    )


# --------------------------------------------------------------------------------------------
# a training run that waits for a signal at a given step (run as a script by the signal tests)
# --------------------------------------------------------------------------------------------
def wait_for_signal_callback(at: int, ready: Path, timeout: float = 120.0) -> Any:
    """A callback that, when optimiser step ``at`` is about to start, writes ``ready`` (the test's cue
    to send its signal) and then waits until the run's :class:`~mvmr.training.preemption.Preemption`
    has received a signal (or, for SIGKILL, until the process is killed)."""
    import time

    import lightning as L

    from mvmr.training.preemption import Preemption

    class WaitForSignal(L.Callback):
        def __init__(self) -> None:
            self.done = False

        def on_train_batch_start(self, trainer: Any, pl_module: Any, batch: Any, batch_idx: int) -> None:
            if self.done or trainer.global_step != at:
                return
            self.done = True
            preemption = next(cb for cb in trainer.callbacks if isinstance(cb, Preemption))
            ready.write_text(str(os.getpid()))
            deadline = time.monotonic() + timeout
            while preemption.received is None and time.monotonic() < deadline:
                time.sleep(0.01)

    return WaitForSignal()


if __name__ == "__main__":  # python tests/_faults.py DATA_ROOT RUN_DIR READY_FILE STEP [KEY=VALUE ...]
    import sys

    sys.path.insert(0, str(Path(__file__).parent))
    from _training_support import FEATURE_DIM, tiny_config, tiny_model

    from mvmr.training.trainer import pretrain

    data_root, run_dir, ready_file, step, *overrides = sys.argv[1:]
    pretrain(
        tiny_config(Path(data_root), Path(run_dir), overrides),
        model=tiny_model(),
        feature_dim=FEATURE_DIM,
        callbacks=[wait_for_signal_callback(int(step), Path(ready_file))],
    )
