"""From a config to the pieces of a run: the data with the method's views (:func:`build_data`) and
the training module with the method's parts (:func:`build_module`). The method decides both
(:mod:`mvmr.methods`); MV-MR's fixed targets are built by :mod:`mvmr.methods.targets`."""

from __future__ import annotations

import warnings
from typing import cast

import numpy as np
from torch import nn

from mvmr.config import Config, to_dict
from mvmr.data import DatasetSubset, ImageDataset, PretrainData, build_dataset, split_train_val
from mvmr.errors import ConfigError, DataError
from mvmr.methods import get_method
from mvmr.methods.targets import (
    TargetSources,
    build_regression,
    build_representations,
    build_sources,
    target_settings,
    teacher_cache_dir,
    teacher_source,
)
from mvmr.models import MVMRModel
from mvmr.training.module import PretrainingModule
from mvmr.transforms import PaperAugmentation

__all__ = [
    "PretrainData",
    "TargetSources",
    "build_data",
    "build_representations",
    "build_sources",
    "build_module",
    "build_regression",
    "teacher_cache_dir",
    "teacher_source",
    "target_settings",
]


def build_data(config: Config) -> PretrainData:
    """The training data of ``config``, with the views of ``config.method``."""
    d, seed = config.data, config.trainer.seed
    # decoded once per item, at full resolution: the method's views take their random resized crop
    # from the whole image; the clean view (and the cache, and the probe) is its resize + centre crop
    images = build_dataset(
        d.kind,
        d.root,
        split=d.split,
        size=None,
        download=d.download,
        skip_corrupt=d.skip_corrupt,
        channels=d.channels,
        name=d.name,
        image_column=d.image_column,
        label_column=d.label_column,
    )
    full: ImageDataset | DatasetSubset = images
    base: ImageDataset | DatasetSubset = images.with_size(d.image_size)
    if d.subset is not None and d.subset < len(base):
        chosen = np.sort(np.random.default_rng(seed).choice(len(base), size=d.subset, replace=False))
        full, base = DatasetSubset(full, chosen), DatasetSubset(base, chosen)
    n = len(base)
    labels = getattr(base, "labels", None)
    labels = np.asarray(labels, dtype=np.int64) if labels is not None else np.full(n, -1, dtype=np.int64)
    classes = list(getattr(base, "classes", []) or [])
    num_classes = config.probe.num_classes or (len(classes) if classes else None)
    if num_classes is None and (labels >= 0).any():
        num_classes = int(labels.max()) + 1
    train_idx, val_idx = np.arange(n, dtype=np.int64), np.empty(0, dtype=np.int64)
    labelled = np.flatnonzero(labels >= 0)
    if config.probe.enabled and num_classes and d.val_fraction > 0 and len(labelled) >= 2:
        # hold the probe's validation images out of the LABELLED training images (never the test set)
        try:
            _, val_sub = split_train_val(DatasetSubset(base, labelled), d.val_fraction, seed)
        except DataError as err:  # too few labelled images for even one per class
            warnings.warn(f"no validation images for the online probe ({err}); raise data.val_fraction", stacklevel=2)
        else:
            val_idx = labelled[val_sub.indices]
            train_idx = np.setdiff1d(train_idx, val_idx, assume_unique=True)
    if len(train_idx) < d.batch_size:
        raise DataError(
            f"data.batch_size={d.batch_size} is larger than the {len(train_idx)} training images of "
            f"{d.kind} {d.root!r} split {d.split!r}; lower data.batch_size"
        )
    a = d.augmentation
    augmentation = PaperAugmentation(
        d.image_size,
        crop=a.crop,
        flip=a.flip,
        color=a.color,
        grayscale=a.grayscale,
        blur=a.blur,
        crop_scale=(a.crop_scale[0], a.crop_scale[1]),
    )
    views = get_method(config.method).views(config, full, augmentation=augmentation, seed=seed)
    channels = int(base[0][0].shape[0])
    return PretrainData(base, views, train_idx, val_idx, num_classes or None, channels, full, augmentation)


def build_module(
    config: Config, data: PretrainData, model: nn.Module | None = None, feature_dim: int | None = None
) -> PretrainingModule:
    """The training module of ``config.method``: the model the method builds (``model`` replaces it)
    and the method's own parts."""
    method = get_method(config.method)
    if model is None:
        m = config.model
        if m.mean is not None and len(m.mean) != data.channels:
            raise ConfigError(f"model.mean: {len(m.mean)} values for {data.channels}-channel images")
        model = method.build_model(config, data.channels)
    if feature_dim is None:
        spec = getattr(model, "spec", None)
        if spec is None:
            raise ConfigError("feature_dim is needed for a model whose encoder was not made by build_encoder")
        feature_dim = spec.feature_dim
    model = cast(MVMRModel, model)  # any module with MVMRModel's features() and forward_with_features()
    return PretrainingModule(
        model,
        method.from_config(config, model=model, data=data, feature_dim=feature_dim),
        feature_dim=feature_dim,
        optim=config.optim,
        probe=config.probe,
        num_classes=data.num_classes,
        batch_size=config.data.batch_size,
        seed=config.trainer.seed,
        hparams=to_dict(config),
        skip_nonfinite_batches=config.trainer.skip_nonfinite_batches,
    )
