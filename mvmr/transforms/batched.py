"""The paper's augmentation for a whole batch at once, on the batch's device."""

from __future__ import annotations

import math
from collections.abc import Callable

import torch
import torch.nn.functional as F
from torch import Tensor
from torchvision.ops import roi_align

from mvmr.transforms.augmentation import PaperAugmentation

__all__ = ["BatchAugmentation", "Draws"]

#: per-image parameters of a batch: crop (B, 4: top, left, h, w), flip / jitter / gray / blur (B,)
#: bool, factors (B, 4: brightness, contrast, saturation, hue), order (B, 4), sigma (B,)
Draws = dict[str, Tensor]

_LUMA = (0.2989, 0.587, 0.114)


class BatchAugmentation:
    """Apply the settings of a :class:`~mvmr.transforms.PaperAugmentation` to a batch (B, C, H, W).

    Every image gets its own crop, flip, jitter factors and order, grayscale and blur sigma, with the
    distributions of :meth:`PaperAugmentation.draw <mvmr.transforms.PaperAugmentation.draw>`, drawn in a few
    tensor operations and applied without a Python loop over the images: the random resized crop is
    resampled with ``roi_align`` (an antialiased resize: it averages over each output pixel's footprint),
    the hue rotated in HSV space, the blur one grouped convolution.
    """

    def __init__(self, augmentation: PaperAugmentation) -> None:
        self.aug = augmentation

    def __repr__(self) -> str:
        return f"BatchAugmentation({self.aug!r})"

    def __call__(self, images: Tensor, generator: torch.Generator | None = None) -> Tensor:
        if not isinstance(images, Tensor) or images.ndim != 4 or not images.is_floating_point():
            shape = tuple(images.shape) if isinstance(images, Tensor) else type(images).__name__
            raise ValueError(f"BatchAugmentation expects a float image batch (B, C, H, W) in [0, 1], got {shape}")
        if images.shape[1] not in (1, 3):
            raise ValueError(f"BatchAugmentation expects 1 or 3 channels, got {tuple(images.shape)}")
        b, _, h, w = images.shape
        return self.apply(images, self.draw(b, h, w, generator=generator, device=images.device))

    def draw(
        self,
        batch: int,
        height: int,
        width: int,
        *,
        generator: torch.Generator | None = None,
        device: torch.device | str | None = None,
    ) -> Draws:
        """Every image's parameters, drawn on the generator's device (CPU by default), then moved."""
        a = self.aug
        gen_device = generator.device if generator is not None else torch.device("cpu")

        def uniform(*shape: int, low: float = 0.0, high: float = 1.0) -> Tensor:
            u = torch.rand(*shape, generator=generator, device=gen_device, dtype=torch.float64)
            return low + (high - low) * u

        out: Draws = {"crop": self._crop_boxes(batch, height, width, uniform)}
        out["flip"] = (uniform(batch) < a.flip_p) & a.flip
        out["jitter"] = (uniform(batch) < a.color_p) & a.color
        out["factors"] = torch.stack([uniform(batch, low=lo, high=hi) for lo, hi in a.jitter_bounds], dim=1)
        out["order"] = torch.argsort(uniform(batch, 4), dim=1)  # a uniformly random permutation per image
        out["gray"] = (uniform(batch) < a.grayscale_p) & a.grayscale
        out["blur"] = (uniform(batch) < a.blur_p) & (a.blur and a.blur_kernel >= 3)
        out["sigma"] = uniform(batch, low=a.blur_sigma[0], high=a.blur_sigma[1])
        return {k: v.to(device) if device is not None else v for k, v in out.items()}

    def _crop_boxes(self, batch: int, height: int, width: int, uniform: Callable[..., Tensor]) -> Tensor:
        """(B, 4) top, left, h, w: torchvision's RandomResizedCrop sampling, vectorised."""
        a = self.aug
        if not a.crop:
            return torch.tensor([[0, 0, height, width]], dtype=torch.float64).repeat(batch, 1)
        area = height * width
        log_lo, log_hi = math.log(a.crop_ratio[0]), math.log(a.crop_ratio[1])
        target = area * uniform(batch, 10, low=a.crop_scale[0], high=a.crop_scale[1])
        ratio = torch.exp(uniform(batch, 10, low=log_lo, high=log_hi))
        w = torch.round(torch.sqrt(target * ratio))
        h = torch.round(torch.sqrt(target / ratio))
        ok = (w > 0) & (w <= width) & (h > 0) & (h <= height)
        first = torch.argmax(ok.to(torch.int8), dim=1, keepdim=True)  # the first try that fits
        h, w, found = h.gather(1, first)[:, 0], w.gather(1, first)[:, 0], ok.any(dim=1)
        fh, fw = a.fallback_crop(height, width)  # where no try fits
        h, w = torch.where(found, h, float(fh)), torch.where(found, w, float(fw))
        top = torch.floor(uniform(batch) * (height - h + 1))
        left = torch.floor(uniform(batch) * (width - w + 1))
        top = torch.where(found, top, float((height - fh) // 2))
        left = torch.where(found, left, float((width - fw) // 2))
        return torch.stack([top, left, h, w], dim=1)

    def apply(self, images: Tensor, draws: Draws) -> Tensor:
        """``images`` (B, C, H, W) augmented with ``draws`` (as made by :meth:`draw`)."""
        a = self.aug
        x = images.float() if images.dtype not in (torch.float32, torch.float64) else images
        out_h, out_w = a.size
        if a.crop or tuple(x.shape[-2:]) != (out_h, out_w):
            x = self._resized_crop(x, draws["crop"])
        x = torch.where(draws["flip"].view(-1, 1, 1, 1), x.flip(-1), x)
        if bool(draws["jitter"].any()):
            x = self._jitter(x, draws)
        if x.shape[1] == 3 and bool(draws["gray"].any()):
            gray = _grayscale(x).expand_as(x)
            x = torch.where(draws["gray"].view(-1, 1, 1, 1), gray, x)
        if bool(draws["blur"].any()):
            x = torch.where(draws["blur"].view(-1, 1, 1, 1), self._blur(x, draws["sigma"]), x)
        return x.clamp(0.0, 1.0)

    def _resized_crop(self, x: Tensor, boxes: Tensor) -> Tensor:
        top, left, h, w = boxes.to(x.device, x.dtype).unbind(1)
        index = torch.arange(x.shape[0], device=x.device, dtype=x.dtype)
        rois = torch.stack([index, left, top, left + w, top + h], dim=1)
        return roi_align(x, rois, output_size=self.aug.size, spatial_scale=1.0, sampling_ratio=-1, aligned=True)

    def _jitter(self, x: Tensor, draws: Draws) -> Tensor:
        factors = draws["factors"].to(x.device, x.dtype)
        active, order = draws["jitter"], draws["order"]
        x = x.clone()  # changed in place below, one selection of images at a time
        for position in range(4):
            for op in range(4):
                mask = active & (order[:, position] == op)
                if not bool(mask.any()) or (op >= 2 and x.shape[1] == 1):  # saturation, hue: no-ops on gray images
                    continue
                x[mask] = _JITTER_OPS[op](x[mask], factors[mask, op].view(-1, 1, 1, 1))
        return x

    def _blur(self, x: Tensor, sigma: Tensor) -> Tensor:
        k = self.aug.blur_kernel
        b, c, h, w = x.shape
        grid = torch.linspace(-(k // 2), k // 2, k, device=x.device, dtype=x.dtype)
        kernel = torch.exp(-0.5 * (grid.view(1, k) / sigma.to(x.device, x.dtype).view(b, 1)) ** 2)
        kernel = (kernel / kernel.sum(dim=1, keepdim=True)).repeat_interleave(c, dim=0)  # (B*C, k)
        flat = x.reshape(1, b * c, h, w)
        flat = F.conv2d(F.pad(flat, (k // 2, k // 2, 0, 0), mode="reflect"), kernel.view(b * c, 1, 1, k), groups=b * c)
        flat = F.conv2d(F.pad(flat, (0, 0, k // 2, k // 2), mode="reflect"), kernel.view(b * c, 1, k, 1), groups=b * c)
        return flat.view(b, c, h, w)


def _grayscale(x: Tensor) -> Tensor:
    """(B, 1, H, W) luma of RGB images (the image itself for one channel)."""
    if x.shape[1] == 1:
        return x
    r, g, b = x.unbind(1)
    return (_LUMA[0] * r + _LUMA[1] * g + _LUMA[2] * b).unsqueeze(1)


def _brightness(x: Tensor, f: Tensor) -> Tensor:
    return (x * f).clamp(0.0, 1.0)


def _contrast(x: Tensor, f: Tensor) -> Tensor:
    mean = _grayscale(x).mean(dim=(1, 2, 3), keepdim=True)
    return (f * x + (1 - f) * mean).clamp(0.0, 1.0)


def _saturation(x: Tensor, f: Tensor) -> Tensor:
    return (f * x + (1 - f) * _grayscale(x)).clamp(0.0, 1.0)


def _hue(x: Tensor, shift: Tensor) -> Tensor:
    """Rotate the hue of RGB images by ``shift`` (a fraction of the colour circle), in HSV space."""
    r, g, b = x.unbind(1)
    high, low = x.amax(dim=1), x.amin(dim=1)
    chroma = high - low
    gray = chroma == 0
    value = high
    saturation = chroma / torch.where(gray, torch.ones_like(high), high)
    safe = torch.where(gray, torch.ones_like(chroma), chroma)
    rc, gc, bc = (high - r) / safe, (high - g) / safe, (high - b) / safe
    hue = torch.where(high == r, bc - gc, torch.where(high == g, 2.0 + rc - bc, 4.0 + gc - rc))
    hue = torch.where(gray, torch.zeros_like(hue), hue)
    hue = torch.remainder(hue / 6.0 + shift.view(-1, 1, 1), 1.0)
    # back to RGB
    sector = torch.floor(hue * 6.0)
    frac = hue * 6.0 - sector
    p = value * (1 - saturation)
    q = value * (1 - saturation * frac)
    t = value * (1 - saturation * (1 - frac))
    sector = sector.long() % 6
    choices = [(value, t, p), (q, value, p), (p, value, t), (p, q, value), (t, p, value), (value, p, q)]
    out = torch.zeros_like(x)
    for i, (rr, gg, bb) in enumerate(choices):
        m = (sector == i).unsqueeze(1)
        out = torch.where(m, torch.stack([rr, gg, bb], dim=1), out)
    return out


_JITTER_OPS = (_brightness, _contrast, _saturation, _hue)
