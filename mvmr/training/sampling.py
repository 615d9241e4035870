"""A reproducible, resumable, rank-aware training loader: all randomness is a function of (seed, epoch, index).

:class:`EpochBatchSampler` shuffles with a generator seeded by ``(seed, epoch)``, keeps the items
``rank::world_size`` (the same count on every rank) and yields batches of ``(epoch, index)``,
dropping the last incomplete batch. :class:`EpochItems` sets the views' epoch and returns
``views[index]``, so an item's augmentation is the same in any process, worker or resume.
:class:`ResumableLoader` has ``state_dict``/``load_state_dict``, which Lightning checkpoints, so a
mid-epoch resume skips the batches already trained on. The global batch of step ``t`` is
``order[t*b*W : (t+1)*b*W]``, the one a single process with batch ``b*W`` sees.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import numpy as np
from torch.utils.data import DataLoader, Dataset, Sampler

from mvmr.data.base import hash_parts
from mvmr.errors import DataError

__all__ = ["EpochBatchSampler", "EpochItems", "ResumableLoader", "mix_seed"]


def mix_seed(*parts: object) -> int:
    """A 63-bit seed from any parts (stable across processes and Python versions)."""
    return int(hash_parts([repr(p) for p in parts])[:15], 16)


class _EpochHook:
    """Lightning calls ``set_epoch`` on ``loader.sampler`` and ``loader.batch_sampler.sampler``,
    never on the batch sampler itself: this is the batch sampler's ``sampler``."""

    def __init__(self, owner: EpochBatchSampler) -> None:
        self._owner = owner

    def set_epoch(self, epoch: int) -> None:
        self._owner.set_epoch(epoch)


class EpochBatchSampler(Sampler[list[tuple[int, int]]]):
    """Batches of ``(epoch, index)`` over ``indices``, shuffled per epoch, sharded per rank."""

    def __init__(
        self, indices: np.ndarray | list[int], batch_size: int, *, seed: int = 0, rank: int = 0, world_size: int = 1
    ) -> None:
        self.indices = np.asarray(indices, dtype=np.int64)
        self.batch_size, self.seed = int(batch_size), int(seed)
        self.rank, self.world_size = int(rank), int(world_size)
        self.epoch = 0
        self.sampler = _EpochHook(self)
        self._skip: tuple[int, int] | None = None  # (epoch, batches) to skip once
        if len(self) == 0:
            raise DataError(
                f"{len(self.indices)} training images give no complete batch of {self.batch_size} per process "
                f"({self.world_size} process(es)); lower data.batch_size or use more data"
            )

    def set_epoch(self, epoch: int) -> None:
        """Called by Lightning at the start of every epoch."""
        self.epoch = int(epoch)

    def skip_once(self, epoch: int, batches: int) -> None:
        """In ``epoch``, start after the first ``batches`` batches (used once, by a resume)."""
        self._skip = (int(epoch), int(batches))

    def order(self, epoch: int) -> np.ndarray:
        """This rank's items of ``epoch``, in order (before batching)."""
        gen = np.random.default_rng(mix_seed("sampler", self.seed, epoch))
        idx = self.indices[gen.permutation(len(self.indices))]
        per_rank = len(idx) // self.world_size
        return idx[: per_rank * self.world_size][self.rank :: self.world_size]

    def __len__(self) -> int:
        return (len(self.indices) // self.world_size) // self.batch_size

    def __iter__(self) -> Iterator[list[tuple[int, int]]]:
        epoch = self.epoch
        order = self.order(epoch)
        start = self._skip[1] if self._skip is not None and self._skip[0] == epoch else 0
        self._skip = None
        for b in range(start, len(self)):
            yield [(epoch, int(i)) for i in order[b * self.batch_size : (b + 1) * self.batch_size]]


class EpochItems(Dataset):
    """``views[index]`` for an ``(epoch, index)`` key, with the views' epoch set first."""

    def __init__(self, views: Any) -> None:
        self.views = views

    def __len__(self) -> int:
        return len(self.views)

    def __getitem__(self, key: tuple[int, int]) -> Any:
        epoch, index = key
        if hasattr(self.views, "set_epoch"):
            self.views.set_epoch(epoch)
        return self.views[index]


class ResumableLoader(DataLoader):
    """A DataLoader over :class:`EpochItems` whose position Lightning saves in checkpoints.

    ``progress() -> (batches trained on in the current epoch, batches per epoch)`` is set by the
    trainer to read Lightning's loop counters (the loader runs ahead by its prefetch, so cannot count).
    """

    batch_sampler: EpochBatchSampler  # the one given to __init__

    def __init__(self, items: EpochItems, batch_sampler: EpochBatchSampler, **kwargs: Any) -> None:
        super().__init__(items, batch_sampler=batch_sampler, **kwargs)
        self.progress: Callable[[], tuple[int, int]] = lambda: (0, len(batch_sampler))

    def state_dict(self) -> dict[str, int]:
        done, per_epoch = self.progress()
        epoch = self.batch_sampler.epoch
        if done >= per_epoch:  # saved at the end of an epoch: resume at the start of the next
            return {"epoch": epoch + 1, "batches": 0}
        return {"epoch": epoch, "batches": int(done)}

    def load_state_dict(self, state: dict[str, int]) -> None:
        self.batch_sampler.set_epoch(state["epoch"])
        self.batch_sampler.skip_once(state["epoch"], state["batches"])
