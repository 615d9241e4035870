"""Clean command-line output: libraries' notices and advertisements hidden, each warning shown once.

:func:`clean_output` is what ``mvmr`` does around every command unless ``--debug`` is given:

- informational log records are dropped (``logging.disable(logging.INFO)``), whichever library
  sends them and whenever it was imported: Lightning's "Tip" advertisements, "GPU available",
  "`Trainer.fit` stopped", checkpoint notices, MLflow's "Creating experiment"; warnings and errors
  that libraries log still show;
- Lightning's model summary is left out (:func:`notices_hidden` tells the trainer; the run's own
  plan gives the parameter count);
- Lightning's ``PossibleUserWarning`` s (advice such as "does not have many workers") and every
  ``DeprecationWarning`` / ``FutureWarning`` (about libraries' internals, not the user's run) are
  not shown;
- any other warning is shown once per message, however many places or steps raise it.

Nothing here imports Lightning, so the command line stays fast to start.
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


def _hidden(category: type[Warning]) -> bool:
    return any(cls.__name__ in _HIDDEN for cls in category.__mro__)


def notices_hidden() -> bool:
    """True inside :func:`clean_output` (informational output is hidden)."""
    return logging.root.manager.disable >= logging.INFO


@contextlib.contextmanager
def clean_output(enabled: bool = True) -> Iterator[None]:
    """Within the block, hide libraries' notices and advice and show each remaining warning once.

    ``enabled=False`` (``mvmr --debug``) changes nothing. The logging and warning machinery are
    restored when the block ends.
    """
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
            if _hidden(category) or key in seen:
                return
            seen.add(key)
            shown(message, category, filename, lineno, file, line)

        warnings.showwarning = show_once
        try:
            yield
        finally:
            logging.disable(previous)
