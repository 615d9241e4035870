"""Datasets, views and loaders.

Every dataset returns ``(image, label)``: image a float32 tensor (C, H, W) in [0, 1] (never
normalised here), label an int, -1 when unlabelled. :class:`TwoViews` turns a dataset into the
training items ``(x_clean, x_aug, index, label)``.

- :func:`build_dataset` (kinds: imagefolder, folder, stl10, cifar10, cifar100, fashion_mnist, hf)
- :class:`TwoViews` (the augmentation is :class:`mvmr.transforms.PaperAugmentation`)
- :class:`AugmentedViewBank` / :class:`StoredViews`: K augmented views of each image drawn once, the
  teacher's embeddings and the views' parameters stored, the student's view re-created from them
- :func:`make_loader`, :func:`split_train_val`, :class:`DatasetSubset`, :func:`random_subset`
"""

from __future__ import annotations

from mvmr.data.arrays import ArrayImageDataset, MemmapImages
from mvmr.data.base import ImageDataset
from mvmr.data.datasets import DATASET_KINDS, build_dataset
from mvmr.data.fashion_mnist import FASHION_MNIST_ROOT
from mvmr.data.folders import FileImageDataset
from mvmr.data.image_utils import resize_center_crop
from mvmr.data.loaders import DatasetSubset, make_loader, random_subset, seed_worker, split_train_val
from mvmr.data.pretrain_data import PretrainData
from mvmr.data.stored_views import AugmentedViewBank, StoredViews
from mvmr.data.views import MultiViews, TwoAugmentedViews, TwoViews

__all__ = [
    "ArrayImageDataset",
    "AugmentedViewBank",
    "DATASET_KINDS",
    "DatasetSubset",
    "FASHION_MNIST_ROOT",
    "FileImageDataset",
    "ImageDataset",
    "MemmapImages",
    "MultiViews",
    "PretrainData",
    "StoredViews",
    "TwoAugmentedViews",
    "TwoViews",
    "build_dataset",
    "make_loader",
    "random_subset",
    "resize_center_crop",
    "seed_worker",
    "split_train_val",
]
