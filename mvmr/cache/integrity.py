"""Integrity of the feature cache files: sizes, header checksums and per-chunk checksums of the rows.

A file can be cut short, grow or have bytes flipped. The build records in the manifest's
``integrity`` entry of every ``.npy`` file its ``bytes`` (checked at opening), the ``header_crc32``
(checked at opening) and the CRC-32 of every chunk of ``rows_per_chunk`` rows (about
:data:`CHUNK_BYTES`), checked the first time this process reads a row of it. CRC-32 catches every
burst of up to 32 bits and other damage with probability 1 - 2^-32 (accidents, not tampering). A
failed check raises :class:`CorruptCacheError` naming the file and chunk. Each rank of a sharded
build checksums the chunks wholly inside its rows (:func:`shard_checksums`); rank 0 adds those that
straddle two ranks (:func:`integrity_entry`).
"""

from __future__ import annotations

import os
import zlib
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

from mvmr.cache.manifest import CacheError

__all__ = [
    "ALGORITHM",
    "CHUNK_BYTES",
    "CorruptCacheError",
    "rows_per_chunk",
    "chunk_count",
    "chunk_checksum",
    "shard_checksums",
    "header_checksum",
    "integrity_entry",
    "ChunkVerifier",
    "check_file",
]

ALGORITHM = "crc32"
#: Target size of a checksummed chunk: small enough that the first read of a row checks little,
#: large enough that the manifest lists few checksums (about 250 per GiB).
CHUNK_BYTES = 4 * 2**20


class CorruptCacheError(CacheError):
    """A feature cache file has the wrong size or content: it was cut short, extended or damaged."""


def rows_per_chunk(row_bytes: int) -> int:
    """Rows in one checksummed chunk, for rows of ``row_bytes`` bytes."""
    return max(1, CHUNK_BYTES // max(1, int(row_bytes)))


def chunk_count(n: int, rows: int) -> int:
    """Chunks covering ``n`` rows."""
    return -(-int(n) // int(rows))


def chunk_checksum(array: np.ndarray, chunk: int, rows: int) -> int:
    """CRC-32 of the bytes of rows ``[chunk * rows, (chunk + 1) * rows)`` of a C-contiguous ``array``."""
    block = np.ascontiguousarray(array[chunk * rows : (chunk + 1) * rows])
    return zlib.crc32(block.view(np.uint8).reshape(-1).data) if block.size else zlib.crc32(b"")


def shard_checksums(array: np.ndarray, start: int, stop: int, rows: int) -> dict[int, int]:
    """``{chunk: crc32}`` of the chunks lying wholly inside rows ``[start, stop)`` (the last, partial
    chunk of the array counts as whole)."""
    n = array.shape[0]
    end = chunk_count(n, rows) if stop >= n else stop // rows  # the chunks ending at or before stop
    return {chunk: chunk_checksum(array, chunk, rows) for chunk in range(chunk_count(start, rows), end)}


def header_checksum(path: str | os.PathLike[str], offset: int) -> int:
    """CRC-32 of the first ``offset`` bytes of a file (an ``.npy`` header)."""
    with open(path, "rb") as f:
        return zlib.crc32(f.read(offset))


def integrity_entry(path: Path, partial: Mapping[int, int]) -> dict[str, Any]:
    """The manifest's integrity record of a finished ``.npy`` file, completing the ranks' ``partial``
    chunk checksums with the chunks no rank could checksum alone."""
    array = np.load(path, mmap_mode="r")
    rows = rows_per_chunk(array.dtype.itemsize * int(np.prod(array.shape[1:], dtype=np.int64)))
    checksums = [
        partial[c] if c in partial else chunk_checksum(array, c, rows) for c in range(chunk_count(array.shape[0], rows))
    ]
    offset = int(array.offset)
    del array
    return {
        "bytes": path.stat().st_size,
        "header_bytes": offset,
        "header_crc32": header_checksum(path, offset),
        "rows_per_chunk": rows,
        ALGORITHM: checksums,
    }


def check_file(path: Path, entry: Mapping[str, Any], *, header: bool = True) -> None:
    """The checks made when a cache file is opened: its size and (``header=True``) its header's checksum."""
    try:
        size = path.stat().st_size
    except OSError as err:
        raise CorruptCacheError(f"feature cache file {path} cannot be read ({err}); rebuild the cache") from None
    if size != entry["bytes"]:
        how = "cut short" if size < entry["bytes"] else "longer than written"
        raise CorruptCacheError(
            f"feature cache file {path} is {size} bytes, but the build wrote {entry['bytes']} "
            f"({how}); the cache is corrupt: rebuild it"
        )
    if header and header_checksum(path, int(entry["header_bytes"])) != entry["header_crc32"]:
        raise CorruptCacheError(
            f"feature cache file {path}: its .npy header fails its checksum; the cache is corrupt: rebuild it"
        )


class ChunkVerifier:
    """Checks the chunks of one cache file (``array``, its ``(N, D)`` memory map) lazily, each the
    first time a row of it is read, against ``entry``, its manifest integrity record."""

    def __init__(self, path: Path, array: np.ndarray, entry: Mapping[str, Any]) -> None:
        self.path, self.array = path, array
        self.rows = int(entry["rows_per_chunk"])
        self.expected = np.asarray(entry[ALGORITHM], dtype=np.int64)
        if len(self.expected) != chunk_count(array.shape[0], self.rows):
            raise CorruptCacheError(
                f"feature cache file {path}: the manifest lists {len(self.expected)} chunk "
                f"checksums for {chunk_count(array.shape[0], self.rows)} chunks; rebuild the cache"
            )
        self.verified = np.zeros(len(self.expected), dtype=bool)

    def check_rows(self, rows: np.ndarray) -> None:
        """Verify the chunks holding ``rows`` (sorted, unique row numbers) that are not verified yet."""
        chunks = np.unique(rows // self.rows)
        for chunk in chunks[~self.verified[chunks]]:
            self.check_chunk(int(chunk))

    def check_chunk(self, chunk: int) -> None:
        """Verify one chunk now; :class:`CorruptCacheError` naming the file, chunk and rows if it differs."""
        got = chunk_checksum(self.array, chunk, self.rows)
        if got != int(self.expected[chunk]):
            lo, hi = chunk * self.rows, min(self.array.shape[0], (chunk + 1) * self.rows)
            raise CorruptCacheError(
                f"feature cache file {self.path}: chunk {chunk} (rows {lo}-{hi - 1}) fails its {ALGORITHM} checksum "
                f"(got {got:08x}, built {int(self.expected[chunk]):08x}): the file is damaged and no row of it is "
                f"used. Rebuild the cache: `mvmr cache` with the run's config checks every chunk and rebuilds a "
                f"damaged cache (or delete the folder)"
            )
        self.verified[chunk] = True

    def check_all(self) -> None:
        """Verify every chunk not verified yet (a full read of the file)."""
        for chunk in np.flatnonzero(~self.verified):
            self.check_chunk(int(chunk))
