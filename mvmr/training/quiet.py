"""Clean command-line output: libraries' notices and advertisements hidden, each warning shown once.

:func:`clean_output` is what ``mvmr`` does around every command unless ``--debug`` is given: it
drops informational log records (``logging.disable(logging.INFO)``: Lightning's tips, checkpoint
notices, MLflow's "Creating experiment"; warnings and errors still show), tells the trainer to
leave its model summary out (:func:`notices_hidden`), hides every warning that Lightning itself
issues (its advice about workers, logging intervals or non-empty checkpoint folders: mvmr says what
matters in its own words) and every deprecation/future warning (about libraries' internals), and
shows any other warning once per message. Nothing here imports Lightning, so the command line stays fast to start.
"""

from __future__ import annotations

import contextlib
import logging
import sys
import warnings
from collections.abc import Iterator
from types import FrameType
from typing import Any

__all__ = ["clean_output", "notices_hidden"]

#: Warning classes hidden in normal output, by name (importing them would import Lightning).
_HIDDEN = {
    "PossibleUserWarning",
    "DeprecationWarning",
    "FutureWarning",
    "PendingDeprecationWarning",
    "LightningDeprecationWarning",
}


#: Packages whose own warnings are hidden (the module that calls ``warnings.warn``).
_QUIET_PACKAGES = ("lightning", "lightning_fabric", "pytorch_lightning", "lightning_utilities")


def _issued_by_quiet_package() -> bool:
    """Whether the code that called ``warnings.warn`` (the first frame outside ``warnings`` and this
    module, seen from inside ``showwarning``) belongs to one of :data:`_QUIET_PACKAGES`."""
    frame: FrameType | None = sys._getframe(2)
    while frame is not None and frame.f_globals.get("__name__") in ("warnings", __name__):
        frame = frame.f_back
    module = frame.f_globals.get("__name__", "") if frame is not None else ""
    return module.split(".")[0] in _QUIET_PACKAGES


def notices_hidden() -> bool:
    """True inside :func:`clean_output` (informational output is hidden)."""
    return logging.root.manager.disable >= logging.INFO


@contextlib.contextmanager
def clean_output(enabled: bool = True) -> Iterator[None]:
    """Within the block, hide libraries' notices and advice and show each remaining warning once;
    ``enabled=False`` (``mvmr --debug``) changes nothing."""
    if not enabled:
        yield
        return
    previous = logging.root.manager.disable
    logging.disable(max(previous, logging.INFO))
    seen: set[tuple[type[Warning], str]] = set()
    with warnings.catch_warnings():
        shown = warnings.showwarning

        def show_once(
            message: Warning | str,
            category: type[Warning],
            filename: str,
            lineno: int,
            file: Any = None,
            line: str | None = None,
        ) -> None:
            key = (category, str(message))
            if key in seen or any(cls.__name__ in _HIDDEN for cls in category.__mro__) or _issued_by_quiet_package():
                return
            seen.add(key)
            shown(message, category, filename, lineno, file, line)

        warnings.showwarning = show_once
        try:
            yield
        finally:
            logging.disable(previous)
