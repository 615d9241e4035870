"""The schema of a run's configuration: its sections, every option typed, bounded and documented.

The sections are plain :func:`dataclasses.dataclass` es: the library builds, copies
(:func:`dataclasses.replace`) and compares them like any dataclass, and nothing is checked when one
is built in Python. Each option declares what it may be on its field, ``Annotated[type,
Field(bounds, description=...)]``; :mod:`mvmr.config.validate` enforces that with pydantic, and
``pydantic.TypeAdapter(Config).json_schema()`` lists every option with its description, type,
bounds and default. Unknown keys are errors in every section.

The value types (:data:`Int`, :data:`Bool`, :data:`Float`, :data:`Text`) are in
:mod:`mvmr.config.fields`; the sections of how a run trains (optimiser, trainer, online probe) in
:mod:`mvmr.config.run_sections`.
"""

from __future__ import annotations

import re
from dataclasses import field
from typing import Annotated, Any, Literal

from pydantic import Field

from .fields import NO_BOOL, Bool, Float, Int, Text, section, valid
from .run_sections import OptimConfig, ProbeConfig, TrainerConfig

__all__ = [
    "AugmentationConfig",
    "DataConfig",
    "ModelConfig",
    "LossConfig",
    "RepresentationSpec",
    "RepresentationsConfig",
    "RegressionConfig",
    "OptimConfig",
    "TrainerConfig",
    "ProbeConfig",
    "TeacherConfig",
    "EvaluationConfig",
    "Config",
    "Int",
    "Bool",
    "Float",
    "Text",
    "Objective",
    "TargetView",
    "OBJECTIVES",
    "VIEWS",
]


@section
class AugmentationConfig:
    """Switches of the paper's augmentation (section 7) of the augmented view."""

    crop: Annotated[Bool, Field(description="random resized crop")] = True
    crop_scale: Annotated[
        list[Float],
        valid(lambda s: len(s) == 2 and 0.0 < s[0] <= s[1] <= 1.0, "expected [min, max] with 0 < min <= max <= 1"),
        Field(
            description="the crop's area as a fraction of the image, [min, max] (torchvision's "
            "default, which the paper does not change)"
        ),
    ] = field(default_factory=lambda: [0.08, 1.0])
    flip: Annotated[Bool, Field(description="horizontal flip, p = 0.5")] = True
    color: Annotated[Bool, Field(description="colour jitter 0.8/0.8/0.8/0.2, p = 0.8")] = True
    grayscale: Annotated[Bool, Field(description="grayscale, p = 0.2")] = True
    blur: Annotated[Bool, Field(description="Gaussian blur, kernel 0.1 of the image size, sigma in [0.1, 2]")] = True


@section
class DataConfig:
    """The pretraining data. ``batch_size`` is per process (global = batch_size x devices x nodes)."""

    kind: Annotated[
        Text,
        Field(
            description="imagefolder, folder, stl10, cifar10, cifar100, fashion_mnist or hf "
            "(see mvmr.data.build_dataset)"
        ),
    ] = "imagefolder"
    root: Annotated[
        Text | None,
        Field(
            description="dataset folder; null = the kind's default (Fashion-MNIST: "
            "Debian's package); not used by kind hf"
        ),
    ] = "data"
    split: Annotated[Text, Field(description="e.g. train, or train+unlabeled for STL-10")] = "train"
    name: Annotated[
        Text | None,
        Field(
            description="kind hf: a Hugging Face Hub dataset id (user/name) or a folder "
            "written by datasets' save_to_disk"
        ),
    ] = None
    image_column: Annotated[Text, Field(min_length=1, description="kind hf: the column holding the images")] = "image"
    label_column: Annotated[
        Text | None, Field(description="kind hf: the column of integer or class labels; null = unlabelled")
    ] = "label"
    image_size: Annotated[Int, Field(ge=8, description="side of the square images, in pixels")] = 96
    channels: Annotated[
        Literal[1, 3] | None,
        NO_BOOL,
        Field(description="convert the images to 1 or 3 channels; null = as stored"),
    ] = 3
    batch_size: Annotated[Int, Field(ge=2, description="images per step and process")] = 256
    num_workers: Annotated[Int, Field(ge=0, description="DataLoader worker processes")] = 4
    skip_corrupt: Annotated[Bool, Field(description="folder kinds: skip unreadable images instead of failing")] = False
    download: Annotated[Bool, Field(description="let torchvision download missing STL-10/CIFAR/Fashion-MNIST")] = False
    subset: Annotated[
        Int | None, Field(ge=2, description="pretrain on this many random images (seeded by trainer.seed); null = all")
    ] = None
    val_fraction: Annotated[
        Float,
        Field(ge=0.0, lt=1.0, description="fraction of the labelled images held out to validate the online probe"),
    ] = 0.05
    augmentation: AugmentationConfig = field(default_factory=AugmentationConfig)


@section
class ModelConfig:
    """The encoder and its projector."""

    encoder: Annotated[Text, Field(description="backbone, e.g. resnet18 or resnet50")] = "resnet50"
    small_images: Annotated[Bool, Field(description="3x3 stem without max-pool, for ~32 px images")] = False
    projector: Annotated[
        Text,
        valid(
            lambda p: re.fullmatch(r"(\d+(-\d+)*)?", p) and all(int(w) > 0 for w in p.split("-") if w),
            "expected widths like '8192-8192-8192' or ''",
        ),
        Field(description="widths like 8192-8192-8192; '' = no projector"),
    ] = "8192-8192-8192"
    sync_batchnorm: Annotated[Bool, Field(description="synchronise BatchNorm statistics across GPUs")] = False
    mean: Annotated[
        list[Float] | None,
        Field(description="input normalisation mean per channel; null = ImageNet's for 3 channels, 0.5 otherwise"),
    ] = None
    std: Annotated[
        list[Annotated[Float, Field(gt=0.0)]] | None,
        Field(description="input normalisation std per channel, given together with mean"),
    ] = None


@section
class LossConfig:
    """Arguments of :class:`mvmr.losses.MVMRLoss`: L = L1 + L2 + L3 (paper eqs. 4-10)."""

    lambda_: Annotated[Float, Field(ge=0.0, description="L1: weight of the MSE between the views")] = 1.0
    mu: Annotated[Float, Field(ge=0.0, description="L1: weight of each view's variance hinge")] = 1.0
    alpha: Annotated[Float, Field(ge=0.0, description="L2: weight of 1 - dCor between the views")] = 1.0
    beta: Annotated[
        Float | dict[str, Float],
        Field(description="L3: beta_k of every representation, or a mapping name -> beta_k (times each item's weight)"),
    ] = 1.0
    gamma: Annotated[Float, Field(ge=0.0, description="target std of the variance hinge")] = 1.0
    eps: Annotated[Float, Field(gt=0.0, description="added to the variance before its square root")] = 1e-4
    l3: Annotated[
        Literal["maximize", "minimize"],
        Field(description="maximize dCor with the representations (the paper) or minimize it (the authors' code)"),
    ] = "maximize"
    squared: Annotated[Bool, Field(description="dCor as R^2, eq. 2 (the paper), or R (the authors' code)")] = True
    mse: Annotated[
        Literal["mean", "sum"],
        Field(
            description="mean over the B*D elements (VICReg, the authors' code) "
            "or sum over dimensions (eq. 4 read literally)"
        ),
    ] = "mean"
    gather_distributed: Annotated[
        Bool, Field(description="all-gather across processes: dCor and the variance see the global batch")
    ] = True


#: How the student learns a fixed target (a hand-crafted representation or a teacher):
#: ``dcor``: beta_k (1 - dCor(z_aug, z*_k)), the paper's L3; ``cosine``: a regression head on the student
#: predicts z*_k with 2 - 2 cos (SimReg), weighted by beta_k too; ``dcor+cosine``: both.
Objective = Literal["dcor", "cosine", "dcor+cosine"]
OBJECTIVES: tuple[str, ...] = ("dcor", "cosine", "dcor+cosine")
#: Which image a fixed target describes: ``clean``, the clean view x (the paper; cacheable), or
#: ``augmented``, the very augmented view the student sees (computed on it at every step).
TargetView = Literal["clean", "augmented"]
VIEWS: tuple[str, ...] = ("clean", "augmented")


@section
class RepresentationSpec:
    """One representation Z*_k of L3: registry name, weight beta_k, constructor arguments, and how the
    student learns it (``objective``) from which image (``view``)."""

    name: Annotated[Text, Field(description="pixels, scatnet, augmented_pixels, hog, local_std or a plugin's")] = (
        "pixels"
    )
    weight: Annotated[Float, Field(ge=0.0, description="multiplies the representation's beta_k")] = 1.0
    kwargs: Annotated[dict[str, Any], Field(description="constructor arguments, e.g. {orientations: 24}")] = field(
        default_factory=dict
    )
    objective: Annotated[
        Objective,
        Field(
            description="dcor: beta_k (1 - dCor(z_aug, z*_k)) (the paper); cosine: a "
            "regression head predicts z*_k with 2 - 2 cos (the regression "
            "section); dcor+cosine: both"
        ),
    ] = "dcor"
    view: Annotated[
        TargetView,
        Field(
            description="the image z*_k describes: clean (the paper; cacheable) or "
            "augmented (the student's own augmented view, computed live at "
            "every step)"
        ),
    ] = "clean"


def _paper_representations() -> list[RepresentationSpec]:
    """The five hand-crafted representations of the paper (section 7, table 6)."""
    return [RepresentationSpec(name=n) for n in ("pixels", "scatnet", "augmented_pixels", "hog", "local_std")]


@section
class RepresentationsConfig:
    """The hand-crafted representations of L3 and where their deterministic features are cached."""

    items: Annotated[list[RepresentationSpec], Field(description="the representations Z*_k, each name once")] = field(
        default_factory=_paper_representations
    )
    cache_dir: Annotated[
        Text | None,
        Field(description="FeatureCache folder of the deterministic representations; null = compute them every step"),
    ] = None
    project_dim: Annotated[
        Int | None,
        Field(
            ge=1,
            description="with a cache: random-project representations wider than this; null = store them as they are",
        ),
    ] = None


@section
class RegressionConfig:
    """The regression heads of the fixed targets whose objective includes ``cosine`` (SimReg).

    One head per such target, an MLP on the student's augmented view, trained with 2 - 2 cos
    against the target and used only in training: checkpoints hold the heads (a run resumes
    exactly), ``mvmr export`` and ``from_pretrained`` never carry them. A target wider than
    ``max_target_dim`` must come through the cache's seeded projection
    (``representations.project_dim``), so that the head stays small.
    """

    input: Annotated[
        Literal["features", "embedding"],
        Field(
            description="what the heads read: the encoder's features h (the representation that is kept) or the "
            "projector's embedding z"
        ),
    ] = "features"
    depth: Annotated[
        Int, Field(ge=1, description="Linear layers per head (hidden ones Linear-BatchNorm-ReLU); 1 = linear")
    ] = 2
    width: Annotated[Int, Field(ge=1, description="hidden width of each head")] = 2048
    weight: Annotated[Float, Field(ge=0.0, description="multiplies every cosine term (on top of its beta_k)")] = 1.0
    target_norm: Annotated[
        Literal["none", "center", "standardize"],
        Field(
            description="the target before the cosine: as it is, minus its batch mean, or standardised per dimension "
            "with batch statistics (the global batch under DDP); a common component (e.g. of non-negative "
            "pooled features) otherwise dominates the cosine"
        ),
    ] = "center"
    max_target_dim: Annotated[
        Int, Field(ge=1, description="the widest target a head predicts; wider ones need representations.project_dim")
    ] = 8192


@section
class TeacherConfig:
    """The frozen teacher of label-free distillation (paper sec. 5.2, fig. 2).

    Its embedding is one more fixed target Z*_k: with the defaults (the paper), of the clean view,
    learnt through L3, so the loss becomes L1 + L2 + beta * (1 - dCor(z_aug, teacher)) [+ the
    hand-crafted representations of ``representations.items``; an empty list distils from the
    teacher alone]. ``objective`` adds or swaps in a cosine regression head, ``view: augmented``
    lets the teacher embed the student's own view, and ``cached_views`` stores such views.
    """

    spec: Annotated[
        Text | None,
        Field(
            description="open_clip:<model> | hf-clip:<dir> | torchvision:<name> | "
            "timm:<name> | efficientnet-lite0 | embeddings:<file.npy>; "
            "null = no teacher (self-supervised MV-MR)"
        ),
    ] = None
    weights: Annotated[
        Text | None,
        Field(description="local weights file (or an open_clip tag); null = the kind's default (see build_teacher)"),
    ] = None
    beta: Annotated[Float, Field(ge=0.0, description="weight of 1 - dCor(z_aug, teacher)")] = 1.0
    name: Annotated[Text, Field(description="the teacher's representation name: loss term and log key dcor/<name>")] = (
        "teacher"
    )
    options: Annotated[
        dict[str, Any],
        Field(
            description="build_teacher options: input_size, crop_pct, interpolation, mean, std, l2_normalize, tag, ..."
        ),
    ] = field(default_factory=dict)
    cache: Annotated[
        Bool,
        Field(
            description="embed each clean image once into a FeatureCache (the clean view is "
            "deterministic); false runs the teacher every step"
        ),
    ] = True
    cache_dir: Annotated[
        Text | None,
        Field(description="null = <output_dir>/teacher-cache (stored views: <output_dir>/teacher-views-<K>)"),
    ] = None
    batch_size: Annotated[Int, Field(ge=1, description="teacher batch while it fills the cache")] = 64
    objective: Annotated[
        Objective,
        Field(
            description="dcor: beta (1 - dCor(z_aug, teacher)) (the paper); cosine: a "
            "regression head predicts the teacher's embedding with 2 - 2 cos "
            "(SimReg; the regression section); dcor+cosine: both"
        ),
    ] = "dcor"
    view: Annotated[
        TargetView,
        Field(
            description="the image the teacher embeds: clean (the paper; cached once) or "
            "augmented (the student's own augmented view: a teacher forward "
            "pass per step, or a read with cached_views)"
        ),
    ] = "clean"
    cached_views: Annotated[
        Int,
        Field(
            ge=0,
            description="with view: augmented, K > 0 draws K augmented views of each "
            "image once (seeded), stores the teacher's embedding and the "
            "view's parameters in the cache, and gives the student one "
            "stored view per step, re-created from its parameters; 0 = "
            "off",
        ),
    ] = 0


@section
class EvaluationConfig:
    """The linear probe of a run's report (``mvmr distill --evaluate``).

    Same protocol as ``mvmr evaluate --protocol linear`` (paper sec. 7: one linear layer, Adam,
    lr 1e-4, batch 256, 100 epochs; the epoch is chosen on a hold-out of the training split and
    the test split is read once). The data are ``data.kind`` / ``data.root`` at ``data.image_size``.
    """

    train_split: Annotated[Text | None, Field(description="the probe's labelled split; null = data.split")] = None
    test_split: Annotated[Text, Field(description="the split the accuracy is measured on, once")] = "test"
    train_subset: Annotated[Int | None, Field(ge=2, description="stratified subset, for quick runs; null = all")] = None
    test_subset: Annotated[Int | None, Field(ge=1, description="stratified subset, for quick runs; null = all")] = None
    epochs: Annotated[Int, Field(ge=1, description="probe epochs")] = 100
    lr: Annotated[Float, Field(gt=0.0, description="probe learning rate")] = 1e-4
    batch_size: Annotated[Int, Field(ge=1, description="probe batch size")] = 256
    val_fraction: Annotated[Float, Field(ge=0.0, lt=1.0, description="hold-out that chooses the epoch")] = 0.1
    ssl_representations: Annotated[
        list[RepresentationSpec] | None,
        Field(
            description="--compare-ssl: the self-supervised baseline's representations; null = representations.items"
        ),
    ] = None
    timing_steps: Annotated[
        Int,
        Field(
            ge=1,
            description="optimiser steps timed per mode (cached teacher / teacher every step), after one warm-up step",
        ),
    ] = 3


@section
class Config:
    """A whole run."""

    name: Annotated[Text, Field(description="the run's name")] = "mvmr"
    output_dir: Annotated[Text, Field(description="the run folder: checkpoints/, logs/, plots/, config.yaml")] = (
        "runs/mvmr"
    )
    plugins: Annotated[
        list[Text],
        Field(
            description="Python modules imported before the config is checked, so that "
            "it can name the representations, teachers and methods they "
            "register, e.g. [my_pkg.reps]"
        ),
    ] = field(default_factory=list)
    method: Annotated[
        Text,
        Field(
            min_length=1,
            description="the self-supervised method's registered name: mvmr, vicreg, barlow_twins, byol or a plugin's",
        ),
    ] = "mvmr"
    method_kwargs: Annotated[
        dict[str, Any],
        Field(description="the method's own settings, e.g. VICReg's loss weights, BYOL's momentum_start"),
    ] = field(default_factory=dict)
    data: DataConfig = field(default_factory=DataConfig)
    model: ModelConfig = field(default_factory=ModelConfig)
    loss: LossConfig = field(default_factory=LossConfig)
    representations: RepresentationsConfig = field(default_factory=RepresentationsConfig)
    regression: RegressionConfig = field(default_factory=RegressionConfig)
    optim: OptimConfig = field(default_factory=OptimConfig)
    trainer: TrainerConfig = field(default_factory=TrainerConfig)
    probe: ProbeConfig = field(default_factory=ProbeConfig)
    teacher: TeacherConfig = field(default_factory=TeacherConfig)
    evaluation: EvaluationConfig = field(default_factory=EvaluationConfig)
