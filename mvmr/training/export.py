"""Read an mvmr pretraining checkpoint back into an :class:`~mvmr.models.MVMRModel`, and export it."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch

from mvmr.config import Config, from_dict, save_config
from mvmr.errors import CheckpointError, ConfigError

__all__ = ["read_checkpoint", "model_from_checkpoint", "export_checkpoint"]


def read_checkpoint(path: str | Path) -> dict[str, Any]:
    """A Lightning checkpoint of ``mvmr pretrain``, loaded with ``weights_only=True``."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"checkpoint not found: {path}")
    try:
        ckpt = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:  # corrupt file, or a pickle that weights_only refuses
        raise CheckpointError(f"cannot read checkpoint {path} (weights_only=True): {err}") from err
    if not isinstance(ckpt, dict) or not isinstance(ckpt.get("state_dict"), dict):
        raise CheckpointError(f"{path} is not a Lightning checkpoint (no state_dict)")
    if not isinstance(ckpt.get("hyper_parameters"), dict):
        raise CheckpointError(f"{path} is not an mvmr pretraining checkpoint (no hyper_parameters with the config)")
    return ckpt


def model_from_checkpoint(path: str | Path) -> tuple[Any, Config]:
    """``(MVMRModel with the checkpoint's weights, its Config)``; the load is strict."""
    from mvmr.models import build_model, load_state_dict_strict

    ckpt = read_checkpoint(path)
    try:
        config = from_dict(ckpt["hyper_parameters"])
    except ConfigError as err:
        raise CheckpointError(f"{path}: the config stored in the checkpoint is invalid: {err}") from err
    state = {k[len("model."):]: v for k, v in ckpt["state_dict"].items() if k.startswith("model.")}
    if "mean" not in state:
        raise CheckpointError(f"{path}: no model.mean buffer; not an MVMRModel checkpoint")
    m = config.model
    model = build_model(m.encoder, m.projector, small_images=m.small_images, in_chans=int(state["mean"].shape[1]),
                        mean=m.mean, std=m.std)
    load_state_dict_strict(model, state, source=f"checkpoint {path}")
    return model.eval(), config


def export_checkpoint(path: str | Path, out_dir: str | Path) -> list[Path]:
    """Write ``backbone.safetensors``, ``backbone.pt`` and ``config.yaml`` of a checkpoint into ``out_dir``."""
    from mvmr.models import save_backbone

    model, config = model_from_checkpoint(path)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    meta = {"source": "mvmr pretrain", "checkpoint": str(Path(path).name), "projector": config.model.projector}
    return [
        save_backbone(model, out / "backbone.safetensors", format="safetensors", metadata=meta),
        save_backbone(model, out / "backbone.pt", format="pt", metadata=meta),
        save_config(config, out / "config.yaml"),
    ]
