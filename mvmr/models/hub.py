"""The Hugging Face Hub layout of an encoder, and ``mvmr.from_pretrained``.

:class:`PretrainedEncoder` is an :class:`~mvmr.models.MVMRModel` without a projector that mixes in
``huggingface_hub.PyTorchModelHubMixin``: ``save_pretrained(folder)`` writes ``config.json`` (how to
build the encoder) and ``model.safetensors`` (weights and normalisation buffers), ready for
``upload_folder``/``push_to_hub``. :func:`from_pretrained` reads such a folder or Hub repository back
(strictly), or an mvmr backbone export. Needs ``huggingface_hub`` (``pip install 'mvmr[hub]'``).
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch
from huggingface_hub import PyTorchModelHubMixin, hf_hub_download
from huggingface_hub.errors import HfHubHTTPError

from mvmr.errors import CheckpointError
from mvmr.models.mvmr_model import MVMRModel, Projector, build_encoder, encoder_spec
from mvmr.models.state_io import load_backbone_model, load_state_dict_strict, read_state_dict
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
    """An mvmr encoder with its normalisation; ``model(images)`` gives its pooled features of images in [0, 1].

    The constructor's arguments are what ``config.json`` holds: ``encoder``, ``small_images``, ``in_chans``
    as for :func:`~mvmr.models.build_encoder`; ``mean``/``std`` default to ImageNet's for 3 channels, 0.5
    otherwise; ``feature_dim``, when given, is checked.
    """

    def __init__(
        self,
        encoder: str = "resnet50",
        small_images: bool = False,
        in_chans: int = 3,
        mean: Sequence[float] | None = None,
        std: Sequence[float] | None = None,
        feature_dim: int | None = None,
    ) -> None:
        module, dim = build_encoder(encoder, small_images=small_images, in_chans=in_chans)
        if feature_dim is not None and feature_dim != dim:
            raise CheckpointError(f"config.json says feature_dim={feature_dim}, but {encoder} gives {dim} features")
        default_mean, default_std = default_mean_std(in_chans)
        super().__init__(
            module,
            Projector("", dim),
            mean=default_mean if mean is None else mean,
            std=default_std if std is None else std,
        )

    @classmethod
    def _from_pretrained(
        cls,
        *,
        model_id: str,
        revision: str | None,
        cache_dir: str | Path | None,
        force_download: bool,
        local_files_only: bool,
        token: str | bool | None,
        map_location: str = "cpu",
        strict: bool = True,
        **model_kwargs: Any,
    ) -> PretrainedEncoder:
        """Build from ``config.json`` (done by the mixin) and load ``model.safetensors`` strictly."""
        model = cls(**model_kwargs)
        if os.path.isdir(model_id):
            weights = Path(model_id) / HF_WEIGHTS
        else:
            weights = Path(
                hf_hub_download(
                    repo_id=model_id,
                    filename=HF_WEIGHTS,
                    revision=revision,
                    cache_dir=cache_dir,
                    force_download=force_download,
                    token=token,
                    local_files_only=local_files_only,
                )
            )
        state, _ = read_state_dict(weights, map_location=map_location)
        load_state_dict_strict(model, state, source=f"{model_id}: {HF_WEIGHTS}")
        return model.eval()


def save_pretrained_encoder(
    model: MVMRModel, folder: str | os.PathLike[str], *, model_card: str | None = None
) -> list[Path]:
    """Write the encoder of ``model`` (built by :func:`~mvmr.models.build_encoder`) and its normalisation to
    ``folder`` in the Hub layout: ``config.json``, ``model.safetensors`` and ``README.md`` (``model_card``, else
    the mixin's default card). Returns the three paths."""
    spec = encoder_spec(model.encoder)
    if spec is None:
        raise CheckpointError("cannot export to the Hub layout an encoder not built by mvmr.models.build_encoder")
    hub_model = PretrainedEncoder(
        encoder=spec.name,
        small_images=spec.small_images,
        in_chans=spec.in_chans,
        mean=list(model.mean_values),
        std=list(model.std_values),
        feature_dim=spec.feature_dim,
    )
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


def from_pretrained(
    path_or_repo: str | os.PathLike[str],
    *,
    revision: str | None = None,
    map_location: str | torch.device = "cpu",
    local_files_only: bool = False,
) -> MVMRModel:
    """Load an mvmr encoder, strictly, as an :class:`~mvmr.models.MVMRModel` in eval mode whose
    ``model(images)`` (images in [0, 1], (B, C, H, W)) gives the encoder's features.

    ``path_or_repo`` is a folder written by ``mvmr export --format hf`` (or ``save_pretrained``), a
    Hub repository id such as ``user/mvmr-resnet50`` (at ``revision``; ``local_files_only``: from the
    Hugging Face cache only), or a ``backbone.safetensors`` / ``backbone.pt`` written by ``mvmr export``.
    Raises :class:`CheckpointError` when it cannot be found or reached, or the weights do not fit.
    """
    text = os.fspath(path_or_repo)
    path = Path(text).expanduser()
    if path.is_file():
        return load_backbone_model(path, map_location=map_location).eval()
    if path.is_dir():
        if not (path / "config.json").is_file() or not (path / HF_WEIGHTS).is_file():
            raise CheckpointError(
                f"{path} is not an mvmr Hub folder (it needs config.json and {HF_WEIGHTS}; "
                f"write one with mvmr export --format hf)"
            )
        text = str(path)
    elif text.startswith((".", "/", "~")) or text.count("/") != 1:
        raise CheckpointError(f"{text!r} is neither a file, a folder nor a Hugging Face repository id (user/name)")
    try:
        model = PretrainedEncoder.from_pretrained(
            text, revision=revision, local_files_only=local_files_only, map_location=str(map_location)
        )
    except (OSError, HfHubHTTPError) as exc:  # not found, offline, no access
        raise CheckpointError(
            f"cannot load {text!r} from the Hugging Face Hub ({type(exc).__name__}: {exc}); "
            f"without a network, download the repository elsewhere and pass its folder"
        ) from exc
    except TypeError as exc:  # a config.json that is not an mvmr encoder's
        raise CheckpointError(f"{text}: config.json does not describe an mvmr encoder: {exc}") from exc
    return model
