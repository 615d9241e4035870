"""A randomly augmented copy of the image, flattened (paper section 7, appendix B)."""

from __future__ import annotations

import torch

from mvmr.representations.base import Representation, register
from mvmr.transforms import BatchAugmentation, PaperAugmentation

__all__ = ["AugmentedPixels"]


@register("augmented_pixels")
class AugmentedPixels(Representation):
    """The image after the paper's random augmentation, flattened (paper section 7, table 6 "Augmented image").

    Each image of the batch gets its own augmentation (:class:`mvmr.transforms.PaperAugmentation`),
    drawn independently of the others (the authors' code draws one crop and one jitter for the whole
    batch), and the whole batch is augmented at once on its device
    (:class:`mvmr.transforms.BatchAugmentation`). Not deterministic, so it is never cached.

    Args:
        size: output size of the augmented image; None keeps the input's (H, W).
        crop, flip, color, grayscale, blur: switch the parts of the augmentation.
        generator: the ``torch.Generator`` of all random draws; None uses torch's global generator.
        seed: alternatively, seed a private CPU generator (for configs); not both.

    Output: (B, C * size * size) float32.
    """

    name = "augmented_pixels"
    deterministic = False

    def __init__(
        self,
        *,
        size: int | None = None,
        crop: bool = True,
        flip: bool = True,
        color: bool = True,
        grayscale: bool = True,
        blur: bool = True,
        generator: torch.Generator | None = None,
        seed: int | None = None,
    ) -> None:
        super().__init__()
        if size is not None and (int(size) != size or size < 1):
            raise ValueError(f"AugmentedPixels size must be a positive int or None, got {size!r}")
        if generator is not None and seed is not None:
            raise ValueError("AugmentedPixels: pass either generator or seed, not both")
        if seed is not None:
            generator = torch.Generator().manual_seed(int(seed))
        self.size = None if size is None else int(size)
        self.parts = {"crop": crop, "flip": flip, "color": color, "grayscale": grayscale, "blur": blur}
        self.generator = generator
        self._augmentations: dict[tuple[int, int], BatchAugmentation] = {}

    def config(self) -> dict[str, object]:
        """The settings (not the generator state)."""
        return {"size": self.size, **self.parts}

    def extra_repr(self) -> str:
        parts = "+".join(k for k, v in self.parts.items() if v) or "none"
        return f"{super().extra_repr()}, size={self.size}, parts={parts}"

    def augmentation(self, height: int, width: int) -> BatchAugmentation:
        """The augmentation used for input images of this size (built once per size)."""
        out = (height, width) if self.size is None else (self.size, self.size)
        if out not in self._augmentations:
            aug = PaperAugmentation(out, **self.parts)  # type: ignore[arg-type]  # parts: only the bool switches
            self._augmentations[out] = BatchAugmentation(aug)
        return self._augmentations[out]

    def output_dim(self, channels: int, height: int, width: int) -> int:
        if min(channels, height, width) < 1:
            raise ValueError(f"AugmentedPixels: empty image shape ({channels}, {height}, {width})")
        return channels * height * width if self.size is None else channels * self.size * self.size

    @torch.no_grad()
    def forward(self, images: torch.Tensor) -> torch.Tensor:
        self.check_images(images)
        aug = self.augmentation(images.shape[-2], images.shape[-1])
        return aug(images, generator=self.generator).reshape(images.shape[0], -1).float()
