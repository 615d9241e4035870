"""``benchmarks/_children.py``: a benchmark driver's SIGTERM reaches its running children, and stops it."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "benchmarks"))
from _children import Children  # noqa: E402

#: a child that says when it is ready, then exits 143 on SIGTERM (as a checkpointing row does)
CHILD = (
    "import signal, sys, time\n"
    "signal.signal(signal.SIGTERM, lambda *a: sys.exit(143))\n"
    "print('ready', flush=True)\n"
    "time.sleep(60)\n"
    "sys.exit(0)\n"
)


def test_sigterm_is_forwarded_to_every_running_child_and_the_driver_stops() -> None:
    previous = signal.getsignal(signal.SIGTERM)
    started = time.monotonic()
    with Children() as children:
        procs = [children.start([sys.executable, "-c", CHILD], stdout=subprocess.PIPE, text=True) for _ in range(2)]
        for proc in procs:
            assert proc.stdout is not None and proc.stdout.readline().strip() == "ready"
        assert not children.stopping
        os.kill(os.getpid(), signal.SIGTERM)  # what `kill <driver pid>` or a scheduler sends
        assert children.stopping
        codes = [proc.wait(timeout=30) for proc in procs]
    assert codes == [143, 143]  # each child got the signal and handled it, well before its 60 s sleep ended
    assert time.monotonic() - started < 30
    assert signal.getsignal(signal.SIGTERM) is previous  # the driver's own handler is back


def test_a_failing_driver_leaves_no_child_running() -> None:
    try:
        with Children() as children:
            proc = children.start([sys.executable, "-c", CHILD], stdout=subprocess.PIPE, text=True)
            assert proc.stdout is not None and proc.stdout.readline().strip() == "ready"
            raise KeyboardInterrupt
    except KeyboardInterrupt:
        pass
    assert proc.poll() is not None and proc.returncode == 143 and children.running == []
