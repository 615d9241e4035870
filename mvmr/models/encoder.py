"""Encoders: torchvision ResNets or any timm model, mapping (B, C, H, W) to pooled features (B, F).

Weights are never downloaded: models are built randomly initialised, and ``weights=`` loads a
local file strictly. The built module carries an :class:`EncoderSpec` in its ``mvmr_spec``
attribute, which :func:`mvmr.models.save_backbone` writes into the export's metadata.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from torch import nn

from mvmr.errors import ConfigError

__all__ = ["EncoderSpec", "TORCHVISION_ENCODERS", "build_encoder", "encoder_spec"]

#: torchvision names :func:`build_encoder` accepts, and their feature dimension.
TORCHVISION_ENCODERS: dict[str, int] = {"resnet18": 512, "resnet34": 512, "resnet50": 2048}
_TIMM_PREFIX = "timm:"


@dataclass(frozen=True)
class EncoderSpec:
    """How an encoder was built: enough to build it again before loading its weights."""

    name: str
    small_images: bool
    in_chans: int
    feature_dim: int

    def to_dict(self) -> dict[str, Any]:
        """The spec as plain JSON-able values."""
        return asdict(self)


def encoder_spec(encoder: nn.Module) -> EncoderSpec | None:
    """The :class:`EncoderSpec` of an encoder made by :func:`build_encoder` (None for others)."""
    spec = getattr(encoder, "mvmr_spec", None)
    return spec if isinstance(spec, EncoderSpec) else None


def _torchvision_resnet(name: str, *, small_images: bool, in_chans: int) -> nn.Module:
    import torchvision.models as tvm

    model = getattr(tvm, name)(weights=None)
    if small_images:
        # CIFAR-style stem: keep the full resolution into layer1
        model.conv1 = nn.Conv2d(in_chans, 64, kernel_size=3, stride=1, padding=1, bias=False)
        model.maxpool = nn.Identity()
    elif in_chans != 3:
        model.conv1 = nn.Conv2d(in_chans, 64, kernel_size=7, stride=2, padding=3, bias=False)
    nn.init.kaiming_normal_(model.conv1.weight, mode="fan_out", nonlinearity="relu")
    model.fc = nn.Identity()
    return model


def _timm_model(name: str, *, small_images: bool, in_chans: int) -> tuple[nn.Module, int]:
    if small_images:
        raise ConfigError(
            f"small_images=True is only available for the torchvision encoders "
            f"({', '.join(TORCHVISION_ENCODERS)}), not for 'timm:{name}'; pick a timm model made for small inputs"
        )
    try:
        import timm
    except ImportError as exc:
        raise ConfigError(
            f"encoder 'timm:{name}' needs the timm package: pip install timm (or mvmr[teachers])"
        ) from exc
    try:
        model = timm.create_model(name, pretrained=False, num_classes=0, in_chans=in_chans)
    except RuntimeError as exc:  # timm: "Unknown model (...)"
        raise ConfigError(f"unknown timm encoder 'timm:{name}': {exc}") from exc
    return model, int(model.num_features)


def build_encoder(
    name: str,
    *,
    small_images: bool = False,
    in_chans: int = 3,
    weights: str | Path | None = None,
) -> tuple[nn.Module, int]:
    """Build an encoder and return ``(module, feature_dim)``; ``module(x)`` gives (B, feature_dim).

    Args:
        name: ``"resnet18"``, ``"resnet34"``, ``"resnet50"`` (torchvision, ``fc`` replaced by
            identity) or ``"timm:<model>"`` (any timm model, built with ``num_classes=0``).
        small_images: torchvision ResNets only: a 3x3 stride-1 first conv and no max-pool, for
            images of 96 px or less (CIFAR, STL10).
        in_chans: input channels (1 for grayscale); the first conv is built for it.
        weights: optional local weight file (safetensors or torch), loaded strictly.

    Raises:
        ConfigError: unknown name, bad option, or timm missing.
        CheckpointError: ``weights`` is missing, unreadable or does not fit.
    """
    if isinstance(in_chans, bool) or not isinstance(in_chans, int) or in_chans <= 0:
        raise ConfigError(f"in_chans must be a positive int, got {in_chans!r}")
    if name in TORCHVISION_ENCODERS:
        module = _torchvision_resnet(name, small_images=small_images, in_chans=in_chans)
        dim = TORCHVISION_ENCODERS[name]
    elif name.startswith(_TIMM_PREFIX) and len(name) > len(_TIMM_PREFIX):
        module, dim = _timm_model(name[len(_TIMM_PREFIX):], small_images=small_images, in_chans=in_chans)
    else:
        raise ConfigError(
            f"unknown encoder {name!r}; expected one of {', '.join(TORCHVISION_ENCODERS)} or 'timm:<model name>'"
        )
    module.mvmr_spec = EncoderSpec(name=name, small_images=bool(small_images), in_chans=in_chans, feature_dim=dim)
    if weights is not None:
        from mvmr.models.state_io import load_state_dict_strict, read_state_dict

        state, _ = read_state_dict(weights)
        load_state_dict_strict(module, state, source=f"weights file {weights}")
    return module, dim
