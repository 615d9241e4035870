"""The network MV-MR trains: encoders, the :class:`Projector`, and :class:`MVMRModel` (normalisation +
encoder + projector, a plain ``nn.Module`` usable without a trainer).

Encoders are torchvision ResNets or any timm model, mapping (B, C, H, W) to pooled features (B, F).
Weights are never downloaded: models are built randomly initialised, and ``weights=`` loads a local
file strictly. A built encoder carries an :class:`EncoderSpec` in its ``mvmr_spec`` attribute, which
:func:`mvmr.models.save_backbone` writes into the export's metadata.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn

from mvmr.errors import ConfigError
from mvmr.models.weight_files import load_state_dict_strict, read_state_dict
from mvmr.transforms.normalization import default_mean_std

__all__ = [
    "EncoderSpec",
    "TORCHVISION_ENCODERS",
    "build_encoder",
    "encoder_spec",
    "MVMRModel",
    "Projector",
    "build_model",
    "parse_projector_spec",
]

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


def encoder_spec(encoder: nn.Module) -> EncoderSpec | None:
    """The :class:`EncoderSpec` of an encoder made by :func:`build_encoder` (None for others)."""
    spec = getattr(encoder, "mvmr_spec", None)
    return spec if isinstance(spec, EncoderSpec) else None


def _torchvision_resnet(name: str, *, small_images: bool, in_chans: int) -> nn.Module:
    import torchvision.models as tvm

    model = getattr(tvm, name)(weights=None)
    if small_images:  # CIFAR-style stem: keep the full resolution into layer1
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
            f"({', '.join(TORCHVISION_ENCODERS)}), not for 'timm:{name}'; pick a timm model made for "
            f"small inputs"
        )
    try:
        import timm
    except ImportError as exc:
        raise ConfigError(
            f"encoder 'timm:{name}' needs the timm package: pip install timm (or mvmr[teachers])"
        ) from exc
    try:
        model: Any = timm.create_model(name, pretrained=False, num_classes=0, in_chans=in_chans)  # has num_features
    except RuntimeError as exc:  # timm: "Unknown model (...)"
        raise ConfigError(f"unknown timm encoder 'timm:{name}': {exc}") from exc
    return model, int(model.num_features)


def build_encoder(
    name: str, *, small_images: bool = False, in_chans: int = 3, weights: str | Path | None = None
) -> tuple[nn.Module, int]:
    """Build an encoder and return ``(module, feature_dim)``; ``module(x)`` gives (B, feature_dim).

    ``name`` is ``"resnet18"``, ``"resnet34"``, ``"resnet50"`` (torchvision, ``fc`` replaced by identity) or
    ``"timm:<model>"`` (built with ``num_classes=0``). ``small_images`` (torchvision only): a 3x3 stride-1
    first conv and no max-pool, for images of 96 px or less. ``weights``: a local file, loaded strictly.
    """
    if isinstance(in_chans, bool) or not isinstance(in_chans, int) or in_chans <= 0:
        raise ConfigError(f"in_chans must be a positive int, got {in_chans!r}")
    if name in TORCHVISION_ENCODERS:
        module = _torchvision_resnet(name, small_images=small_images, in_chans=in_chans)
        dim = TORCHVISION_ENCODERS[name]
    elif name.startswith(_TIMM_PREFIX) and len(name) > len(_TIMM_PREFIX):
        module, dim = _timm_model(name[len(_TIMM_PREFIX) :], small_images=small_images, in_chans=in_chans)
    else:
        raise ConfigError(
            f"unknown encoder {name!r}; expected one of {', '.join(TORCHVISION_ENCODERS)} or 'timm:<model name>'"
        )
    module.mvmr_spec = EncoderSpec(  # type: ignore[assignment]  # nn.Module types attributes as Tensor | Module
        name=name, small_images=bool(small_images), in_chans=in_chans, feature_dim=dim
    )
    if weights is not None:
        state, _ = read_state_dict(weights)
        load_state_dict_strict(module, state, source=f"weights file {weights}")
    return module, dim


def parse_projector_spec(spec: str) -> list[int]:
    """``"8192-8192-8192"`` -> ``[8192, 8192, 8192]``; ``""`` -> ``[]``.

    Raises:
        ConfigError: naming the spec when it is not dash-separated positive integers.
    """
    if not isinstance(spec, str):
        raise ConfigError(f"projector spec must be a string like '8192-8192-8192', got {spec!r}")
    text = spec.strip()
    if not text:
        return []
    sizes: list[int] = []
    for part in text.split("-"):
        part = part.strip()
        if not (part.isascii() and part.isdigit()) or int(part) <= 0:
            raise ConfigError(
                f"invalid projector spec {spec!r}: expected dash-separated positive sizes like "
                f"'8192-8192-8192' (or '' for none), got the part {part!r}"
            )
        sizes.append(int(part))
    return sizes


class Projector(nn.Module):
    """The projector: an MLP from encoder features to the embeddings the loss sees.

    The paper's spec (section 7: "two linear layers of the size 8192 followed by batch normalization
    and ReLU and output linear layer") is ``"8192-8192-8192"``: every size but the last is a hidden
    Linear(no bias: the batch norm cancels it)-BatchNorm1d-ReLU block, the last a plain Linear.
    ``"512"`` is a single Linear; ``""`` is the identity (the loss then sees the encoder features).

    ``in_dim`` is the encoder's feature dimension; ``sizes`` the parsed spec, ``out_dim`` the embedding
    dimension (``in_dim`` for the identity).
    """

    def __init__(self, spec: str, in_dim: int) -> None:
        super().__init__()
        if isinstance(in_dim, bool) or not isinstance(in_dim, int) or in_dim <= 0:
            raise ConfigError(f"projector in_dim must be a positive int, got {in_dim!r}")
        self.spec = spec
        self.sizes = parse_projector_spec(spec)
        self.in_dim = in_dim
        layers: list[nn.Module] = []
        prev = in_dim
        for size in self.sizes[:-1]:
            layers += [nn.Linear(prev, size, bias=False), nn.BatchNorm1d(size), nn.ReLU(inplace=True)]
            prev = size
        if self.sizes:
            layers.append(nn.Linear(prev, self.sizes[-1]))
        self.layers = nn.Sequential(*layers)
        self.out_dim = self.sizes[-1] if self.sizes else in_dim

    def forward(self, h: torch.Tensor) -> torch.Tensor:
        """(B, in_dim) features -> (B, out_dim) embeddings."""
        if h.ndim != 2 or h.shape[1] != self.in_dim:
            raise ValueError(f"projector expects features of shape (B, {self.in_dim}), got {tuple(h.shape)}")
        return self.layers(h)

    def extra_repr(self) -> str:
        return f"spec={self.spec!r}, in_dim={self.in_dim}, out_dim={self.out_dim}"


class MVMRModel(nn.Module):
    """The network MV-MR trains: images in [0, 1] -> normalise -> encoder -> projector.

    Args:
        encoder: maps normalised (B, C, H, W) to pooled features (B, F).
        projector: maps (B, F) to embeddings (B, D) (``Projector("", F)`` for none).
        mean, std: per-channel normalisation, stored as buffers (saved with the model).
    """

    mean: torch.Tensor
    std: torch.Tensor

    def __init__(
        self, encoder: nn.Module, projector: nn.Module, *, mean: Sequence[float], std: Sequence[float]
    ) -> None:
        super().__init__()
        mean_t = torch.as_tensor(tuple(mean), dtype=torch.float32)
        std_t = torch.as_tensor(tuple(std), dtype=torch.float32)
        if mean_t.ndim != 1 or mean_t.shape != std_t.shape or len(mean_t) == 0:
            raise ConfigError(f"mean and std must be equal-length sequences of floats, got mean={mean!r}, std={std!r}")
        if any(float(v) <= 0 for v in std):  # on the Python values: the module may be built on the meta device
            raise ConfigError(f"std must be positive, got {std!r}")
        self.encoder = encoder
        self.projector = projector
        #: the normalisation as given (exact floats, for exports); the buffers below apply it
        self.mean_values: tuple[float, ...] = tuple(float(v) for v in mean)
        self.std_values: tuple[float, ...] = tuple(float(v) for v in std)
        self.register_buffer("mean", mean_t.view(1, -1, 1, 1))
        self.register_buffer("std", std_t.view(1, -1, 1, 1))

    @property
    def channels(self) -> int:
        """The number of input channels the normalisation expects."""
        return int(self.mean.shape[1])

    @property
    def spec(self) -> EncoderSpec | None:
        """The encoder's build spec (None for an encoder not made by ``build_encoder``)."""
        return encoder_spec(self.encoder)

    def normalize(self, x: torch.Tensor) -> torch.Tensor:
        """(x - mean) / std, after checking that ``x`` is a (B, C, H, W) float batch."""
        if x.ndim != 4 or x.shape[1] != self.channels or not x.is_floating_point():
            raise ValueError(
                f"expected float images in [0, 1] of shape (B, {self.channels}, H, W), got {tuple(x.shape)} {x.dtype}"
            )
        return (x - self.mean.to(x.dtype)) / self.std.to(x.dtype)

    def features(self, x: torch.Tensor) -> torch.Tensor:
        """Pooled encoder features (B, F) of images in [0, 1] (what downstream tasks use)."""
        return self.encoder(self.normalize(x))

    def forward_with_features(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """``(features, embeddings)`` in one pass (the online probe reads the features)."""
        h = self.features(x)
        return h, self.projector(h)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Embeddings z (B, D) of images in [0, 1]."""
        return self.projector(self.features(x))

    def backbone_state_dict(self) -> dict[str, torch.Tensor]:
        """The encoder's state dict alone (keys as in the bare encoder, e.g. torchvision's)."""
        return self.encoder.state_dict()


def build_model(
    encoder: str = "resnet18",
    projector: str = "8192-8192-8192",
    *,
    small_images: bool = False,
    in_chans: int = 3,
    mean: Sequence[float] | None = None,
    std: Sequence[float] | None = None,
    weights: str | Path | None = None,
) -> MVMRModel:
    """Build encoder + projector into an :class:`MVMRModel`.

    ``mean``/``std`` default to ImageNet's for 3 channels and 0.5 otherwise. ``weights`` is an
    optional local encoder weight file (see :func:`build_encoder`).
    """
    enc, dim = build_encoder(encoder, small_images=small_images, in_chans=in_chans, weights=weights)
    default_mean, default_std = default_mean_std(in_chans)
    mean, std = (default_mean if mean is None else tuple(mean)), (default_std if std is None else tuple(std))
    if len(mean) != in_chans or len(std) != in_chans:
        raise ConfigError(f"mean/std need {in_chans} values (in_chans={in_chans}), got mean={mean!r}, std={std!r}")
    return MVMRModel(enc, Projector(projector, dim), mean=mean, std=std)
