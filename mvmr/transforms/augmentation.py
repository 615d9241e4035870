"""The paper's image augmentation, applied to one image tensor with reproducible randomness.

Paper section 7 (and appendix B, table 7): random resized cropping, random horizontal flipping with
probability 0.5, colour jittering (brightness 0.8, contrast 0.8, saturation 0.8, hue 0.2) with
probability 0.8, random grayscale with probability 0.2, and Gaussian blur with a kernel of 0.1 of
the image size and sigma in [0.1, 2]. The same augmentation makes the encoder's augmented view and
the "augmented image" representation (:class:`mvmr.representations.AugmentedPixels`).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import torch
import torchvision.transforms.v2.functional as TF

__all__ = ["PaperAugmentation", "augment_batch", "PARAMETER_COLUMNS", "parameters_to_vector", "vector_to_parameters"]

#: The columns of one augmentation's parameters as a float64 vector (:func:`parameters_to_vector`):
#: the crop box (-1 without a crop), the flip, whether the colour jitter ran and its four factors and
#: order (0 when it did not run), the grayscale, whether the blur ran and its sigma.
PARAMETER_COLUMNS: tuple[str, ...] = (
    "crop_top",
    "crop_left",
    "crop_height",
    "crop_width",
    "flip",
    "jitter",
    "brightness",
    "contrast",
    "saturation",
    "hue",
    "order_0",
    "order_1",
    "order_2",
    "order_3",
    "gray",
    "blur",
    "sigma",
)


def _pair(size: int | tuple[int, int], what: str) -> tuple[int, int]:
    pair = (size, size) if isinstance(size, int) else tuple(size)
    if len(pair) != 2 or any(int(s) != s or s < 1 for s in pair):
        raise ValueError(f"{what} must be a positive int or a (height, width) pair, got {size!r}")
    return int(pair[0]), int(pair[1])


class PaperAugmentation:
    """Randomly augment ONE float image (C, H, W) in [0, 1] (C = 1 or 3) into (C, size, size) in [0, 1].

    The parts, in this order, each switchable:

    - ``crop``: random resized crop of area ``crop_scale`` (default (0.08, 1)) of the image and aspect
      ratio ``crop_ratio`` (default (3/4, 4/3), log-uniform), resized to ``size`` (bilinear,
      antialiased), drawn like torchvision's ``RandomResizedCrop`` (10 tries, then a central crop).
      Without ``crop`` the whole image is resized to ``size`` (nothing happens if it already has it);
    - ``flip``: horizontal flip with probability 0.5;
    - ``color``: with probability 0.8, brightness, contrast and saturation factors uniform in
      [0.2, 1.8] and a hue shift uniform in [-0.2, 0.2], applied in a random order (as torchvision's
      ``ColorJitter``); saturation and hue leave a one-channel image unchanged;
    - ``grayscale``: with probability 0.2, the luma replicated over the C channels (C = 3 only);
    - ``blur``: Gaussian blur with an odd kernel of about 0.1 of the output size (at least 3; at most
      what the image can reflect-pad) and sigma uniform in [0.1, 2]. The paper gives no probability
      for the blur, so by default it is applied to every image (``blur_p=1.0``, like an unconditional
      ``GaussianBlur`` in a torchvision ``Compose``); pass ``blur_p`` to apply it less often.

    All random parameters come from the ``generator`` passed to ``__call__`` (or torch's global
    generator), so a seeded generator reproduces the augmentation exactly. With every part off and
    ``size`` equal to the input size it is the identity.

    Args:
        size: output size, an int (square) or (height, width).
    """

    def __init__(
        self,
        size: int | tuple[int, int],
        *,
        crop: bool = True,
        flip: bool = True,
        color: bool = True,
        grayscale: bool = True,
        blur: bool = True,
        crop_scale: tuple[float, float] = (0.08, 1.0),
        crop_ratio: tuple[float, float] = (3 / 4, 4 / 3),
        blur_p: float = 1.0,
    ) -> None:
        self.size = _pair(size, "augmentation size")
        lo, hi = crop_scale
        if not 0 < lo <= hi <= 1:
            raise ValueError(f"crop_scale must satisfy 0 < min <= max <= 1, got {crop_scale!r}")
        r_lo, r_hi = crop_ratio
        if not 0 < r_lo <= r_hi:
            raise ValueError(f"crop_ratio must satisfy 0 < min <= max, got {crop_ratio!r}")
        if not 0 <= blur_p <= 1:
            raise ValueError(f"blur_p must be a probability in [0, 1], got {blur_p!r}")
        self.crop, self.flip, self.color, self.grayscale, self.blur = crop, flip, color, grayscale, blur
        self.crop_scale = (float(lo), float(hi))
        self.crop_ratio = (float(r_lo), float(r_hi))
        self.blur_p = float(blur_p)
        self.flip_p, self.color_p, self.grayscale_p = 0.5, 0.8, 0.2
        self.brightness, self.contrast, self.saturation, self.hue = 0.8, 0.8, 0.8, 0.2
        #: the ranges of the brightness, contrast and saturation factors and of the hue shift
        self.jitter_bounds = (
            *((max(0.0, 1 - s), 1 + s) for s in (self.brightness, self.contrast, self.saturation)),
            (-self.hue, self.hue),
        )
        self.blur_sigma = (0.1, 2.0)
        self.blur_kernel = _blur_kernel(self.size)

    def config(self) -> dict[str, Any]:
        """Every setting that changes the drawn views, JSON-able (it identifies stored views in a cache)."""
        return {
            "size": list(self.size),
            "crop": self.crop,
            "flip": self.flip,
            "color": self.color,
            "grayscale": self.grayscale,
            "blur": self.blur,
            "crop_scale": list(self.crop_scale),
            "crop_ratio": list(self.crop_ratio),
            "blur_p": self.blur_p,
            "flip_p": self.flip_p,
            "color_p": self.color_p,
            "grayscale_p": self.grayscale_p,
            "jitter": [self.brightness, self.contrast, self.saturation, self.hue],
            "blur_sigma": list(self.blur_sigma),
            "blur_kernel": self.blur_kernel,
        }

    def __repr__(self) -> str:
        parts = [p for p in ("crop", "flip", "color", "grayscale", "blur") if getattr(self, p)]
        return f"PaperAugmentation(size={self.size}, parts={'+'.join(parts) or 'none'}, blur_p={self.blur_p})"

    def __call__(self, img: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
        if not isinstance(img, torch.Tensor) or img.ndim != 3 or not img.is_floating_point():
            shape = tuple(img.shape) if isinstance(img, torch.Tensor) else type(img).__name__
            raise ValueError(f"PaperAugmentation expects ONE float image (C, H, W) in [0, 1], got {shape}")
        if img.shape[0] not in (1, 3):
            raise ValueError(f"PaperAugmentation expects 1 or 3 channels, got an image of shape {tuple(img.shape)}")
        return self.apply(img, self.draw(img.shape[1], img.shape[2], generator))

    def draw(self, height: int, width: int, generator: torch.Generator | None = None) -> dict[str, Any]:
        """The random parameters of one augmentation of a ``height`` x ``width`` image.

        Keys: ``crop`` (top, left, h, w) or None, ``flip`` (bool), ``jitter`` (brightness,
        contrast, saturation, hue factors) or None, ``order`` (the jitter's operation order),
        ``gray`` (bool; applied to 3-channel images only) and ``sigma`` (blur) or None.
        """
        rand = _Random(generator)
        params: dict[str, Any] = {"crop": self._crop_box(height, width, rand) if self.crop else None}
        params["flip"] = bool(self.flip and rand.uniform() < self.flip_p)
        params["jitter"], params["order"] = None, None
        if self.color and rand.uniform() < self.color_p:
            params["jitter"] = tuple(rand.uniform(low, high) for low, high in self.jitter_bounds)
            params["order"] = rand.permutation(4)
        params["gray"] = bool(self.grayscale and rand.uniform() < self.grayscale_p)
        params["sigma"] = None
        if self.blur and self.blur_kernel >= 3 and rand.uniform() < self.blur_p:
            params["sigma"] = rand.uniform(*self.blur_sigma)
        return params

    def apply(self, img: torch.Tensor, params: dict[str, Any]) -> torch.Tensor:
        """``img`` (C, H, W) augmented with the parameters of :meth:`draw`."""
        out_h, out_w = self.size
        if params["crop"] is not None:
            top, left, h, w = params["crop"]
            img = TF.resized_crop(img, top, left, h, w, [out_h, out_w], antialias=True)
        elif tuple(img.shape[-2:]) != (out_h, out_w):
            img = TF.resize(img, [out_h, out_w], antialias=True)
        if params["flip"]:
            img = TF.horizontal_flip(img)
        if params["jitter"] is not None:
            img = self._jitter(img, params["jitter"], params["order"])
        if params["gray"] and img.shape[0] == 3:
            img = TF.rgb_to_grayscale(img, num_output_channels=3)
        if params["sigma"] is not None:
            sigma = params["sigma"]
            img = TF.gaussian_blur(img, [self.blur_kernel, self.blur_kernel], [sigma, sigma])
        return img.clamp(0.0, 1.0)

    def _crop_box(self, height: int, width: int, rand: _Random) -> tuple[int, int, int, int]:
        """(top, left, h, w) of a random crop, drawn as torchvision's ``RandomResizedCrop.get_params``."""
        area = height * width
        log_lo, log_hi = torch.log(torch.tensor(self.crop_ratio, dtype=torch.float64)).tolist()
        for _ in range(10):
            target = area * rand.uniform(*self.crop_scale)
            ratio = float(torch.exp(torch.tensor(rand.uniform(log_lo, log_hi), dtype=torch.float64)))
            w = int(round((target * ratio) ** 0.5))
            h = int(round((target / ratio) ** 0.5))
            if 0 < w <= width and 0 < h <= height:
                return rand.integer(height - h + 1), rand.integer(width - w + 1), h, w
        h, w = self.fallback_crop(height, width)
        return (height - h) // 2, (width - w) // 2, h, w

    def fallback_crop(self, height: int, width: int) -> tuple[int, int]:
        """(h, w) of the crop when no random try fits: the largest central one whose ratio is within bounds."""
        if width / height < self.crop_ratio[0]:
            return int(round(width / self.crop_ratio[0])), width
        if width / height > self.crop_ratio[1]:
            return height, int(round(height * self.crop_ratio[1]))
        return height, width

    @staticmethod
    def _jitter(img: torch.Tensor, factors: tuple[float, float, float, float], order: list[int]) -> torch.Tensor:
        """Brightness, contrast, saturation and hue factors applied in ``order``."""
        adjust = (TF.adjust_brightness, TF.adjust_contrast, TF.adjust_saturation, TF.adjust_hue)
        for op in order:
            img = adjust[op](img, factors[op])
        return img


def augment_batch(
    images: torch.Tensor, aug: PaperAugmentation, generator: torch.Generator | None = None
) -> torch.Tensor:
    """Apply ``aug`` to each image of a (B, C, H, W) batch independently -> (B, C, size, size).

    Each image gets its own random crop, flip, jitter, grayscale and blur draws, taken in turn from
    ``generator``.
    """
    if not isinstance(images, torch.Tensor) or images.ndim != 4:
        shape = tuple(images.shape) if isinstance(images, torch.Tensor) else type(images).__name__
        raise ValueError(f"augment_batch expects an image batch (B, C, H, W), got {shape}")
    if images.shape[0] == 0:
        return images.new_empty((0, images.shape[1], *aug.size))
    return torch.stack([aug(img, generator=generator) for img in images])


def parameters_to_vector(params: dict[str, Any]) -> np.ndarray:
    """The parameters of :meth:`PaperAugmentation.draw` as a float64 vector of :data:`PARAMETER_COLUMNS`.

    Every value is a Python float or int, so the vector holds it exactly and
    :func:`vector_to_parameters` gives back the very same parameters: a view made again from a stored
    vector has the same pixels as the first one.
    """
    crop = params["crop"] if params["crop"] is not None else (-1, -1, -1, -1)
    jitter, order = params["jitter"], params["order"]
    return np.array(
        [
            *crop,
            float(params["flip"]),
            float(jitter is not None),
            *(jitter or (0.0, 0.0, 0.0, 0.0)),
            *(order or (0, 0, 0, 0)),
            float(params["gray"]),
            float(params["sigma"] is not None),
            params["sigma"] if params["sigma"] is not None else 0.0,
        ],
        dtype=np.float64,
    )


def vector_to_parameters(vector: np.ndarray | Sequence[float]) -> dict[str, Any]:
    """The inverse of :func:`parameters_to_vector`: the dict :meth:`PaperAugmentation.apply` takes."""
    v = np.asarray(vector, dtype=np.float64).reshape(-1)
    if v.shape[0] != len(PARAMETER_COLUMNS) or not np.isfinite(v).all():
        raise ValueError(
            f"expected {len(PARAMETER_COLUMNS)} finite augmentation parameters "
            f"({', '.join(PARAMETER_COLUMNS)}), got {v.shape[0]} values: {v.tolist()}"
        )
    crop = None if v[2] < 0 else tuple(int(x) for x in v[0:4])
    jitter = bool(v[5])
    return {
        "crop": crop,
        "flip": bool(v[4]),
        "jitter": tuple(float(x) for x in v[6:10]) if jitter else None,
        "order": [int(x) for x in v[10:14]] if jitter else None,
        "gray": bool(v[14]),
        "sigma": float(v[16]) if v[15] else None,
    }


def _blur_kernel(size: tuple[int, int]) -> int:
    """Odd kernel of about 0.1 of the image size, at least 3, and small enough to reflect-pad (else 1)."""
    kernel = max(3, int(0.1 * min(size)))
    if kernel % 2 == 0:
        kernel += 1
    while kernel > 1 and kernel // 2 >= min(size):
        kernel -= 2
    return kernel


class _Random:
    """Random draws from an optional ``torch.Generator`` (on its own device), as Python numbers."""

    def __init__(self, generator: torch.Generator | None) -> None:
        self.generator = generator
        self.device = generator.device if generator is not None else torch.device("cpu")

    def uniform(self, low: float = 0.0, high: float = 1.0) -> float:
        u = float(torch.rand((), generator=self.generator, device=self.device, dtype=torch.float64))
        return low + (high - low) * u

    def integer(self, high: int) -> int:
        """Uniform in [0, high)."""
        return int(torch.randint(high, (), generator=self.generator, device=self.device))

    def permutation(self, n: int) -> list[int]:
        return torch.randperm(n, generator=self.generator, device=self.device).tolist()
