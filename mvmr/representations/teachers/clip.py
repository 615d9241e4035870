"""CLIP image towers as teachers: ``open_clip:<model>`` and ``hf-clip:<local dir>``.

The paper (section 6.2) distils CLIP ViT-B-16, whose image embedding is 512-d. Only the image
tower is kept (the text tower is dropped after loading, which halves the memory of ViT-B-16).

Preprocessing is CLIP's own: resize the shorter side to the input size (bicubic), centre crop,
normalise with the CLIP statistics (``OPENAI_DATASET_MEAN/STD`` unless the checkpoint's config
says otherwise). The authors' code normalised CLIP inputs with the ImageNet statistics; we do not.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import torch
from torch import nn

from mvmr.errors import CheckpointError, ConfigError
from mvmr.representations.teachers.base import Teacher
from mvmr.representations.teachers.preprocess import ImagePreprocess
from mvmr.representations.teachers.weights import (
    WeightsUnavailableError,
    import_optional,
    random_weights,
    require_weights_file,
    weights_fingerprint,
)

__all__ = ["CLIP_MEAN", "CLIP_STD", "build_open_clip_teacher", "build_hf_clip_teacher", "HFClipImageEmbeds"]

#: OpenAI CLIP normalisation (open_clip's ``OPENAI_DATASET_MEAN/STD``, transformers' CLIP defaults).
CLIP_MEAN: tuple[float, float, float] = (0.48145466, 0.4578275, 0.40821073)
CLIP_STD: tuple[float, float, float] = (0.26862954, 0.26130258, 0.27577711)

_PIL_RESAMPLE = {0: "nearest", 2: "bilinear", 3: "bicubic"}


def build_open_clip_teacher(
    model_name: str,
    *,
    spec: str,
    weights: str | Path | None = None,
    allow_random: bool = False,
    tag: str | None = None,
    input_size: int | None = None,
    cache_dir: str | Path | None = None,
) -> Teacher:
    """The image tower (``encode_image``) of the open_clip model ``model_name`` (e.g. ``"ViT-B-16"``) as a teacher.

    Args:
        weights: local open_clip checkpoint file, or an open_clip pretrained tag (download path).
        allow_random: with ``weights=None``, use random weights (tests only).
        tag: the pretrained tag the local file comes from, to use its preprocessing config
            (read from open_clip's table, nothing downloaded).
        input_size: force another image size (``force_image_size``; ViTs resize their
            position embeddings when loading).
        cache_dir: open_clip download cache (tags only).
    """
    open_clip = import_optional("open_clip", kind=spec, package="open_clip_torch")
    if model_name not in open_clip.list_models():
        raise ConfigError(
            f"unknown open_clip model {model_name!r} in teacher spec {spec!r}; e.g. ViT-B-16, "
            f"ViT-B-32, RN50 (open_clip.list_models() lists all)"
        )
    known_tags = list(open_clip.list_pretrained_tags_by_model(model_name))
    settings: dict[str, Any] = {"kind": "open_clip", "model": model_name}
    pretrained: str | None
    if weights is None:
        tags = ", ".join(known_tags) or "none known"
        settings.update(
            random_weights(
                spec,
                allow_random,
                "weights=<local open_clip checkpoint file> (downloaded on a "
                "machine with internet, e.g. open_clip_pytorch_model.bin of laion/CLIP-ViT-B-16-"
                f"laion2B-s34B-b88K), an open_clip tag ({tags}) to use open_clip's "
                "cache/download",
            )
        )
        pretrained = None
    elif str(weights) in known_tags and not Path(weights).is_file():
        pretrained = str(weights)
        tag = pretrained
        settings["weights"] = {"open_clip_tag": pretrained}
    else:
        hint = (
            f"Known open_clip tags for {model_name}: {', '.join(known_tags) or 'none'}; on a machine with "
            f"internet open_clip.create_model({model_name!r}, pretrained='<tag>') stores the file in the Hugging "
            f"Face cache."
        )
        file = require_weights_file(weights, spec=spec, hint=hint)
        pretrained = str(file)
        settings["weights"] = weights_fingerprint(file)
    force_pp: dict[str, Any] = {}
    if tag is not None:
        tag_cfg = open_clip.get_pretrained_cfg(model_name, tag)
        if not tag_cfg:
            raise ConfigError(f"unknown open_clip tag {tag!r} for {model_name}; known: {', '.join(known_tags)}")
        force_pp = {k: tag_cfg[k] for k in ("mean", "std", "interpolation", "resize_mode") if k in tag_cfg}
        settings["tag"] = tag
    try:
        model = open_clip.create_model(
            model_name,
            pretrained=pretrained,
            force_image_size=input_size,
            force_preprocess_cfg=force_pp or None,
            weights_only=True,
            cache_dir=None if cache_dir is None else str(cache_dir),
        )
    except RuntimeError as exc:
        if pretrained is not None and pretrained in known_tags:
            raise WeightsUnavailableError(
                f"could not load open_clip weights {model_name}/{pretrained} (teacher "
                f"{spec!r}): not in the local cache and the download failed ({exc}). On this "
                "offline machine, copy the checkpoint file here and pass weights=<file> "
                f"(with tag={pretrained!r} to keep its preprocessing)."
            ) from exc
        raise CheckpointError(f"open_clip could not build {model_name!r} for teacher {spec!r}: {exc}") from exc
    cfg = dict(open_clip.get_model_preprocess_cfg(model))
    visual = model.visual
    del model  # keep only the image tower
    size = cfg.get("size", 224)
    if not isinstance(size, int):
        if size[0] != size[1]:
            raise ConfigError(f"open_clip model {model_name!r} expects a non-square input {tuple(size)}")
        size = int(size[0])
    resize_mode = cfg.get("resize_mode", "shortest")
    if resize_mode != "shortest":
        settings["open_clip_resize_mode_replaced"] = resize_mode  # 'squash'/'longest': we use shortest + crop
    preprocess = ImagePreprocess(
        input_size=size,
        resize_size=size,
        interpolation=str(cfg.get("interpolation", "bicubic")),
        mean=tuple(cfg.get("mean", CLIP_MEAN)),
        std=tuple(cfg.get("std", CLIP_STD)),
    )
    embed_dim = int(getattr(visual, "output_dim", 0) or _probe_dim(visual, size))
    return Teacher(net=visual, preprocess=preprocess, embed_dim=embed_dim, spec=spec, settings=settings)


def _probe_dim(net: nn.Module, size: int) -> int:
    net.eval()
    with torch.no_grad():
        out = net(torch.zeros(1, 3, size, size))
    if isinstance(out, (tuple, list)):
        out = out[0]
    return int(out.reshape(1, -1).shape[1])


class HFClipImageEmbeds(nn.Module):
    """``CLIPVisionModelWithProjection(pixel_values).image_embeds`` as a plain module."""

    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.model = model

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """(B, 3, S, S) normalised images -> (B, projection_dim)."""
        return self.model(pixel_values=x).image_embeds


def _hf_size(value: Any, what: str) -> int | None:
    """An int size from a preprocessor-config entry (int, or dict with shortest_edge / height+width)."""
    if value is None:
        return None
    if isinstance(value, int):
        return value
    if isinstance(value, dict):
        if "shortest_edge" in value:
            return int(value["shortest_edge"])
        if "height" in value and "width" in value:
            if int(value["height"]) != int(value["width"]):
                raise ConfigError(f"preprocessor_config.json: non-square {what} {value} is not supported")
            return int(value["height"])
    raise ConfigError(f"preprocessor_config.json: cannot read {what} from {value!r}")


def _hf_preprocess(folder: Path, image_size: int) -> tuple[ImagePreprocess, str]:
    config_file = folder / "preprocessor_config.json"
    if not config_file.is_file():
        return (
            ImagePreprocess(input_size=image_size, resize_size=image_size, mean=CLIP_MEAN, std=CLIP_STD),
            "model config",
        )
    try:
        pp = json.loads(config_file.read_text())
    except (OSError, json.JSONDecodeError) as exc:
        raise CheckpointError(f"cannot read {config_file}: {exc}") from exc
    crop = _hf_size(pp.get("crop_size"), "crop_size") if pp.get("do_center_crop", True) else None
    resize = _hf_size(pp.get("size"), "size") if pp.get("do_resize", True) else None
    crop = crop or resize or image_size
    resize = max(resize or crop, crop)
    interpolation = _PIL_RESAMPLE.get(int(pp.get("resample", 3)), "bicubic")
    preprocess = ImagePreprocess(
        input_size=crop,
        resize_size=resize,
        interpolation=interpolation,
        mean=tuple(pp.get("image_mean", CLIP_MEAN)),
        std=tuple(pp.get("image_std", CLIP_STD)),
    )
    return preprocess, "preprocessor_config.json"


def build_hf_clip_teacher(
    directory: str, *, spec: str, weights: str | Path | None = None, allow_random: bool = False
) -> Teacher:
    """A transformers CLIP vision tower with projection (embedding: ``image_embeds``), from a local
    ``save_pretrained`` directory of a ``CLIPVisionModelWithProjection`` or a full ``CLIPModel``.

    Every weight of the vision tower must be in the directory (a partially random teacher is refused).
    Preprocessing from its ``preprocessor_config.json`` when present, else the config's ``image_size`` and
    the CLIP statistics. ``weights`` must be None; ``allow_random`` is only accepted for a uniform interface.
    """
    if weights is not None:
        raise ConfigError(f"teacher {spec!r} reads its weights from the directory; do not pass weights=")
    folder = Path(directory).expanduser()
    if not folder.is_dir() or not (folder / "config.json").is_file():
        what = "has no config.json" if folder.is_dir() else "does not exist"
        raise WeightsUnavailableError(
            f"hf-clip teacher directory {folder.resolve()} {what}. Put a transformers CLIP checkpoint there (saved "
            f"on a machine with internet with CLIPVisionModelWithProjection.from_pretrained("
            f"'openai/clip-vit-base-patch16').save_pretrained(dir), plus the CLIPImageProcessor's "
            f"preprocessor_config.json)."
        )
    transformers = import_optional("transformers", kind=spec)
    try:
        model, info = transformers.CLIPVisionModelWithProjection.from_pretrained(
            str(folder), local_files_only=True, output_loading_info=True
        )
    except (OSError, ValueError) as exc:
        raise CheckpointError(f"cannot load the hf-clip teacher from {folder}: {exc}") from exc
    missing = list(info.get("missing_keys", []))
    if missing:
        shown = ", ".join(sorted(missing)[:5])
        raise CheckpointError(
            f"hf-clip teacher {folder}: {len(missing)} weights are missing from the checkpoint and "
            f"would be random ({shown}{(', ...' if len(missing) > 5 else '')})"
        )
    image_size = int(model.config.image_size)
    preprocess, source = _hf_preprocess(folder, image_size)
    weight_files = sorted(folder.glob("*.safetensors")) or sorted(folder.glob("*.bin"))
    settings = {
        "kind": "hf-clip",
        "model": folder.name,
        "preprocess_source": source,
        "weights": [weights_fingerprint(f) for f in weight_files],
    }
    return Teacher(
        net=HFClipImageEmbeds(model),
        preprocess=preprocess,
        embed_dim=int(model.config.projection_dim),
        spec=spec,
        settings=settings,
    )
