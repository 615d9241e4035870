"""A reproducible, resumable, rank-aware training loader.

Everything random about the data is a function of ``(seed, epoch, index)``:

- :class:`EpochBatchSampler` shuffles with a generator seeded by ``(seed, epoch)``, keeps the
  items ``rank::world_size`` of that order (every process gets the same number of items) and
  yields batches of ``(epoch, index)`` pairs, dropping the last incomplete batch (MV-MR needs
  batch statistics; a batch of 1 has none).
- :class:`EpochItems` wraps :class:`~mvmr.data.TwoViews` (built with ``seed=``): it receives the
  pair, selects the epoch and returns ``views[index]``, so the augmentation of an item is the
  same in any process, any DataLoader worker and after a resume.
- :class:`ResumableLoader` is a DataLoader with ``state_dict``/``load_state_dict``, which
  Lightning stores in the checkpoint: a run resumed from a mid-epoch checkpoint skips the
  batches it already trained on, instead of restarting the epoch.

With ``world_size`` processes and per-process batch ``b``, the global batch of step ``t`` is the
set ``order[t*b*W : (t+1)*b*W]``: the same images a single process with batch ``b*W`` sees.
"""

from __future__ import annotations

from typing import Any, Callable, Iterator

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

    def __init__(self, owner: "EpochBatchSampler") -> None:
        self._owner = owner

    def set_epoch(self, epoch: int) -> None:
        self._owner.set_epoch(epoch)


class EpochBatchSampler(Sampler[list[tuple[int, int]]]):
    """Batches of ``(epoch, index)`` over ``indices``, shuffled per epoch, sharded per rank."""

    def __init__(
        self,
        indices: np.ndarray | list[int],
        batch_size: int,
        *,
        seed: int = 0,
        shuffle: bool = True,
        rank: int = 0,
        world_size: int = 1,
    ) -> None:
        self.indices = np.asarray(indices, dtype=np.int64)
        self.batch_size = int(batch_size)
        self.seed, self.shuffle = int(seed), bool(shuffle)
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
        idx = self.indices
        if self.shuffle:
            gen = np.random.default_rng(mix_seed("sampler", self.seed, epoch))
            idx = idx[gen.permutation(len(idx))]
        per_rank = len(idx) // self.world_size
        return idx[: per_rank * self.world_size][self.rank :: self.world_size]

    def __len__(self) -> int:
        return (len(self.indices) // self.world_size) // self.batch_size

    def __iter__(self) -> Iterator[list[tuple[int, int]]]:
        epoch = self.epoch
        order = self.order(epoch)
        start = 0
        if self._skip is not None and self._skip[0] == epoch:
            start = self._skip[1]
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

    ``progress`` returns ``(batches trained on in the current epoch, batches in an epoch)``; the
    trainer sets it to read Lightning's loop counters (the DataLoader itself runs ahead of
    training by its prefetch, so it cannot count). Lightning calls :meth:`load_state_dict` on
    resume before it creates the epoch's iterator.
    """

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
