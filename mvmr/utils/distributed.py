"""The process group as the library sees it: one process, or every rank of ``torch.distributed``.

Once-per-run work (building a feature cache, fingerprinting a dataset) runs through
:class:`ProcessGroup`: rank 0 decides, the others receive its answer; with one process every
method is trivial, so the same code path serves both cases.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, TypeVar

import torch.distributed as dist

__all__ = ["ProcessGroup", "current_group", "first_error"]

T = TypeVar("T")


@dataclass(frozen=True)
class ProcessGroup:
    """``rank`` of ``world_size`` processes, with object broadcast / gather."""

    rank: int = 0
    world_size: int = 1

    @property
    def is_main(self) -> bool:
        """Rank 0: the process that decides and commits."""
        return self.rank == 0

    @property
    def distributed(self) -> bool:
        return self.world_size > 1

    def broadcast(self, obj: T) -> T:
        """Rank 0's ``obj`` on every rank (picklable objects)."""
        if not self.distributed:
            return obj
        box = [obj if self.is_main else None]
        dist.broadcast_object_list(box, src=0)
        return box[0]  # type: ignore[return-value]

    def all_gather(self, obj: T) -> list[T]:
        """Every rank's ``obj``, in rank order."""
        if not self.distributed:
            return [obj]
        out: list[Any] = [None] * self.world_size
        dist.all_gather_object(out, obj)
        return out

    def run_on_main(self, fn: Callable[[], T]) -> T:
        """Run ``fn`` on rank 0 only and return its result everywhere; an exception there is
        raised on every rank (so no rank waits forever for a crashed one)."""
        result: tuple[bool, Any] = (True, None)
        if self.is_main:
            try:
                result = (True, fn())
            except Exception as err:  # re-raised below, on every rank
                result = (False, err)
        ok, value = self.broadcast(result)
        if not ok:
            if self.is_main:
                raise value
            raise RuntimeError(f"rank 0 failed: {value}") from value
        return value


def first_error(reports: list[str | None]) -> tuple[int, str] | None:
    """``(rank, message)`` of the first non-empty report, or None."""
    for rank, message in enumerate(reports):
        if message is not None:
            return rank, message
    return None


def current_group() -> ProcessGroup:
    """The default ``torch.distributed`` group when it is initialised, else a single process."""
    if dist.is_available() and dist.is_initialized():
        return ProcessGroup(dist.get_rank(), dist.get_world_size())
    return ProcessGroup()
