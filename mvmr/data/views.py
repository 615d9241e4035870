"""The two views of an image that a self-supervised method trains on.

- :class:`TwoViews`: MV-MR's pair, the clean view and an augmented view;
- :class:`TwoAugmentedViews`: two independent augmented views (VICReg, Barlow Twins, BYOL);
- :class:`MultiViews`: N views, each the clean image or an augmentation, each at its own size.

They yield ``(view_1, ..., view_N, index, label)``; the index keys the feature cache.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import torch
from torch.utils.data import Dataset

from mvmr.data.base import hash_parts
from mvmr.data.image_utils import resize_center_crop, to_float
from mvmr.errors import DataError

__all__ = ["TwoViews", "TwoAugmentedViews", "MultiViews"]

Augmentation = Callable[..., torch.Tensor]


class TwoViews(Dataset[tuple[torch.Tensor, torch.Tensor, int, int]]):
    """Wrap an ``(image, label)`` dataset into ``(x_clean, x_aug, index, label)`` items.

    - ``x_clean``: the image resized (shorter side) and centre-cropped to ``size`` x ``size``,
      float in [0, 1]. Deterministic, so the representations of it can be cached per index.
    - ``x_aug``: ``augmentation`` applied to the full-resolution image; it must return a
      ``size`` x ``size`` image (``PaperAugmentation(size)`` does: it starts with a random
      resized crop). The default is ``PaperAugmentation(size)``.
    - ``index``: the item's index in the wrapped dataset (the feature-cache key).

    Randomness: with ``seed=None`` the augmentation draws from the global torch RNG (seeded per
    DataLoader worker by torch; see :func:`mvmr.data.make_loader`), so each epoch gives new
    augmentations. With an int ``seed`` every item draws from its own generator seeded by
    ``(seed, epoch, index)``: results no longer depend on worker count or order. Call
    :meth:`set_epoch` each epoch; it reaches workers only when they are re-created each epoch
    (``persistent_workers=False``). The augmentation must then accept ``generator=``.

    Args:
        dataset: items ``(image (C, H, W) float in [0, 1] or uint8, label)``.
        size: side of both views.
        augmentation: callable on one image (C, H, W); None means ``PaperAugmentation(size)``.
        seed: optional per-item seeding (see above).
    """

    def __init__(
        self,
        dataset: Dataset,
        *,
        size: int,
        augmentation: Augmentation | None = None,
        seed: int | None = None,
    ) -> None:
        if isinstance(size, bool) or not isinstance(size, int) or size <= 0:
            raise DataError(f"TwoViews size must be a positive int, got {size!r}")
        if augmentation is None:
            from mvmr.transforms.augmentation import PaperAugmentation

            augmentation = PaperAugmentation(size)
        self.dataset = dataset
        self.size = size
        self.augmentation = augmentation
        self.seed = seed
        self.epoch = 0

    @property
    def classes(self) -> list[str]:
        """The wrapped dataset's class names."""
        return list(getattr(self.dataset, "classes", []))

    @property
    def labels(self) -> Any:
        """The wrapped dataset's labels (None when it has none)."""
        return getattr(self.dataset, "labels", None)

    def set_epoch(self, epoch: int) -> None:
        """Set the epoch that, with ``seed``, selects the augmentations (no effect when seed is None)."""
        self.epoch = int(epoch)

    def fingerprint(self) -> str:
        """The wrapped dataset's fingerprint combined with ``size`` (identifies the clean views)."""
        parent = self.dataset.fingerprint() if hasattr(self.dataset, "fingerprint") else type(self.dataset).__name__
        return hash_parts(["two-views", parent, f"size={self.size}"])

    def __len__(self) -> int:
        return len(self.dataset)  # type: ignore[arg-type]

    def _generator(self, index: int) -> torch.Generator:
        generator = torch.Generator()
        mixed = hash_parts([f"{self.seed}", f"{self.epoch}", f"{index}"])
        generator.manual_seed(int(mixed[:15], 16))
        return generator

    def __getitem__(self, index: int) -> tuple[torch.Tensor, torch.Tensor, int, int]:
        image, label = self.dataset[index]
        if not isinstance(image, torch.Tensor) or image.ndim != 3:
            shape = tuple(image.shape) if isinstance(image, torch.Tensor) else type(image).__name__
            raise DataError(f"TwoViews expects images as tensors (C, H, W), got {shape} at index {index}")
        image = to_float(image)
        x_clean = resize_center_crop(image, self.size)
        if x_clean.data_ptr() == image.data_ptr():
            x_clean = x_clean.clone()  # an augmentation that works in place must not touch x_clean
        if self.seed is None:
            x_aug = self.augmentation(image)
        else:
            x_aug = self.augmentation(image, generator=self._generator(int(index)))
        expected = (image.shape[0], self.size, self.size)
        if not isinstance(x_aug, torch.Tensor) or tuple(x_aug.shape) != expected:
            got = tuple(x_aug.shape) if isinstance(x_aug, torch.Tensor) else type(x_aug).__name__
            raise DataError(f"the augmentation returned {got} for index {index}; expected shape {expected}")
        return x_clean, x_aug.to(torch.float32), int(index), int(label)

    def __repr__(self) -> str:
        return (
            f"TwoViews(size={self.size}, seed={self.seed}, augmentation={self.augmentation!r}, "
            f"dataset={self.dataset!r})"
        )


class TwoAugmentedViews(TwoViews):
    """``(x_aug1, x_aug2, index, label)``: two independent draws of the augmentation of one image.

    The recipe of VICReg and Barlow Twins. Same arguments and seeding as :class:`TwoViews`; with an
    int ``seed`` both draws come, one after the other, from the item's generator.
    """

    def __getitem__(self, index: int) -> tuple[torch.Tensor, torch.Tensor, int, int]:
        image, label = self.dataset[index]
        image = to_float(image)
        g = None if self.seed is None else self._generator(int(index))
        a, b = (self.augmentation(image) if g is None else self.augmentation(image, generator=g) for _ in range(2))
        return a.to(torch.float32), b.to(torch.float32), int(index), int(label)


class MultiViews(TwoViews):
    """``(view_1, ..., view_N, index, label)``: N views of one image, each ``(size, augmentation)``.

    An augmentation of None is the clean view (resize + centre crop to ``size``); any other is called
    on the full-resolution image and must return a ``size`` x ``size`` image. Seeding as in
    :class:`TwoViews`: with an int ``seed``, the views draw one after the other from the item's generator.
    """

    def __init__(
        self, dataset: Dataset, views: Sequence[tuple[int, Augmentation | None]], *, seed: int | None = None
    ) -> None:
        if len(views) < 1:
            raise DataError("MultiViews needs at least one (size, augmentation) view")
        first = next((augmentation for _, augmentation in views if augmentation is not None), None)
        super().__init__(dataset, size=views[0][0], augmentation=first, seed=seed)  # picklable for workers
        self.views = [(int(size), augmentation) for size, augmentation in views]

    def __repr__(self) -> str:
        return f"MultiViews(views={self.views!r}, seed={self.seed}, dataset={self.dataset!r})"

    def __getitem__(self, index: int) -> tuple[Any, ...]:
        image, label = self.dataset[index]
        image = to_float(image)
        g = None if self.seed is None else self._generator(int(index))
        out: list[torch.Tensor] = []
        for size, augmentation in self.views:
            if augmentation is None:
                view = resize_center_crop(image, size).clone()
            else:
                view = augmentation(image) if g is None else augmentation(image, generator=g)
            if tuple(view.shape) != (image.shape[0], size, size):
                raise DataError(
                    f"view {len(out)} of index {index} has shape {tuple(view.shape)}; expected "
                    f"{(image.shape[0], size, size)}"
                )
            out.append(view.to(torch.float32))
        return (*out, int(index), int(label))
