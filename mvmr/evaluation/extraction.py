"""Running a feature extractor over a dataset once, on a chosen device, with a progress bar.

:func:`extract_features` returns CPU tensors, so that the linear probe, k-NN and the 2-D map work
on features computed once. :class:`ExtractionSettings` (device, batch size, workers, progress bars)
is the part of every protocol's settings that says how.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch
from torch import nn
from torch.utils.data import DataLoader, Dataset
from tqdm.auto import tqdm

from mvmr.errors import DataError

__all__ = ["ExtractionSettings", "resolve_device", "extract_features", "collate_labelled"]


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
        return {"batch_size": self.extract_batch_size, "device": self.device, "num_workers": self.num_workers,
                "progress": self.progress}


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
def extract_features(extractor: nn.Module, dataset: Dataset, *, batch_size: int = 256,
                     device: str | torch.device = "auto", num_workers: int = 0, progress: bool = True,
                     desc: str = "features") -> tuple[torch.Tensor, torch.Tensor]:
    """Run ``extractor`` (eval mode, no gradients) over every item of ``dataset`` once.

    Returns ``(features, labels)`` on the CPU: features float32 (N, F); labels int64 (N,)
    for single-label items, or the stacked label tensors (e.g. (N, 20) for VOC) when items
    carry a tensor label. The extractor's train/eval mode is restored afterwards.
    """
    n = len(dataset)  # type: ignore[arg-type]
    if n == 0:
        raise DataError(f"cannot extract {desc}: the dataset is empty")
    dev = resolve_device(device)
    loader = DataLoader(dataset, batch_size=batch_size, shuffle=False, num_workers=num_workers,
                        collate_fn=collate_labelled, pin_memory=dev.type == "cuda")
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
