"""Small image helpers shared by the datasets and the views.

Images travel as ``uint8`` tensors (C, H, W) from decoding until the very end of
``__getitem__``, where :func:`to_float` turns them into float tensors in [0, 1]; resizing
uint8 tensors is cheaper and the antialiased bilinear filter keeps values in range.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from PIL import Image
from torchvision.transforms.v2 import functional as TF

from mvmr.errors import DataError

__all__ = [
    "IMAGE_EXTENSIONS",
    "is_image_file",
    "decode_image",
    "image_to_array",
    "array_to_tensor",
    "adapt_channels",
    "resize_center_crop",
    "to_float",
]

#: File name endings (lower case) that the folder datasets treat as images.
IMAGE_EXTENSIONS: tuple[str, ...] = (
    ".jpg",
    ".jpeg",
    ".png",
    ".bmp",
    ".gif",
    ".webp",
    ".tif",
    ".tiff",
    ".ppm",
    ".pgm",
    ".pbm",
)

# ITU-R 601-2 luma weights, the ones PIL uses for mode "L".
_LUMA = (0.299, 0.587, 0.114)


def is_image_file(path: Path) -> bool:
    """True when ``path`` has an image extension and is not a hidden file."""
    return not path.name.startswith(".") and path.suffix.lower() in IMAGE_EXTENSIONS


def decode_image(path: Path, *, channels: int) -> torch.Tensor:
    """Decode the image file at ``path`` at full resolution (no JPEG draft scaling) into a uint8 tensor
    (``channels`` 1 or 3, H, W). Decoding failures propagate as PIL/OS exceptions."""
    with Image.open(path) as img:
        array = image_to_array(img, channels=channels)
    return array_to_tensor(array)


def image_to_array(img: Image.Image, *, channels: int) -> np.ndarray:
    """A PIL image as a writable uint8 array, (H, W) for ``channels=1`` (luma), else (H, W, 3) RGB."""
    mode = "L" if channels == 1 else "RGB"
    if img.mode in ("P", "LA", "PA") or (img.mode == "RGBA" and mode == "L"):
        img = img.convert("RGBA")
    return np.array(img.convert(mode), dtype=np.uint8)  # a copy


def array_to_tensor(array: np.ndarray) -> torch.Tensor:
    """A uint8 array (H, W) or (H, W, C), as PIL gives it -> a contiguous (C, H, W) tensor."""
    if array.ndim == 2:
        array = array[None]
    elif array.ndim == 3:
        array = array.transpose(2, 0, 1)
    else:
        raise DataError(f"expected an image array of shape (H, W) or (H, W, C), got {array.shape}")
    return torch.from_numpy(np.ascontiguousarray(array))


def adapt_channels(image: torch.Tensor, channels: int | None) -> torch.Tensor:
    """``image`` (C, H, W, uint8 or float) with ``channels`` channels (None: unchanged): 1 -> 3 repeats the gray
    channel, 3 -> 1 takes the ITU-R 601 luma."""
    c = image.shape[0]
    if channels is None or c == channels:
        return image
    if c == 1 and channels == 3:
        return image.expand(3, -1, -1).contiguous()
    if c == 3 and channels == 1:
        weights = torch.tensor(_LUMA, dtype=torch.float32).view(3, 1, 1)
        gray = (image.float() * weights).sum(dim=0, keepdim=True)
        if image.dtype == torch.uint8:
            return gray.round_().clamp_(0, 255).to(torch.uint8)
        return gray.to(image.dtype)
    raise DataError(f"cannot convert an image with {c} channels to {channels} channels")


def resize_center_crop(image: torch.Tensor, size: int) -> torch.Tensor:
    """Resize ``image`` (C, H, W) so its shorter side is ``size``, then centre-crop size x size.

    Antialiased bilinear resizing (weights are non-negative and sum to one, so values stay
    within the input's range). Images already size x size are returned unchanged.
    """
    if image.ndim != 3:
        raise DataError(f"expected one image of shape (C, H, W), got {tuple(image.shape)}")
    h, w = image.shape[-2:]
    if (h, w) == (size, size):
        return image
    if min(h, w) != size:
        image = TF.resize(image, [size], interpolation=TF.InterpolationMode.BILINEAR, antialias=True)
    return TF.center_crop(image, [size, size])


def to_float(image: torch.Tensor) -> torch.Tensor:
    """uint8 (0..255) -> float32 in [0, 1]; float input is returned as float32 unchanged."""
    if image.dtype == torch.uint8:
        return image.to(torch.float32).div_(255.0)
    return image.to(torch.float32)
