"""The augmentation of the evaluation protocols' training images (not the paper's pretraining one)."""

from __future__ import annotations

from typing import Any, Callable

import torch
from torch.utils.data import Dataset

from mvmr.evaluation.dataset_info import dataset_classes

__all__ = ["RandomCropFlip", "AugmentedDataset"]


class RandomCropFlip:
    """Random resized crop + horizontal flip of one float image (C, H, W) in [0, 1].

    The usual augmentation of linear evaluation and semi-supervised fine-tuning. The crop is
    resized to ``size`` x ``size``, or to the image's own size when ``size`` is None.
    A plain class (not a closure) so that DataLoader workers can pickle it.
    """

    def __init__(self, size: int | None = None, *, scale: tuple[float, float] = (0.08, 1.0)) -> None:
        self.size = size
        self.scale = scale

    def __call__(self, image: torch.Tensor) -> torch.Tensor:
        from torchvision.transforms import v2

        h, w = (self.size, self.size) if self.size is not None else (int(image.shape[-2]), int(image.shape[-1]))
        top, left, ch, cw = v2.RandomResizedCrop.get_params(image, scale=list(self.scale), ratio=[3 / 4, 4 / 3])
        out = v2.functional.resized_crop(image, top, left, ch, cw, [h, w], antialias=True)
        if torch.rand(()) < 0.5:
            out = out.flip(-1)
        return out

    def __repr__(self) -> str:
        return f"RandomCropFlip(size={self.size}, scale={self.scale})"


class AugmentedDataset(Dataset):
    """Apply ``transform`` to the image of every item of ``dataset`` (labels unchanged)."""

    def __init__(self, dataset: Dataset, transform: Callable[[torch.Tensor], torch.Tensor]) -> None:
        self.dataset = dataset
        self.transform = transform
        self.classes = dataset_classes(dataset)

    def __len__(self) -> int:
        return len(self.dataset)  # type: ignore[arg-type]

    def __getitem__(self, index: int) -> Any:
        image, label = self.dataset[index]
        return self.transform(image).clamp_(0.0, 1.0), label
