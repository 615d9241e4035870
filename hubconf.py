"""torch.hub entry points of mvmr's encoders.

    model = torch.hub.load("path/to/mvmr", "mvmr_resnet50", source="local", weights="export/backbone.safetensors")
    features = model(images)  # images: float in [0, 1], (B, 3, H, W) -> (B, 2048)

``weights`` is what ``mvmr export`` wrote: ``backbone.safetensors`` / ``backbone.pt`` or a
``--format hf`` folder (or a Hugging Face Hub repository id). Nothing is downloaded from elsewhere:
without ``weights`` the encoder is randomly initialised (``small_images`` and ``in_chans`` shape it;
with ``weights`` the export decides). The model normalises its input itself.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

dependencies = ["torch", "torchvision", "safetensors"]


def _encoder(arch: str, weights: str | None, small_images: bool, in_chans: int) -> Any:
    from mvmr.errors import CheckpointError
    from mvmr.models import build_model, load_backbone_model

    if weights is None:
        return build_model(arch, "", small_images=small_images, in_chans=in_chans).eval()
    if Path(weights).expanduser().is_file():  # backbone.safetensors / backbone.pt: no huggingface_hub needed
        model = load_backbone_model(Path(weights).expanduser())
    else:  # a --format hf folder or a Hub repository
        import mvmr

        model = mvmr.from_pretrained(weights)
    spec = model.spec
    if spec is None or spec.name != arch:
        raise CheckpointError(
            f"{weights} holds a {spec.name if spec else 'unknown'} encoder, not {arch}; "
            f"load it with mvmr_{spec.name if spec else '<arch>'}"
        )
    return model.eval()


def mvmr_resnet18(weights: str | None = None, small_images: bool = False, in_chans: int = 3) -> Any:
    """ResNet-18 encoder (512 features) with its normalisation; ``weights``: an mvmr export."""
    return _encoder("resnet18", weights, small_images, in_chans)


def mvmr_resnet34(weights: str | None = None, small_images: bool = False, in_chans: int = 3) -> Any:
    """ResNet-34 encoder (512 features) with its normalisation; ``weights``: an mvmr export."""
    return _encoder("resnet34", weights, small_images, in_chans)


def mvmr_resnet50(weights: str | None = None, small_images: bool = False, in_chans: int = 3) -> Any:
    """ResNet-50 encoder (2048 features) with its normalisation; ``weights``: an mvmr export."""
    return _encoder("resnet50", weights, small_images, in_chans)
