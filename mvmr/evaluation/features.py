"""Feature extractors and feature extraction shared by every evaluation protocol.

A :class:`FeatureExtractor` is the one thing the protocols evaluate: a module that maps a
float image batch ``(B, C, H, W)`` in [0, 1] to pooled features ``(B, F)``, input
normalisation included. :mod:`mvmr.evaluation.encoders` builds one from a checkpoint, an
exported backbone, a torchvision/timm model with local weights, a random initialisation or a
hand-crafted representation.

:func:`extract_features` runs an extractor over a dataset once (eval mode, no gradients,
tqdm progress bar) and returns CPU tensors, so that the linear probe, k-NN and the 2-D map
can work on cached features.
"""

from __future__ import annotations

from typing import Any, Callable, Sequence

import numpy as np
import torch
from torch import nn
from torch.utils.data import DataLoader, Dataset

from mvmr.errors import DataError

__all__ = [
    "IMAGENET_MEAN",
    "IMAGENET_STD",
    "FeatureExtractor",
    "extract_features",
    "resolve_device",
    "dataset_labels",
    "dataset_paths",
    "dataset_classes",
    "check_same_classes",
    "AugmentedDataset",
    "default_train_augmentation",
    "RandomCropFlip",
    "IndexedSubset",
]

#: ImageNet channel statistics, the normalisation torchvision/timm ImageNet models expect.
IMAGENET_MEAN: tuple[float, float, float] = (0.485, 0.456, 0.406)
IMAGENET_STD: tuple[float, float, float] = (0.229, 0.224, 0.225)


class FeatureExtractor(nn.Module):
    """Normalise, run a backbone and pool: images (B, C, H, W) in [0, 1] -> features (B, F).

    Args:
        backbone: the encoder (or representation). Its output may be (B, F), a feature map
            (B, F, h, w) (average-pooled) or tokens (B, T, F) (averaged).
        mean, std: per-channel input normalisation applied before the backbone; ``None``
            feeds the raw [0, 1] image (hand-crafted representations see raw images).
        description: how the extractor was made (e.g. ``"random:resnet18"``), used in reports.
        feature_dim: F when known in advance (else found by :meth:`infer_feature_dim`).
        trainable: False for fixed maps (representations), which cannot be fine-tuned.
        metadata: free-form details (checkpoint metadata, architecture, ...), saved with results.
    """

    def __init__(
        self,
        backbone: nn.Module,
        *,
        mean: Sequence[float] | None = IMAGENET_MEAN,
        std: Sequence[float] | None = IMAGENET_STD,
        description: str = "encoder",
        feature_dim: int | None = None,
        trainable: bool = True,
        metadata: dict[str, Any] | None = None,
    ) -> None:
        super().__init__()
        if (mean is None) != (std is None):
            raise ValueError("give both mean and std, or neither")
        self.backbone = backbone
        if mean is not None and std is not None:
            mean_t = torch.as_tensor([float(m) for m in mean], dtype=torch.float32)
            std_t = torch.as_tensor([float(s) for s in std], dtype=torch.float32)
            if mean_t.shape != std_t.shape or mean_t.ndim != 1:
                raise ValueError(f"mean and std must be 1-D of equal length, got {list(mean)} and {list(std)}")
            if bool((std_t <= 0).any()):
                raise ValueError(f"std must be positive, got {list(std)}")
            self.register_buffer("mean", mean_t.view(1, -1, 1, 1), persistent=False)
            self.register_buffer("std", std_t.view(1, -1, 1, 1), persistent=False)
        else:
            self.mean = None
            self.std = None
        self.description = description
        self.feature_dim = feature_dim
        self.trainable = trainable
        self.metadata = dict(metadata or {})

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        if images.ndim != 4:
            raise ValueError(f"expected images of shape (B, C, H, W), got {tuple(images.shape)}")
        x = images
        if self.mean is not None:
            channels = self.mean.shape[1]
            if x.shape[1] == 1 and channels == 3:
                x = x.expand(-1, 3, -1, -1)
            elif x.shape[1] != channels:
                raise ValueError(
                    f"{self.description} expects {channels}-channel images, got {x.shape[1]} channels"
                )
            x = (x - self.mean) / self.std
        out = self.backbone(x)
        if isinstance(out, (tuple, list)):
            out = out[0]
        if isinstance(out, dict):
            raise ValueError(f"{self.description} returned a dict; wrap it to return a feature tensor")
        if out.ndim == 4:
            out = out.mean(dim=(2, 3))
        elif out.ndim == 3:
            out = out.mean(dim=1)
        elif out.ndim != 2:
            raise ValueError(f"{self.description} returned features of shape {tuple(out.shape)}")
        return out

    @torch.no_grad()
    def infer_feature_dim(self, example: torch.Tensor) -> int:
        """Run one example image (C, H, W) through the extractor and remember F."""
        was_training = self.training
        self.eval()
        try:
            device = next((b.device for b in self.buffers()), None) or next(
                (p.device for p in self.parameters()), torch.device("cpu")
            )
            dim = int(self(example.unsqueeze(0).to(device)).shape[1])
        finally:
            self.train(was_training)
        self.feature_dim = dim
        return dim

    def extra_repr(self) -> str:
        return f"description={self.description!r}, feature_dim={self.feature_dim}, trainable={self.trainable}"


def resolve_device(device: str | torch.device | None = "auto") -> torch.device:
    """``"auto"``/None picks CUDA when available, else CPU; anything else is passed to torch."""
    if device is None or (isinstance(device, str) and device == "auto"):
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(device)


def _collate(batch: list[tuple[Any, Any]]) -> tuple[torch.Tensor, torch.Tensor]:
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
    """Run ``extractor`` (eval mode, no gradients) over every item of ``dataset`` once.

    Returns ``(features, labels)`` on the CPU: features float32 (N, F); labels int64 (N,)
    for single-label items, or the stacked label tensors (e.g. (N, 20) for VOC) when items
    carry a tensor label. The extractor's train/eval mode is restored afterwards.
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
        collate_fn=_collate,
        pin_memory=dev.type == "cuda",
        persistent_workers=False,
    )
    was_training = extractor.training
    extractor.eval()
    extractor.to(dev)
    feats: list[torch.Tensor] = []
    labels: list[torch.Tensor] = []
    bar = _progress(total=n, desc=desc, enabled=progress)
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


class _NoBar:
    def update(self, n: int) -> None:  # noqa: D401 - trivial
        pass

    def close(self) -> None:
        pass


def _progress(*, total: int, desc: str, enabled: bool) -> Any:
    if not enabled:
        return _NoBar()
    from tqdm.auto import tqdm

    return tqdm(total=total, desc=desc, unit="img", leave=False, dynamic_ncols=True)


# --------------------------------------------------------------------------- dataset helpers


class IndexedSubset(Dataset):
    """``dataset`` restricted to ``indices`` (keeps ``classes`` and exposes labels/paths cheaply)."""

    def __init__(self, dataset: Dataset, indices: Sequence[int] | np.ndarray) -> None:
        self.dataset = dataset
        self.indices = np.asarray(indices, dtype=np.int64)
        self.classes = dataset_classes(dataset)

    def __len__(self) -> int:
        return int(self.indices.shape[0])

    def __getitem__(self, index: int) -> Any:
        return self.dataset[int(self.indices[index])]


def dataset_classes(dataset: Dataset) -> list[str]:
    """The dataset's ``classes`` list (looking through subsets); empty when it has none."""
    classes = getattr(dataset, "classes", None)
    if classes is not None:
        return list(classes)
    inner = getattr(dataset, "dataset", None)
    if inner is not None:
        return dataset_classes(inner)
    return []


def _subset_indices(dataset: Dataset) -> np.ndarray | None:
    """Indices into ``dataset.dataset`` for subset-like wrappers (all of them for same-length wrappers)."""
    inner = getattr(dataset, "dataset", None)
    if inner is None:
        return None
    indices = getattr(dataset, "indices", None)
    if indices is not None:
        return np.asarray(indices, dtype=np.int64)
    if getattr(dataset, "labels", None) is None and len(dataset) == len(inner):  # type: ignore[arg-type]
        return np.arange(len(inner), dtype=np.int64)  # type: ignore[arg-type]
    return None


def dataset_labels(dataset: Dataset) -> np.ndarray:
    """Every item's label without decoding images where the dataset allows it.

    Looks for ``labels`` / ``targets`` / ``samples`` (also through ``Subset`` wrappers); as a
    last resort iterates the dataset. Single-label datasets give an int64 (N,) array;
    multi-label ones (e.g. VOC) an (N, C) array.
    """
    indices = _subset_indices(dataset)
    if indices is not None:
        return dataset_labels(dataset.dataset)[indices]  # type: ignore[attr-defined]
    for attr in ("labels", "targets"):
        value = getattr(dataset, attr, None)
        if value is not None and not callable(value):
            arr = value.numpy() if isinstance(value, torch.Tensor) else np.asarray(value)
            if arr.shape[0] == len(dataset):  # type: ignore[arg-type]
                return arr
    samples = getattr(dataset, "samples", None)
    if samples is not None:
        return np.asarray([int(s[1]) for s in samples], dtype=np.int64)
    values = [dataset[i][1] for i in range(len(dataset))]  # type: ignore[arg-type]
    if values and isinstance(values[0], torch.Tensor) and values[0].ndim > 0:
        return torch.stack(values).numpy()
    return np.asarray([int(v) for v in values], dtype=np.int64)


def dataset_paths(dataset: Dataset) -> list[str] | None:
    """The file path of every item (through subsets), or None when the dataset has no files."""
    indices = _subset_indices(dataset)
    if indices is not None:
        inner = dataset_paths(dataset.dataset)  # type: ignore[attr-defined]
        return None if inner is None else [inner[i] for i in indices]
    paths = getattr(dataset, "paths", None)
    if paths is None:
        samples = getattr(dataset, "samples", None) or getattr(dataset, "imgs", None)
        if samples is None:
            return None
        paths = [s[0] for s in samples]
    return [str(p) for p in paths]


def check_same_classes(train: Dataset, test: Dataset, *, names: tuple[str, str] = ("train", "test")) -> list[str]:
    """Raise :class:`DataError` unless both datasets have the same classes in the same order.

    Returns the class list. The message lists the classes only one side has, or the first
    position where the orders differ (labels would silently mean different classes).
    """
    a, b = dataset_classes(train), dataset_classes(test)
    if not a:
        raise DataError(f"the {names[0]} dataset has no classes: the evaluation protocols need labelled data")
    if a == b:
        return a
    only_a = sorted(set(a) - set(b))
    only_b = sorted(set(b) - set(a))
    if only_a or only_b:
        parts = []
        if only_a:
            parts.append(f"only in {names[0]}: {', '.join(only_a)}")
        if only_b:
            parts.append(f"only in {names[1]}: {', '.join(only_b)}")
        raise DataError(
            f"the {names[0]} and {names[1]} datasets have different classes ({len(a)} vs {len(b)}); "
            + "; ".join(parts)
        )
    first = next(i for i, (x, y) in enumerate(zip(a, b)) if x != y)
    raise DataError(
        f"the {names[0]} and {names[1]} datasets list the same classes in a different order "
        f"(position {first}: {a[first]!r} vs {b[first]!r}), so their labels disagree"
    )


# --------------------------------------------------------------------------- augmentation


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


def default_train_augmentation(
    size: int | None = None, *, scale: tuple[float, float] = (0.08, 1.0)
) -> Callable[[torch.Tensor], torch.Tensor]:
    """:class:`RandomCropFlip` (random resized crop + horizontal flip)."""
    return RandomCropFlip(size, scale=scale)


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
