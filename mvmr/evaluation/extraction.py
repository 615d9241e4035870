"""Running a feature extractor over a dataset once, on a chosen device, with a progress bar.

:func:`extract_features` returns CPU tensors, so that the linear probe, k-NN and the 2-D map work
on features computed once. :class:`ExtractionSettings` (device, batch size, workers, progress bars)
is the part of every protocol's settings that says how. :class:`RandomCropFlip` and
:class:`AugmentedDataset` give the augmented training views of the protocols that train
(not the paper's pretraining augmentation).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn
from torch.utils.data import DataLoader, Dataset
from tqdm.auto import tqdm

from mvmr.errors import DataError
from mvmr.evaluation.dataset_info import dataset_classes

__all__ = [
    "ExtractionSettings",
    "resolve_device",
    "extract_features",
    "collate_labelled",
    "RandomCropFlip",
    "AugmentedDataset",
]


@dataclass
class ExtractionSettings:
    """How a protocol runs the encoder: device (``"auto"``: CUDA when available), batch size,
    DataLoader workers and progress bars."""

    device: str = "auto"
    extract_batch_size: int = 256
    num_workers: int = 0
    progress: bool = True

    def extraction(self) -> dict[str, Any]:
        """The keyword arguments of :func:`extract_features`."""
        return {
            "batch_size": self.extract_batch_size,
            "device": self.device,
            "num_workers": self.num_workers,
            "progress": self.progress,
        }


def resolve_device(device: str | torch.device | None = "auto") -> torch.device:
    """``"auto"``/None picks CUDA when available, else CPU; anything else is passed to torch."""
    if device is None or (isinstance(device, str) and device == "auto"):
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(device)


def collate_labelled(batch: list[tuple[Any, Any]]) -> tuple[torch.Tensor, torch.Tensor]:
    """Stack the images; stack tensor labels (multi-label) or turn int labels into an int64 tensor."""
    images = torch.stack([item[0] for item in batch])
    labels = [item[1] for item in batch]
    if isinstance(labels[0], torch.Tensor):
        return images, torch.stack(labels)
    return images, torch.as_tensor(labels, dtype=torch.int64)


@torch.no_grad()
def extract_features(
    extractor: nn.Module,
    dataset: Dataset,
    *,
    batch_size: int = 256,
    device: str | torch.device = "auto",
    num_workers: int = 0,
    progress: bool = True,
    desc: str = "features",
) -> tuple[torch.Tensor, torch.Tensor]:
    """Run ``extractor`` (eval mode, no gradients; its mode is restored) over every item of ``dataset`` once.

    Returns ``(features, labels)`` on the CPU: features float32 (N, F); labels int64 (N,), or the
    stacked label tensors (e.g. (N, 20) for VOC) when items carry a tensor label.
    """
    n = len(dataset)  # type: ignore[arg-type]
    if n == 0:
        raise DataError(f"cannot extract {desc}: the dataset is empty")
    dev = resolve_device(device)
    loader = DataLoader(
        dataset,
        batch_size=batch_size,
        shuffle=False,
        num_workers=num_workers,
        collate_fn=collate_labelled,
        pin_memory=dev.type == "cuda",
    )
    was_training = extractor.training
    extractor.eval()
    extractor.to(dev)
    feats: list[torch.Tensor] = []
    labels: list[torch.Tensor] = []
    bar = tqdm(total=n, desc=desc, unit="img", leave=False, dynamic_ncols=True, disable=not progress)
    try:
        for images, targets in loader:
            out = extractor(images.to(dev, non_blocking=True))
            feats.append(out.float().cpu())
            labels.append(targets)
            bar.update(images.shape[0])
    finally:
        bar.close()
        extractor.train(was_training)
    return torch.cat(feats), torch.cat(labels)


class RandomCropFlip:
    """Random resized crop (to ``size`` x ``size``, or the image's own size) + horizontal flip of one float
    image (C, H, W) in [0, 1]; a plain class, not a closure, so that DataLoader workers can pickle it."""

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
