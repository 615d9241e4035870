"""Scattering network (ScatNet) features, with kymatio (paper section 7, appendix B)."""

from __future__ import annotations

import torch

from mvmr.representations.base import Representation, register

__all__ = ["ScatNet"]


@register("scatnet")
class ScatNet(Representation):
    """2-D scattering transform of each channel, flattened (paper section 7: J = 2, L = 8).

    Uses kymatio's torch ``Scattering2D`` (Morlet wavelets, orders 0-2). For an image of H x W pixels
    each channel gives ``1 + J L + L^2 J (J - 1) / 2`` maps of ``H / 2^J x W / 2^J`` values, so
    (B, 3, 96, 96) gives (B, 3 * 81 * 24 * 24) = (B, 139968) with the defaults, in (C, path, h, w) order.

    The filters are built once per (H, W, device) and reused; the kymatio modules live in a plain
    dict, so they are neither parameters nor in the ``state_dict``.

    Args:
        J: number of scales (the output is downsampled by 2^J).
        L: number of orientations.
    """

    name = "scatnet"
    deterministic = True

    def __init__(self, *, J: int = 2, L: int = 8) -> None:
        super().__init__()
        if int(J) != J or J < 1:
            raise ValueError(f"ScatNet J must be a positive integer, got {J!r}")
        if int(L) != L or L < 1:
            raise ValueError(f"ScatNet L must be a positive integer, got {L!r}")
        self.J = int(J)
        self.L = int(L)
        self._scatterings: dict[tuple[int, int, torch.device], torch.nn.Module] = {}

    def config(self) -> dict[str, object]:
        """The settings, for feature-cache manifests."""
        return {"J": self.J, "L": self.L, "backend": "kymatio.torch.Scattering2D"}

    def extra_repr(self) -> str:
        return f"{super().extra_repr()}, J={self.J}, L={self.L}"

    @property
    def paths(self) -> int:
        """Scattering maps per channel: 1 + J L + L^2 J (J - 1) / 2."""
        return 1 + self.J * self.L + self.L**2 * self.J * (self.J - 1) // 2

    def _check_size(self, height: int, width: int) -> None:
        step = 2**self.J
        if height < step or width < step or height % step or width % step:
            raise ValueError(
                f"ScatNet(J={self.J}) needs H and W to be positive multiples of 2^J = {step}, "
                f"got an image of {height}x{width} pixels"
            )

    def output_dim(self, channels: int, height: int, width: int) -> int:
        self._check_size(height, width)
        return channels * self.paths * (height >> self.J) * (width >> self.J)

    def scattering(self, height: int, width: int, device: torch.device) -> torch.nn.Module:
        """The kymatio ``Scattering2D`` for this image size and device, built on first use."""
        self._check_size(height, width)
        key = (height, width, torch.device(device))
        module = self._scatterings.get(key)
        if module is None:
            from kymatio.torch import Scattering2D  # imported lazily: kymatio pulls in scipy

            module = Scattering2D(J=self.J, shape=(height, width), L=self.L).to(key[2])
            self._scatterings[key] = module
        return module

    @torch.no_grad()
    def forward(self, images: torch.Tensor) -> torch.Tensor:
        self.check_images(images)
        batch, _, height, width = images.shape
        scattering = self.scattering(height, width, images.device)
        coefficients = scattering(images.float().contiguous())  # (B, C, paths, H / 2^J, W / 2^J)
        return coefficients.reshape(batch, -1)
