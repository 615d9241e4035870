"""Clean command-line output: libraries' notices and advertisements hidden, each warning shown once.

:func:`clean_output` is what ``mvmr`` does around every command unless ``--debug`` is given: it
drops informational log records (``logging.disable(logging.INFO)``: Lightning's tips, checkpoint
notices, MLflow's "Creating experiment"; warnings and errors still show), tells the trainer to
leave its model summary out (:func:`notices_hidden`), hides Lightning's ``PossibleUserWarning``
and every deprecation/future warning (about libraries' internals), and shows any other warning
once per message. Nothing here imports Lightning, so the command line stays fast to start.
"""

from __future__ import annotations

import contextlib
import logging
import warnings
from typing import Any, Iterator

__all__ = ["clean_output", "notices_hidden"]

#: Warning classes hidden in normal output, by name (importing them would import Lightning).
_HIDDEN = {"PossibleUserWarning", "DeprecationWarning", "FutureWarning", "PendingDeprecationWarning",
           "LightningDeprecationWarning"}


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

        def show_once(message: Warning | str, category: type[Warning], filename: str, lineno: int,
                      file: Any = None, line: str | None = None) -> None:
            key = (category, str(message))
            if key in seen or any(cls.__name__ in _HIDDEN for cls in category.__mro__):
                return
            seen.add(key)
            shown(message, category, filename, lineno, file, line)

        warnings.showwarning = show_once
        try:
            yield
        finally:
            logging.disable(previous)
