"""Histogram of oriented gradients (HOG), batched in pure PyTorch (paper section 7, appendix B)."""

from __future__ import annotations

import math

import torch

from mvmr.representations.base import Representation, register

__all__ = ["HOG"]

_EPS = 1e-5  # skimage's eps in the block normalisation
_CLIP = 0.2  # L2-Hys clipping value
# The float32 angle (in bins) is nudged up by this before flooring; the pixels that end up within
# 2 * _NUDGE above an edge (except the exact rational angles) are re-binned in float64 like skimage.
_NUDGE = 1e-3
_CHUNK_PIXELS = 1 << 19  # pixels per channel plane processed at once on the CPU (measured: 1 << 16 to 1 << 23)


@register("hog")
class HOG(Representation):
    """Histograms of unsigned gradient orientations per cell (paper section 7: 24 bins, 8-pixel cells).

    The default configuration reproduces ``skimage.feature.hog(image, orientations=24,
    pixels_per_cell=(8, 8), cells_per_block=(1, 1), block_norm="L2-Hys", channel_axis=-1)``
    (``channel_axis=None`` on the 2-D image for grayscale) on a whole batch at once:

    1. gradients by central differences ``x[i+1] - x[i-1]`` with zero rows/columns at the border;
    2. for colour images, each pixel takes the gradient of the channel with the largest gradient
       magnitude (the first channel on ties);
    3. the unsigned orientation ``atan2(g_row, g_col)`` in degrees modulo 180 falls in bin ``i`` when
       ``i * 180/n <= angle < (i + 1) * 180/n`` (hard assignment, no interpolation), and votes with its
       magnitude; each cell histogram is the sum over the cell divided by the cell area. Rows and
       columns beyond the last whole cell are ignored;
    4. with ``block_norm`` each cell (a block of one cell) is L2-Hys normalised: ``h / sqrt(|h|^2 +
       eps^2)``, clipped at 0.2, and normalised again (eps = 1e-5).

    The output is ordered (cell row, cell column, orientation), as skimage's feature vector. With
    ``per_channel=True`` every channel is treated as its own grayscale image and the channels' vectors
    are concatenated (C times longer).

    The whole batch votes with one ``scatter_add_`` (in cache-sized chunks on the CPU); the results agree with
    skimage to float rounding (~1e-7, see :meth:`_bins`). Works on any device; the output is float32.

    Args:
        orientations: number of orientation bins over [0, 180) degrees.
        cell: cell size in pixels (square cells).
        block_norm: L2-Hys normalise each cell histogram; False gives the raw cell histograms.
        per_channel: one histogram per channel instead of the dominant-channel gradient.
    """

    name = "hog"
    deterministic = True

    def __init__(
        self, *, orientations: int = 24, cell: int = 8, block_norm: bool = True, per_channel: bool = False
    ) -> None:
        super().__init__()
        if int(orientations) != orientations or orientations < 1:
            raise ValueError(f"HOG orientations must be a positive integer, got {orientations!r}")
        if int(cell) != cell or cell < 1:
            raise ValueError(f"HOG cell must be a positive integer (pixels), got {cell!r}")
        self.orientations = int(orientations)
        self.cell = int(cell)
        self.block_norm = bool(block_norm)
        self.per_channel = bool(per_channel)
        # skimage's bin edges, in float64: (180 / n) * i, each product rounded once.
        edges = (180.0 / self.orientations) * torch.arange(self.orientations + 1, dtype=torch.float64)
        self._edges: torch.Tensor = edges  # plain attribute: not part of the state_dict
        # Whether the edges that should sit on 45/90/135 degrees are exactly there (true for most n);
        # only then may the fast path bin those exact gradient angles itself.
        self._rational_edges_exact = all(
            float(edges[angle * self.orientations // 180]) == angle
            for angle in (45, 90, 135)
            if angle * self.orientations % 180 == 0
        )
        self._cell_index: dict[tuple[int, int, int, torch.device], torch.Tensor] = {}

    def config(self) -> dict[str, object]:
        """The settings, for feature-cache manifests."""
        return {
            "orientations": self.orientations,
            "cell": self.cell,
            "block_norm": self.block_norm,
            "per_channel": self.per_channel,
        }

    def extra_repr(self) -> str:
        return (
            f"{super().extra_repr()}, orientations={self.orientations}, cell={self.cell}, "
            f"block_norm={self.block_norm}, per_channel={self.per_channel}"
        )

    def _cells(self, height: int, width: int) -> tuple[int, int]:
        if height < self.cell or width < self.cell:
            raise ValueError(f"HOG: image of {height}x{width} pixels is smaller than one {self.cell}x{self.cell} cell")
        return height // self.cell, width // self.cell

    def output_dim(self, channels: int, height: int, width: int) -> int:
        n_rows, n_cols = self._cells(height, width)
        per_image = n_rows * n_cols * self.orientations
        return per_image * channels if self.per_channel else per_image

    @torch.no_grad()
    def forward(self, images: torch.Tensor) -> torch.Tensor:
        self.check_images(images)
        batch, channels, height, width = images.shape
        n_rows, n_cols = self._cells(height, width)  # validates the size first
        dtype = torch.float64 if images.dtype == torch.float64 else torch.float32
        images = images.to(dtype)
        if self.per_channel:
            images = images.reshape(batch * channels, 1, height, width)
        # On the CPU, chunks of about _CHUNK_PIXELS pixels per channel keep the ~40 elementwise passes
        # in cache (1.8x faster than whole-batch passes at 256 x 96 px); a GPU takes the whole batch.
        step = images.shape[0]
        if images.device.type == "cpu":
            step = max(1, _CHUNK_PIXELS // (height * width))
        slots = 2 * self.orientations + 2
        sums = torch.zeros(images.shape[0], n_rows * n_cols, slots, dtype=torch.float32, device=images.device)
        for i in range(0, images.shape[0], step):
            self._slot_histograms(images[i : i + step], out=sums[i : i + step])
        # Slot k is the signed bin k - n of the angle in (-180, 180]; the unsigned bin is (k - n) mod n.
        n = self.orientations
        hist = sums[..., :n] + sums[..., n : 2 * n]
        hist[..., 0] += sums[..., 2 * n]
        hist /= float(self.cell * self.cell)  # skimage's cell average
        if self.block_norm:
            hist = _l2_hys(hist)
        return hist.reshape(batch, -1).float()

    def _slot_histograms(self, images: torch.Tensor, *, out: torch.Tensor) -> None:
        """Add the magnitude sums per (image, cell, slot of :meth:`_bins`) of a (B, C, H, W) chunk to ``out``."""
        height, width = images.shape[-2:]
        n_rows, n_cols = self._cells(height, width)
        g_row, g_col, magnitude = _dominant_gradient(images)
        # Only whole cells count; the gradients were taken on the full image.
        rows, cols = n_rows * self.cell, n_cols * self.cell
        if (rows, cols) != (height, width):
            g_row, g_col, magnitude = (t[:, :rows, :cols].contiguous() for t in (g_row, g_col, magnitude))
        base = self._base_index(g_row.shape[0], n_rows, n_cols, 2 * self.orientations + 2, g_row.device)
        index = self._bins(g_row, g_col).add_(base)
        # one scatter_add_ for the whole chunk (faster than index_add_ on the CPU)
        out.view(-1).scatter_add_(0, index.view(-1), magnitude.float().reshape(-1))

    def _base_index(self, count: int, n_rows: int, n_cols: int, slots: int, device: torch.device) -> torch.Tensor:
        """``(image * cells + cell) * slots`` for every pixel, int64, cached per shape and device."""
        key = (count, n_rows, n_cols, device)
        base = self._cell_index.get(key)
        if base is None:
            rows = torch.arange(n_rows * self.cell, device=device) // self.cell
            cols = torch.arange(n_cols * self.cell, device=device) // self.cell
            cell = rows.view(1, -1, 1) * n_cols + cols.view(1, 1, -1)
            image = torch.arange(count, device=device).view(-1, 1, 1) * (n_rows * n_cols)
            base = (image + cell) * slots
            if len(self._cell_index) >= 8:  # a few shapes (last batch, eval sizes) at most
                self._cell_index.clear()
            self._cell_index[key] = base
        return base

    def _bins(self, g_row: torch.Tensor, g_col: torch.Tensor) -> torch.Tensor:
        """Histogram slot (int64) of each pixel, exactly as skimage bins it: ``k in 0 .. 2n`` for the signed bin
        ``k - n`` of the angle in (-180, 180] degrees, ``2n + 1`` for an angle in no bin (skimage drops it).

        Fast path: the float32 ``atan2`` in units of bins, nudged up by ``_NUDGE`` and floored, which puts the
        exact 0/45/90/135 degree gradients into the upper bin as skimage does. Every other pixel within
        ``2 * _NUDGE`` bins of an edge is binned again from skimage's float64 angle (:meth:`_exact_slots`).
        Float masks instead of bool tensors: several times faster on the CPU.
        """
        n = self.orientations
        # The position in bins, shifted by n: slot k = floor(position) for the signed bin k - n.
        position = torch.atan2(g_row.float(), g_col.float()).mul_(n / math.pi).add_(n + _NUDGE)  # (0, 2n]
        slots = position.to(torch.int64)  # floor: the position is positive
        # != 0 just above an edge, 0 on a rational angle or a zero gradient (the product below may also
        # underflow to 0 for gradients below ~1e-13, whose votes are far below the output's precision).
        near_edge = torch.lt(position.frac_(), 2 * _NUDGE, out=position)  # 1.0 / 0.0, in place
        if self._rational_edges_exact:
            near_edge.mul_(g_row.abs().sub_(g_col.abs()).mul_(g_row).mul_(g_col))
        else:  # the rational angles go to the exact path too
            near_edge.mul_(g_row.abs().add_(g_col.abs()))
        # nonzero on a uint8 view of a bool tensor: several times faster than on floats or bools
        where = near_edge.view(-1).to(torch.bool).view(torch.uint8).nonzero().squeeze(1)
        if where.numel():
            exact = self._exact_slots(g_row.reshape(-1)[where].double(), g_col.reshape(-1)[where].double())
            slots.view(-1).index_copy_(0, where, exact)
        return slots

    def _exact_slots(self, g_row: torch.Tensor, g_col: torch.Tensor) -> torch.Tensor:
        """Slots from skimage's float64 ``rad2deg(arctan2(g_row, g_col)) % 180`` against its float64 edges; an
        angle in ``[edges[n], 180]`` is in no bin (slot ``2n + 1``); 0/45/90/135 degrees are set exactly."""
        n = self.orientations
        # numpy's ``%``: fmod, then + 180 for a negative remainder (which may round up to 180.0, an
        # angle in no bin); exactly 180.0 (atan2 = pi, also for a tiny positive g_row) becomes 0.
        angle = torch.fmod(torch.rad2deg(torch.atan2(g_row, g_col)), 180.0)
        angle = torch.where(angle < 0, angle + 180.0, angle)
        if not self._rational_edges_exact:
            angle = angle.masked_fill_(g_col == 0, 90.0)
            angle = angle.masked_fill_(g_row == g_col, 45.0)
            angle = angle.masked_fill_(g_row == -g_col, 135.0)
            angle = angle.masked_fill_(g_row == 0, 0.0)
        bins = torch.searchsorted(self._edges.to(angle.device), angle, right=True) - 1
        return torch.where(bins >= n, 2 * n + 1, bins)


def _dominant_gradient(images: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """``(g_row, g_col, magnitude)`` (B, H, W) of images (B, C, H, W): central differences with zero borders,
    from the channel of largest magnitude (the first on ties, like ``argmax``)."""
    planes = images.transpose(0, 1)  # (C, B, H, W) view: written below into channel-major buffers
    grad = torch.empty((planes.shape[0], 2, *planes.shape[1:]), dtype=planes.dtype, device=planes.device)
    torch.sub(planes[:, :, 2:, :], planes[:, :, :-2, :], out=grad[:, 0, :, 1:-1, :])
    torch.sub(planes[:, :, :, 2:], planes[:, :, :, :-2], out=grad[:, 1, :, :, 1:-1])
    grad[:, 0, :, 0, :] = 0
    grad[:, 0, :, -1, :] = 0
    grad[:, 1, :, :, 0] = 0
    grad[:, 1, :, :, -1] = 0
    magnitude = torch.hypot(grad[:, 0], grad[:, 1])
    best_grad, best = grad[0], magnitude[0]  # updated in place: channel 0's buffers are not read again
    if planes.shape[0] > 1:
        better = torch.empty_like(best)
        for c in range(1, planes.shape[0]):
            # 1.0 where channel c is strictly larger, else 0.0 (a float mask: bool ops are slow on the
            # CPU); lerp with a 0/1 weight returns exactly one of its ends.
            torch.gt(magnitude[c], best, out=better)
            torch.maximum(best, magnitude[c], out=best)
            best_grad.lerp_(grad[c], better)
    return best_grad[0], best_grad[1], best


def _l2_hys(hist: torch.Tensor) -> torch.Tensor:
    """skimage's L2-Hys normalisation along the last axis (eps = 1e-5), in place, in float32 (~1e-7 from skimage)."""
    norm = torch.linalg.vector_norm(hist, dim=-1, keepdim=True).square_().add_(_EPS**2).sqrt_()
    hist = hist.div_(norm).clamp_(max=_CLIP)
    norm = torch.linalg.vector_norm(hist, dim=-1, keepdim=True).square_().add_(_EPS**2).sqrt_()
    return hist.div_(norm)
