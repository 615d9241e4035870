"""Local standard deviation (LSD) filter (paper section 7, appendix B)."""

from __future__ import annotations

import torch
import torch.nn.functional as F

from mvmr.representations.base import Representation, register

__all__ = ["LocalStd", "symmetric_pad"]

_CHUNK_PIXELS = 1 << 16  # pixels processed at once on the CPU


def symmetric_pad(images: torch.Tensor, pad: int) -> torch.Tensor:
    """Pad the last two axes by ``pad`` on every side, half-sample symmetric: ``d c b a | a b c d | d c b a``.

    This is ``scipy.ndimage``'s ``mode="reflect"`` (numpy's ``"symmetric"``); it differs from torch's
    ``"reflect"`` (scipy's ``"mirror"``), which does not repeat the edge pixel. Paddings wider than the
    image keep reflecting, as scipy does.
    """
    if pad == 0:
        return images
    height, width = images.shape[-2:]
    if pad == 1:  # one pixel: symmetric is the same as replicate, which torch does fastest
        return F.pad(images, (1, 1, 1, 1), mode="replicate")
    if pad <= min(height, width):  # flipped edge strips: much faster than a gather
        out = images.new_empty((*images.shape[:-2], height + 2 * pad, width + 2 * pad))
        out[..., pad : pad + height, pad : pad + width] = images
        out[..., pad : pad + height, :pad] = images[..., :pad].flip(-1)
        out[..., pad : pad + height, pad + width :] = images[..., width - pad :].flip(-1)
        out[..., :pad, :] = out[..., pad : 2 * pad, :].flip(-2)
        out[..., pad + height :, :] = out[..., height : height + pad, :].flip(-2)
        return out

    def indices(size: int) -> torch.Tensor:
        position = torch.arange(-pad, size + pad, device=images.device).remainder(2 * size)
        return torch.where(position >= size, 2 * size - 1 - position, position)

    return images.index_select(-2, indices(height)).index_select(-1, indices(width))


def _box_sum(x: torch.Tensor, kernel: int) -> torch.Tensor:
    """Sums over every ``kernel x kernel`` window of the last two axes (valid windows only), separably."""
    height, width = x.shape[-2] - kernel + 1, x.shape[-1] - kernel + 1
    rows = x[..., :, :width].clone()
    for d in range(1, kernel):
        rows += x[..., :, d : d + width]
    out = rows[..., :height, :].clone()
    for d in range(1, kernel):
        out += rows[..., d : d + height, :]
    return out


@register("local_std")
class LocalStd(Representation):
    """Local standard deviation over a ``kernel x kernel`` window, per channel, flattened.

    Paper section 7: "a filter that computes a standard deviation in a defined image region", with a
    3 x 3 kernel. The border is padded half-sample symmetrically, so the result equals
    ``scipy.ndimage.generic_filter(channel, np.std, size=kernel, mode="reflect")`` (population std).

    The variance ``E[x^2] - E[x]^2`` is computed from window sums in float64: the sums of a flat
    window are exact, so flat regions give exactly 0, and float64 is far from the cancellation that
    float32 suffers on a faint texture over a bright background. It is clamped at 0 before the
    square root, so it is never NaN. Output: (B, C * H * W) float32 in (C, H, W) order.

    Args:
        kernel: odd window size in pixels.
    """

    name = "local_std"
    deterministic = True

    def __init__(self, *, kernel: int = 3) -> None:
        super().__init__()
        if int(kernel) != kernel or kernel < 1 or kernel % 2 == 0:
            raise ValueError(f"LocalStd kernel must be an odd positive integer, got {kernel!r}")
        self.kernel = int(kernel)

    def config(self) -> dict[str, object]:
        """The settings, for feature-cache manifests."""
        return {"kernel": self.kernel}

    def extra_repr(self) -> str:
        return f"{super().extra_repr()}, kernel={self.kernel}"

    def output_dim(self, channels: int, height: int, width: int) -> int:
        if min(channels, height, width) < 1:
            raise ValueError(f"LocalStd: empty image shape ({channels}, {height}, {width})")
        return channels * height * width

    @torch.no_grad()
    def forward(self, images: torch.Tensor) -> torch.Tensor:
        self.check_images(images)
        batch, channels, height, width = images.shape
        self.output_dim(channels, height, width)
        planes = images.reshape(batch * channels, 1, height, width)
        # On the CPU, chunks of about _CHUNK_PIXELS pixels stay in cache; a GPU takes the whole batch.
        step = planes.shape[0]
        if planes.device.type == "cpu":
            step = max(1, _CHUNK_PIXELS // (height * width))
        parts = [self._std(planes[i : i + step]) for i in range(0, planes.shape[0], step)]
        std = parts[0] if len(parts) == 1 else torch.cat(parts)
        return std.reshape(batch, -1)

    def _std(self, planes: torch.Tensor) -> torch.Tensor:
        """Local std of (N, 1, H, W) planes -> (N, 1, H, W) float32."""
        x = symmetric_pad(planes, self.kernel // 2).double()
        area = float(self.kernel * self.kernel)
        mean = _box_sum(x, self.kernel).div_(area)
        mean_sq = _box_sum(x.square(), self.kernel).div_(area)
        return mean_sq.sub_(mean.square_()).clamp_(min=0).sqrt_().float()
