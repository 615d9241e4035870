"""Writing the files of a feature cache: space reserved up front, rows written with ``os.pwrite``,
and the checksums of the rows one rank wrote.

Rows are not written through a memory map, where a full disk is a SIGBUS that kills the process
with no message: with ``os.pwrite`` it is an ``OSError`` that becomes a
:class:`~mvmr.errors.DiskFullError`. :func:`reserve` allocates every file's blocks before any row
is computed where the file system supports ``posix_fallocate``.
"""

from __future__ import annotations

import contextlib
import errno
import os
from collections.abc import Iterator
from pathlib import Path

import numpy as np

from mvmr.cache.integrity import rows_per_chunk, shard_checksums
from mvmr.cache.manifest import DTYPE
from mvmr.utils.diskspace import disk_full_error, is_disk_full

__all__ = ["RowFile", "npy_bytes", "reserve", "rank_checksums"]


class RowFile:
    """A preallocated ``.npy`` file of a cache, written row by row; a full disk is a DiskFullError
    naming the file's final path ``final`` and the ``needed`` bytes of the whole cache."""

    def __init__(self, path: Path, final: Path, needed: int) -> None:
        array = np.load(path, mmap_mode="r")
        self.offset, self.row_bytes = int(array.offset), array.dtype.itemsize * int(array.shape[1])
        del array
        self.final, self.needed = final, needed
        self.fd = os.open(path, os.O_WRONLY | getattr(os, "O_BINARY", 0))

    @contextlib.contextmanager
    def _disk_full_reported(self) -> Iterator[None]:
        try:
            yield
        except OSError as err:
            if is_disk_full(err):
                raise disk_full_error(self.final, needed=self.needed, cause=err, what="feature cache file") from err
            raise

    def write_rows(self, row: int, values: np.ndarray) -> None:
        """Write ``values`` (rows of the file's dtype) as rows ``row, row + 1, ...`` of the file."""
        data = np.ascontiguousarray(values).data.cast("B")
        position = self.offset + row * self.row_bytes
        with self._disk_full_reported():
            while data:
                if hasattr(os, "pwrite"):
                    n = os.pwrite(self.fd, data, position)
                else:  # Windows: no pwrite
                    os.lseek(self.fd, position, os.SEEK_SET)
                    n = os.write(self.fd, data)
                data, position = data[n:], position + n

    def sync(self) -> None:
        """``fsync`` the rows written (a full disk can be reported only now, on some file systems)."""
        with self._disk_full_reported():
            os.fsync(self.fd)

    def close(self) -> None:
        """Close the file descriptor."""
        os.close(self.fd)


def npy_bytes(n: int, dim: int, dtype: type = DTYPE) -> int:
    """The size of an ``(n, dim)`` ``.npy`` file of ``dtype`` (header of at most 128 bytes for 2-d arrays)."""
    return 128 + n * dim * np.dtype(dtype).itemsize


def reserve(path: Path) -> None:
    """Allocate the blocks of a preallocated (sparse) file now, where the file system can: a full disk
    fails here, before any row is computed. Skipped where ``posix_fallocate`` is not supported."""
    if not hasattr(os, "posix_fallocate"):
        return
    fd = os.open(path, os.O_WRONLY)
    try:
        os.posix_fallocate(fd, 0, os.fstat(fd).st_size)
    except OSError as err:
        if err.errno not in (errno.EOPNOTSUPP, errno.EINVAL, getattr(errno, "ENOTSUP", errno.EOPNOTSUPP)):
            raise
    finally:
        os.close(fd)


def rank_checksums(path: Path, start: int, stop: int) -> dict[int, int]:
    """The chunk checksums of rows ``start:stop`` of a finished file (this rank's share)."""
    array = np.load(path, mmap_mode="r")
    return shard_checksums(array, start, stop, rows_per_chunk(array.dtype.itemsize * int(array.shape[1])))
