"""A teacher's own image preprocessing: channels, resize, centre crop and normalisation."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import Any

import torch
import torch.nn.functional as F

from mvmr.errors import ConfigError
from mvmr.transforms.normalization import IMAGENET_MEAN, IMAGENET_STD

__all__ = ["ImagePreprocess", "INTERPOLATIONS"]

#: Interpolation names accepted by :class:`ImagePreprocess`.
INTERPOLATIONS: tuple[str, ...] = ("bicubic", "bilinear", "nearest")


def _three(values: Sequence[float], what: str) -> tuple[float, float, float]:
    """Three finite floats from 1 or 3 numbers (one is repeated)."""
    vals = tuple(float(v) for v in values)
    if len(vals) == 1:
        vals = vals * 3
    if len(vals) != 3 or not all(math.isfinite(v) for v in vals):
        raise ConfigError(f"{what} must be 1 or 3 finite numbers, got {values!r}")
    return vals


@dataclass(frozen=True)
class ImagePreprocess:
    """The evaluation transform of one pretrained model, applied to [0, 1] image batches (B, C, H, W) of any
    size, batched, on the images' device:

    1. grayscale (C == 1) is repeated to 3 channels;
    2. the shorter side is resized to ``resize_size`` (the longer one keeps the aspect ratio, as
       ``torchvision.transforms.Resize(int)`` does), with the model's interpolation and antialiasing;
       bicubic results are clamped back to [0, 1] like the 8-bit PIL pipelines the models were trained with;
    3. the centre ``input_size`` x ``input_size`` square is cropped;
    4. ``(x - mean) / std`` per channel.

    ``resize_size = floor(input_size / crop_pct)``: ``crop_pct = 1`` resizes the shorter side straight to
    the input size (CLIP), ``0.875`` is the classic ImageNet "resize 256, crop 224".

    Args:
        input_size: side of the square the model receives (the centre crop).
        resize_size: the shorter image side is resized to this before cropping
            (``>= input_size``). Use :meth:`from_crop_pct` to give a crop fraction instead.
        interpolation: ``"bicubic"``, ``"bilinear"`` or ``"nearest"``.
        mean, std: per-channel normalisation of the [0, 1] RGB input.
        antialias: antialias when downsampling (bilinear / bicubic only).
    """

    input_size: int
    resize_size: int
    interpolation: str = "bicubic"
    mean: tuple[float, float, float] = IMAGENET_MEAN
    std: tuple[float, float, float] = IMAGENET_STD
    antialias: bool = True

    def __post_init__(self) -> None:
        for key in ("input_size", "resize_size"):
            value = getattr(self, key)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ConfigError(f"{key} must be a positive int, got {value!r}")
        if self.resize_size < self.input_size:
            raise ConfigError(
                f"resize_size ({self.resize_size}) must be >= input_size ({self.input_size}): "
                f"the centre crop is taken after resizing"
            )
        if self.interpolation not in INTERPOLATIONS:
            raise ConfigError(f"interpolation must be one of {', '.join(INTERPOLATIONS)}, got {self.interpolation!r}")
        object.__setattr__(self, "mean", _three(self.mean, "mean"))
        object.__setattr__(self, "std", _three(self.std, "std"))
        if any(s <= 0 for s in self.std):
            raise ConfigError(f"std must be > 0, got {self.std}")

    @classmethod
    def from_crop_pct(
        cls,
        *,
        input_size: int,
        crop_pct: float = 1.0,
        interpolation: str = "bicubic",
        mean: Sequence[float] = IMAGENET_MEAN,
        std: Sequence[float] = IMAGENET_STD,
        antialias: bool = True,
    ) -> ImagePreprocess:
        """Build with ``resize_size = floor(input_size / crop_pct)`` (the timm convention)."""
        if not isinstance(crop_pct, (int, float)) or not 0.0 < float(crop_pct) <= 1.0:
            raise ConfigError(f"crop_pct must be in (0, 1], got {crop_pct!r}")
        if isinstance(input_size, bool) or not isinstance(input_size, int) or input_size < 1:
            raise ConfigError(f"input_size must be a positive int, got {input_size!r}")
        resize = int(math.floor(input_size / float(crop_pct) + 1e-9))
        return cls(
            input_size=input_size,
            resize_size=resize,
            interpolation=interpolation,
            mean=_three(mean, "mean"),
            std=_three(std, "std"),
            antialias=antialias,
        )

    @property
    def crop_pct(self) -> float:
        """``input_size / resize_size``."""
        return self.input_size / self.resize_size

    def replace(self, **changes: Any) -> ImagePreprocess:
        """A copy with the fields that are not None in ``changes`` changed (``crop_pct=`` is accepted too).

        A new ``input_size`` keeps the crop fraction, unless ``crop_pct`` is given as well.
        """
        values = asdict(self)
        crop_pct = changes.pop("crop_pct", None)
        unknown = sorted(set(changes) - set(values))
        if unknown:
            raise ConfigError(f"unknown preprocessing field(s) {unknown}; known: {sorted(values)} and crop_pct")
        values.update({k: v for k, v in changes.items() if v is not None})
        if crop_pct is None and changes.get("input_size") is None:
            return ImagePreprocess(**values)
        del values["resize_size"]
        return ImagePreprocess.from_crop_pct(crop_pct=self.crop_pct if crop_pct is None else float(crop_pct), **values)

    def to_dict(self) -> dict[str, Any]:
        """JSON-able settings (for cache manifests and reports)."""
        return {**asdict(self), "mean": list(self.mean), "std": list(self.std)}

    def resize_and_crop(self, images: torch.Tensor) -> torch.Tensor:
        """Steps 1-3 (channels, resize, centre crop): a [0, 1] batch of ``input_size`` squares."""
        if images.ndim != 4:
            raise ValueError(f"expected images of shape (B, C, H, W), got {tuple(images.shape)}")
        channels = images.shape[1]
        if channels == 1:
            images = images.expand(-1, 3, -1, -1)
        elif channels != 3:
            raise ValueError(
                f"a teacher takes RGB (3 channels) or grayscale (1 channel) images, got {channels} channels"
            )
        height, width = int(images.shape[-2]), int(images.shape[-1])
        short, long = min(height, width), max(height, width)
        if short != self.resize_size:
            new_long = int(self.resize_size * long / short)
            size = (self.resize_size, new_long) if height <= width else (new_long, self.resize_size)
            mode = self.interpolation
            smooth = mode in ("bilinear", "bicubic")
            images = F.interpolate(
                images,
                size=size,
                mode=mode,
                align_corners=False if smooth else None,
                antialias=self.antialias and smooth,
            )
            if mode == "bicubic":
                images = images.clamp(0.0, 1.0)
            height, width = size
        if height != self.input_size or width != self.input_size:
            top = int(round((height - self.input_size) / 2.0))
            left = int(round((width - self.input_size) / 2.0))
            images = images[..., top : top + self.input_size, left : left + self.input_size]
        return images

    def __call__(self, images: torch.Tensor) -> torch.Tensor:
        """The model input for a [0, 1] batch: (B, 3, input_size, input_size), normalised (step 4)."""
        images = self.resize_and_crop(images)
        mean = torch.tensor(self.mean, dtype=images.dtype, device=images.device).view(1, 3, 1, 1)
        std = torch.tensor(self.std, dtype=images.dtype, device=images.device).view(1, 3, 1, 1)
        return ((images - mean) / std).contiguous()
