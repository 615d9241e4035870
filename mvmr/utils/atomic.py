"""Atomic file writes: a reader (or a crash) sees the old file or the new one, never a partial one.

Every writer goes through :func:`atomic_write`: a new temporary file in the destination's folder
(so the rename never crosses file systems) is written with :func:`os.write`, flushed, ``fsync``-ed
and ``os.replace``-d over the destination, then the folder is ``fsync``-ed where possible. On any
error the temporary file is removed and the destination left as it was; a full disk or quota, at
a write, ``fsync`` or ``close``, raises a :class:`~mvmr.errors.DiskFullError` naming the file, the
bytes it needs and the bytes free. Every function returns the destination path.
"""

from __future__ import annotations

import io
import json
import os
import secrets
from collections.abc import Callable
from pathlib import Path
from typing import IO, Any

import torch

from mvmr.utils.diskspace import disk_full_error, is_disk_full

__all__ = ["atomic_write", "atomic_write_bytes", "atomic_write_text", "atomic_write_json", "atomic_torch_save"]


class _FdWriter(io.RawIOBase):
    """A raw binary file over ``fd`` that writes with :func:`os.write` and counts the bytes written."""

    def __init__(self, fd: int) -> None:
        super().__init__()
        self._fd, self.written = fd, 0

    def writable(self) -> bool:
        return True

    def fileno(self) -> int:
        return self._fd

    def write(self, data: Any) -> int:
        n = os.write(self._fd, data)
        self.written += n
        return n

    def close(self) -> None:
        if not self.closed:
            try:
                super().close()
            finally:
                os.close(self._fd)


def _sync_folder(folder: Path) -> None:
    """Make a rename in ``folder`` durable; skipped where folders cannot be opened or synced."""
    try:
        fd = os.open(folder, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)
    except OSError:
        pass


def atomic_write(
    path: str | os.PathLike[str], write: Callable[[IO[bytes]], object], *, size: int | None = None, what: str = "file"
) -> Path:
    """Call ``write(file)`` on a temporary binary file beside ``path``, then put it in place atomically.

    ``size`` (the bytes ``write`` will write, when known) and ``what`` (e.g. ``"checkpoint"``) only
    go into the :class:`~mvmr.errors.DiskFullError` raised when the disk is full.
    """
    path = Path(path)
    tmp = path.with_name(f".{path.name}.{os.getpid()}-{secrets.token_hex(4)}.tmp")  # unique, created below
    raw: _FdWriter | None = None
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_BINARY", 0), 0o666)  # umask applies
        raw = _FdWriter(fd)
        with io.BufferedWriter(raw) as f:
            write(f)
            f.flush()
            os.fsync(raw.fileno())
        os.replace(tmp, path)
    except BaseException as err:
        if raw is not None and not raw.closed:
            try:
                raw.close()
            except OSError:
                pass
        tmp.unlink(missing_ok=True)
        if isinstance(err, OSError) and is_disk_full(err):
            written = raw.written if raw is not None else None
            raise disk_full_error(path, needed=size, written=written, cause=err, what=what) from err
        raise
    _sync_folder(path.parent)
    return path


def atomic_write_bytes(
    path: str | os.PathLike[str], data: bytes | bytearray | memoryview, *, what: str = "file"
) -> Path:
    """Write ``data`` to ``path`` atomically."""
    return atomic_write(path, lambda f: f.write(data), size=memoryview(data).nbytes, what=what)


def atomic_write_text(path: str | os.PathLike[str], text: str, *, encoding: str = "utf-8") -> Path:
    """Write ``text`` to ``path`` atomically (encoded, no newline translation)."""
    return atomic_write_bytes(path, text.encode(encoding))


def atomic_write_json(
    path: str | os.PathLike[str], data: Any, *, indent: int | None = 2, sort_keys: bool = False
) -> Path:
    """Write ``data`` as JSON (UTF-8, ending with a newline) to ``path`` atomically."""
    return atomic_write_text(path, json.dumps(data, indent=indent, sort_keys=sort_keys) + "\n")


def atomic_torch_save(obj: Any, path: str | os.PathLike[str], *, what: str = "file") -> Path:
    """``torch.save(obj, path)``, atomically (serialised in memory first, so that a full disk is
    reported with the exact size)."""
    buffer = io.BytesIO()
    torch.save(obj, buffer)
    return atomic_write_bytes(path, buffer.getbuffer(), what=what)
