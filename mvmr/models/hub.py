"""The Hugging Face Hub layout of an encoder, and ``mvmr.from_pretrained``.

:class:`PretrainedEncoder` is an :class:`~mvmr.models.MVMRModel` without a projector that mixes in
``huggingface_hub.PyTorchModelHubMixin``: ``save_pretrained(folder)`` writes ``config.json`` (how to
build the encoder: name, stem, channels, normalisation) and ``model.safetensors`` (the encoder's
weights and the normalisation buffers), a folder that ``huggingface_hub.upload_folder`` or
``push_to_hub`` publishes as it is. :func:`from_pretrained` reads such a folder or Hub repository
back (strictly), or an mvmr backbone export (``backbone.safetensors`` / ``backbone.pt``).

``model(images)`` gives the encoder's pooled features of images in [0, 1], (B, C, H, W): the
normalisation is part of the model. This module needs ``huggingface_hub`` (``pip install
'mvmr[hub]'``); the package imports it only when it is used.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Sequence

import torch
from huggingface_hub import PyTorchModelHubMixin, hf_hub_download
from huggingface_hub.errors import HfHubHTTPError
from torch import nn

from mvmr.errors import CheckpointError
from mvmr.models.checkpoint_io import load_backbone_model
from mvmr.models.encoder import build_encoder, encoder_spec
from mvmr.models.mvmr_model import MVMRModel
from mvmr.models.projector import Projector
from mvmr.models.state_io import load_state_dict_strict, read_state_dict
from mvmr.transforms.normalization import default_mean_std

__all__ = ["HF_WEIGHTS", "PretrainedEncoder", "save_pretrained_encoder", "from_pretrained"]

#: The weight file of a Hub folder (PyTorchModelHubMixin's name for it).
HF_WEIGHTS = "model.safetensors"


class PretrainedEncoder(
    MVMRModel,
    PyTorchModelHubMixin,
    library_name="mvmr",
    tags=["mvmr", "self-supervised-learning", "image-feature-extraction"],
    pipeline_tag="image-feature-extraction",
):
    """An mvmr encoder with its normalisation, saved and loaded in the Hugging Face Hub layout.

    The constructor's arguments are what ``config.json`` holds (the mixin records them).

    Args:
        encoder: ``resnet18``/``resnet34``/``resnet50`` or ``timm:<model>``.
        small_images: the CIFAR-style stem of the torchvision ResNets.
        in_chans: input channels.
        mean, std: the input normalisation; None: ImageNet's for 3 channels, 0.5 otherwise.
        feature_dim: the features' width, checked against the built encoder (None: not checked).
    """

    def __init__(self, encoder: str = "resnet50", small_images: bool = False, in_chans: int = 3,
                 mean: Sequence[float] | None = None, std: Sequence[float] | None = None,
                 feature_dim: int | None = None) -> None:
        module, dim = build_encoder(encoder, small_images=small_images, in_chans=in_chans)
        if feature_dim is not None and feature_dim != dim:
            raise CheckpointError(f"config.json says feature_dim={feature_dim}, but {encoder} gives {dim} features")
        default_mean, default_std = default_mean_std(in_chans)
        super().__init__(module, Projector("", dim), mean=default_mean if mean is None else mean,
                         std=default_std if std is None else std)

    @classmethod
    def _from_pretrained(cls, *, model_id: str, revision: str | None, cache_dir: str | Path | None,
                         force_download: bool, local_files_only: bool, token: str | bool | None,
                         map_location: str = "cpu", strict: bool = True, **model_kwargs: Any) -> "PretrainedEncoder":
        """Build from ``config.json`` (done by the mixin) and load ``model.safetensors`` strictly."""
        model = cls(**model_kwargs)
        if os.path.isdir(model_id):
            weights = Path(model_id) / HF_WEIGHTS
        else:
            weights = Path(hf_hub_download(repo_id=model_id, filename=HF_WEIGHTS, revision=revision,
                                           cache_dir=cache_dir, force_download=force_download, token=token,
                                           local_files_only=local_files_only))
        state, _ = read_state_dict(weights, map_location=map_location)
        load_state_dict_strict(model, state, source=f"{model_id}: {HF_WEIGHTS}")
        return model.eval()


def save_pretrained_encoder(model: MVMRModel, folder: str | os.PathLike[str], *,
                            model_card: str | None = None) -> list[Path]:
    """Write the encoder of ``model`` (and its normalisation) to ``folder`` in the Hub layout.

    ``folder`` gets ``config.json``, ``model.safetensors`` and ``README.md``: ``model_card`` when
    given, else the mixin's default card. Returns the three paths.

    Raises:
        CheckpointError: the encoder was not built by :func:`~mvmr.models.build_encoder`.
    """
    spec = encoder_spec(model.encoder)
    if spec is None:
        raise CheckpointError("cannot export to the Hub layout an encoder not built by mvmr.models.build_encoder")
    hub_model = PretrainedEncoder(encoder=spec.name, small_images=spec.small_images, in_chans=spec.in_chans,
                                  mean=list(model.mean_values), std=list(model.std_values),
                                  feature_dim=spec.feature_dim)
    load_state_dict_strict(hub_model.encoder, model.encoder.state_dict(), source="the encoder")
    out = Path(folder)
    out.mkdir(parents=True, exist_ok=True)
    card = out / "README.md"
    if model_card is not None:
        card.write_text(model_card, encoding="utf-8")
    elif card.exists():
        card.unlink()  # an older card: the mixin writes its default one
    hub_model.save_pretrained(out)
    return [out / "config.json", out / HF_WEIGHTS, card]


def from_pretrained(path_or_repo: str | os.PathLike[str], *, revision: str | None = None,
                    map_location: str | torch.device = "cpu", local_files_only: bool = False) -> MVMRModel:
    """Load an mvmr encoder: a Hub-layout folder, a Hub repository id, or a backbone export file.

    Returns an :class:`~mvmr.models.MVMRModel` in eval mode whose ``model(images)`` (images in
    [0, 1], (B, C, H, W)) gives the encoder's features. Weights are loaded strictly.

    Args:
        path_or_repo: a folder written by ``mvmr export --format hf`` (or ``save_pretrained``), a
            repository id such as ``user/mvmr-resnet50`` (downloaded into the Hugging Face cache),
            or a ``backbone.safetensors`` / ``backbone.pt`` written by ``mvmr export``.
        revision: the repository's branch, tag or commit.
        map_location: where the weights go.
        local_files_only: never download; use the Hugging Face cache only.

    Raises:
        CheckpointError: no such folder or file, the repository cannot be reached or lacks the
            files, or the weights do not fit.
    """
    text = os.fspath(path_or_repo)
    path = Path(text).expanduser()
    if path.is_file():
        return load_backbone_model(path, map_location=map_location).eval()
    if path.is_dir():
        if not (path / "config.json").is_file() or not (path / HF_WEIGHTS).is_file():
            raise CheckpointError(f"{path} is not an mvmr Hub folder (it needs config.json and {HF_WEIGHTS}; "
                                  f"write one with mvmr export --format hf)")
        text = str(path)
    elif text.startswith((".", "/", "~")) or text.count("/") != 1:
        raise CheckpointError(f"{text!r} is neither a file, a folder nor a Hugging Face repository id (user/name)")
    try:
        model = PretrainedEncoder.from_pretrained(text, revision=revision, local_files_only=local_files_only,
                                                  map_location=str(map_location))
    except (OSError, HfHubHTTPError) as exc:  # not found, offline, no access
        raise CheckpointError(
            f"cannot load {text!r} from the Hugging Face Hub ({type(exc).__name__}: {exc}); without a network, "
            f"download the repository elsewhere and pass its folder") from exc
    except TypeError as exc:  # a config.json that is not an mvmr encoder's
        raise CheckpointError(f"{text}: config.json does not describe an mvmr encoder: {exc}") from exc
    return model
