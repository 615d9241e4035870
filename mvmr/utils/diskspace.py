"""A full disk, reported clearly: which file, how much space it needs, how much is left.

Every writer of the library turns ``ENOSPC`` and ``EDQUOT`` (quota exceeded) into a
:class:`~mvmr.errors.DiskFullError` with :func:`disk_full_error`, after removing its temporary file;
:func:`require_free_space` refuses a large write (a feature cache) before it starts.
"""

from __future__ import annotations

import errno
import os
import shutil
from pathlib import Path

from mvmr.errors import DiskFullError

__all__ = ["FULL_DISK_ERRNOS", "is_disk_full", "free_bytes", "format_bytes", "disk_full_error", "require_free_space"]

#: The errnos that mean the file system (or the user's share of it) is full.
FULL_DISK_ERRNOS: frozenset[int] = frozenset(e for e in (errno.ENOSPC, getattr(errno, "EDQUOT", None)) if e is not None)


def is_disk_full(err: BaseException) -> bool:
    """True for an OSError whose errno says that the disk or the quota is full."""
    return isinstance(err, OSError) and not isinstance(err, DiskFullError) and err.errno in FULL_DISK_ERRNOS


def free_bytes(path: str | os.PathLike[str]) -> int | None:
    """Bytes available on the file system holding ``path`` (its nearest existing parent); None if unknown."""
    p = Path(path)
    while not p.exists() and p != p.parent:
        p = p.parent
    try:
        return int(shutil.disk_usage(p).free)
    except OSError:
        return None


def format_bytes(n: int | None) -> str:
    """``n`` bytes for people: ``'1.5 GiB (1610612736 bytes)'``; ``'unknown'`` for None."""
    if n is None:
        return "unknown"
    value, unit = float(n), "bytes"
    for name in ("KiB", "MiB", "GiB", "TiB"):
        if value < 1024:
            break
        value, unit = value / 1024, name
    return f"{n} bytes" if unit == "bytes" else f"{value:.1f} {unit} ({n} bytes)"


def disk_full_error(
    path: str | os.PathLike[str],
    *,
    needed: int | None,
    written: int | None = None,
    cause: OSError | None = None,
    what: str = "file",
) -> DiskFullError:
    """The :class:`~mvmr.errors.DiskFullError` for a failed write of ``path`` (a file or folder), which
    needs ``needed`` bytes in all (None: unknown), of which ``written`` were written when the disk
    filled; ``cause`` is the original OSError, ``what`` names what was written ("checkpoint", ...)."""
    free = free_bytes(path)
    code = cause.errno if cause is not None else errno.ENOSPC
    reason = os.strerror(code) if code is not None else "no space left on device"
    if needed is not None:
        need = f"it needs {format_bytes(needed)}"
    elif written is not None:
        need = f"it needs more than the {format_bytes(written)} written before the disk filled"
    else:
        need = "its size is not known in advance"
    message = (
        f"cannot write {what} {path}: {reason}; {need}, {format_bytes(free)} free there. "
        f"Nothing was replaced and no partial file was left; free some space (or point the output "
        f"elsewhere) and run again"
    )
    return DiskFullError(
        message, path=str(path), needed=needed if needed is not None else written, free=free, errno=code
    )


def require_free_space(path: str | os.PathLike[str], needed: int, *, what: str = "file") -> None:
    """Raise :class:`~mvmr.errors.DiskFullError` when the file system of ``path`` has less than
    ``needed`` bytes free (does nothing when the free space cannot be read)."""
    free = free_bytes(path)
    if free is not None and free < needed:
        raise disk_full_error(path, needed=needed, what=what)
