"""Child processes of a benchmark driver that stop with it.

A driver (``accuracy.py``, ``budget_curve.py``) runs each row in a child process. ``kill <pid>`` or a
scheduler's SIGTERM reaches the driver alone, not its children: without this the children train
on, orphaned, and the driver starts the next row. :class:`Children` passes SIGTERM on to every
running child (each writes its checkpoint and exits; the row resumes next time) and tells the
driver to start nothing more.
"""

from __future__ import annotations

import signal
import subprocess
from types import FrameType
from typing import Any


class Children:
    """Start children with :meth:`start`; inside ``with``, SIGTERM here is sent on to every one still running.

    After the signal :attr:`stopping` is true: the driver should start no more children, wait for
    the running ones (:meth:`wait_all`) and exit non-zero.
    """

    def __init__(self) -> None:
        self.running: list[subprocess.Popen] = []
        self.stopping = False
        self._previous: Any = None

    def start(self, cmd: list[str], **popen: Any) -> subprocess.Popen:
        proc = subprocess.Popen(cmd, **popen)
        self.running.append(proc)
        return proc

    def finished(self) -> list[subprocess.Popen]:
        """The children that have exited since the last call (no longer tracked)."""
        done = [p for p in self.running if p.poll() is not None]
        self.running = [p for p in self.running if p not in done]
        return done

    def wait_all(self) -> None:
        for proc in self.running:
            proc.wait()
        self.running = []

    def _forward(self, signum: int, frame: FrameType | None) -> None:
        self.stopping = True
        for proc in self.running:
            if proc.poll() is None:
                proc.send_signal(signum)

    def __enter__(self) -> Children:
        self._previous = signal.signal(signal.SIGTERM, self._forward)
        return self

    def __exit__(self, *exc: object) -> None:
        signal.signal(signal.SIGTERM, self._previous)
        if exc[0] is not None:  # the driver failed (Ctrl-C included): leave no child behind
            for proc in self.running:
                if proc.poll() is None:
                    proc.terminate()
        self.wait_all()
