"""Typed, validated run configuration: dataclasses, YAML files and dotted overrides.

A configuration is a tree of dataclasses (:class:`Config` at the root). One generic validator
(:func:`from_dict`) turns a plain mapping (from YAML) into that tree, checking every value against
the field's type hint (``bool``, ``int``, ``float``, ``str``, ``Literal[...]``, ``X | None``,
``list[X]``, ``dict[str, X]``, nested dataclasses) and against the bounds declared in the field's
metadata (``ge``, ``gt``, ``le``, ``lt``). Every error is a :class:`~mvmr.errors.ConfigError` that
names the offending key, e.g. ``loss.l3: expected one of 'maximize', 'minimize', got 'foo'``.

>>> cfg = load_config("stl10", ["trainer.max_epochs=10", "loss.l3=minimize"])
>>> print(to_yaml(cfg))

A YAML file may start from another with ``base: other.yaml`` (a path relative to the file, or the
name of a shipped config); its keys are merged over the base's, recursively.
"""

from __future__ import annotations

import dataclasses
import difflib
import os
import re
import types
from dataclasses import dataclass, field, fields, is_dataclass
from pathlib import Path
from typing import Any, Iterable, Literal, Mapping, Union, get_args, get_origin, get_type_hints

import yaml

from mvmr.errors import ConfigError

__all__ = [
    "AugmentationConfig",
    "DataConfig",
    "ModelConfig",
    "LossConfig",
    "RepresentationSpec",
    "RepresentationsConfig",
    "OptimConfig",
    "TrainerConfig",
    "ProbeConfig",
    "TeacherConfig",
    "EvaluationConfig",
    "Config",
    "CONFIG_DIR",
    "shipped_configs",
    "resolve_config_path",
    "load_config",
    "from_dict",
    "to_dict",
    "to_yaml",
    "save_config",
    "apply_overrides",
    "validate",
]

#: The configs shipped with the package (``configs/`` at the repository root points here).
CONFIG_DIR = Path(__file__).resolve().parent / "configs"


def _num(default: Any, **bounds: float) -> Any:
    """A dataclass field with numeric bounds (``ge``, ``gt``, ``le``, ``lt``) checked by the validator."""
    return field(default=default, metadata=bounds)


# --------------------------------------------------------------------------------------------
# The sections
# --------------------------------------------------------------------------------------------
@dataclass
class AugmentationConfig:
    """Switches of the paper's augmentation (section 7) for the augmented view."""

    crop: bool = True  # random resized crop
    flip: bool = True  # horizontal flip, p = 0.5
    color: bool = True  # colour jitter 0.8/0.8/0.8/0.2, p = 0.8
    grayscale: bool = True  # p = 0.2
    blur: bool = True  # Gaussian blur, kernel 0.1 of the image size, sigma in [0.1, 2]


@dataclass
class DataConfig:
    """The pretraining data. ``batch_size`` is per process (global = batch_size x devices x nodes)."""

    kind: str = "imagefolder"
    #: dataset folder (None: the kind's default location, e.g. Fashion-MNIST's Debian package)
    root: str | None = "data"
    split: str = "train"
    image_size: int = _num(96, ge=8)
    channels: Literal[1, 3] | None = 3
    batch_size: int = _num(256, ge=2)
    num_workers: int = _num(4, ge=0)
    skip_corrupt: bool = False
    download: bool = False
    #: use a random subset of this many images (seeded by trainer.seed); None = all
    subset: int | None = _num(None, ge=2)
    #: fraction of the labelled images held out from pretraining to validate the online probe
    val_fraction: float = _num(0.05, ge=0.0, lt=1.0)
    augmentation: AugmentationConfig = field(default_factory=AugmentationConfig)

    def _validate(self, prefix: str) -> None:
        try:
            from mvmr.data.datasets import DATASET_KINDS
        except ImportError:  # pragma: no cover
            return
        if self.kind not in DATASET_KINDS:
            raise ConfigError(f"{prefix}kind: expected one of {', '.join(repr(k) for k in DATASET_KINDS)}, got {self.kind!r}")


@dataclass
class ModelConfig:
    """Encoder + projector. ``projector`` is a dash-separated list of widths ("" = no projector)."""

    encoder: str = "resnet50"
    small_images: bool = False
    projector: str = "8192-8192-8192"
    sync_batchnorm: bool = False
    #: input normalisation per channel; None = ImageNet's for 3 channels, 0.5 otherwise
    mean: list[float] | None = None
    std: list[float] | None = None

    def _validate(self, prefix: str) -> None:
        if (self.mean is None) != (self.std is None) or (self.mean is not None and len(self.mean) != len(self.std)):
            raise ConfigError(f"{prefix}std: give mean and std together, with one value per channel")
        if self.std is not None and not all(v > 0 for v in self.std):
            raise ConfigError(f"{prefix}std: must be > 0, got {self.std}")
        if not re.fullmatch(r"(\d+(-\d+)*)?", self.projector) or any(
            int(w) <= 0 for w in self.projector.split("-") if w
        ):
            raise ConfigError(f"{prefix}projector: expected widths like '8192-8192-8192' or '', got {self.projector!r}")


@dataclass
class LossConfig:
    """MVMRLoss arguments (paper eqs. 4-10)."""

    lambda_: float = _num(1.0, ge=0.0)
    mu: float = _num(1.0, ge=0.0)
    alpha: float = _num(1.0, ge=0.0)
    #: beta_k for every representation, or a mapping name -> beta_k (multiplied by each item's weight)
    beta: float | dict[str, float] = 1.0
    gamma: float = _num(1.0, ge=0.0)
    eps: float = _num(1e-4, gt=0.0)
    l3: Literal["maximize", "minimize"] = "maximize"
    squared: bool = True
    mse: Literal["mean", "sum"] = "mean"
    gather_distributed: bool = True

    def _validate(self, prefix: str) -> None:
        values = self.beta.items() if isinstance(self.beta, dict) else [("", self.beta)]
        for name, value in values:
            if not value >= 0:  # also catches NaN
                key = f"{prefix}beta.{name}" if name else f"{prefix}beta"
                raise ConfigError(f"{key}: must be >= 0, got {value!r}")


@dataclass
class RepresentationSpec:
    """One representation Z*_k: registry name, weight beta_k and constructor arguments."""

    name: str = "pixels"
    weight: float = _num(1.0, ge=0.0)
    kwargs: dict[str, Any] = field(default_factory=dict)


def _paper_representations() -> list[RepresentationSpec]:
    return [RepresentationSpec(name=n) for n in ("pixels", "scatnet", "augmented_pixels", "hog", "local_std")]


@dataclass
class RepresentationsConfig:
    """The hand-crafted representations of L3 and where their deterministic features are cached."""

    items: list[RepresentationSpec] = field(default_factory=_paper_representations)
    #: FeatureCache directory for the deterministic representations; None = compute every step
    cache_dir: str | None = None
    #: with a cache: random-project representations wider than this (None = store as they are)
    project_dim: int | None = _num(None, ge=1)

    def _validate(self, prefix: str) -> None:
        names = [spec.name for spec in self.items]
        for i, name in enumerate(names):
            if name in names[:i]:
                raise ConfigError(f"{prefix}items[{i}].name: representation {name!r} is listed twice")


@dataclass
class OptimConfig:
    """Optimiser and learning-rate schedule (linear warm-up then cosine, stepped per optimiser step)."""

    optimizer: Literal["adam", "adamw", "lars"] = "adam"
    lr: float = _num(1e-4, gt=0.0)
    weight_decay: float = _num(0.0, ge=0.0)
    betas: list[float] = field(default_factory=lambda: [0.9, 0.999])
    momentum: float = _num(0.9, ge=0.0, lt=1.0)  # LARS
    trust_coefficient: float = _num(0.001, gt=0.0)  # LARS eta
    scheduler: Literal["cosine", "constant"] = "cosine"
    warmup_epochs: float = _num(0.0, ge=0.0)
    min_lr: float = _num(0.0, ge=0.0)
    #: scale lr by (effective batch / base_batch_size) ("linear") or its square root ("sqrt")
    lr_scaling: Literal["none", "linear", "sqrt"] = "none"
    base_batch_size: int = _num(256, ge=1)

    def _validate(self, prefix: str) -> None:
        if len(self.betas) != 2 or not all(0.0 <= b < 1.0 for b in self.betas):
            raise ConfigError(f"{prefix}betas: expected two numbers in [0, 1), got {self.betas!r}")
        if self.min_lr > self.lr:
            raise ConfigError(f"{prefix}min_lr: must be <= optim.lr ({self.lr}), got {self.min_lr}")


@dataclass
class TrainerConfig:
    """Lightning Trainer settings."""

    max_epochs: int = _num(1000, ge=1)
    max_steps: int = _num(-1, ge=-1)  # optimiser steps; -1 = no limit
    accelerator: str = "auto"
    devices: int | str = "auto"
    num_nodes: int = _num(1, ge=1)
    strategy: str = "auto"
    precision: Literal["64-true", "32-true", "16-mixed", "bf16-mixed", "16-true", "bf16-true"] = "32-true"
    accumulate_grad_batches: int = _num(1, ge=1)
    gradient_clip_val: float | None = _num(None, gt=0.0)
    log_every_n_steps: int = _num(50, ge=1)
    #: keep a numbered checkpoint every N epochs (last.ckpt is rewritten every epoch)
    checkpoint_every_n_epochs: int = _num(1, ge=1)
    #: also rewrite last.ckpt every N optimiser steps (for mid-epoch resumption); None = off
    checkpoint_every_n_steps: int | None = _num(None, ge=1)
    limit_train_batches: int | float = _num(1.0, gt=0)
    limit_val_batches: int | float = _num(1.0, ge=0)
    check_val_every_n_epoch: int = _num(1, ge=1)
    seed: int = 0
    deterministic: bool = False
    progress_bar: bool = True

    def _validate(self, prefix: str) -> None:
        if isinstance(self.devices, str) and self.devices != "auto" and not re.fullmatch(r"-1|\d+(,\d+)*,?", self.devices):
            raise ConfigError(f"{prefix}devices: expected a count, 'auto' or a list like '0,1', got {self.devices!r}")
        if isinstance(self.devices, int) and (self.devices == 0 or self.devices < -1):
            raise ConfigError(f"{prefix}devices: expected a positive count, -1 or 'auto', got {self.devices}")
        for key in ("limit_train_batches", "limit_val_batches"):
            value = getattr(self, key)
            if isinstance(value, float) and value > 1.0:
                raise ConfigError(f"{prefix}{key}: a fraction must be <= 1.0 (or give an int number of batches), got {value}")


@dataclass
class ProbeConfig:
    """Online linear probe on detached encoder features (a progress monitor, not the evaluation)."""

    enabled: bool = True
    lr: float = _num(1e-3, gt=0.0)
    weight_decay: float = _num(0.0, ge=0.0)
    #: number of classes; None = from the dataset's class list
    num_classes: int | None = _num(None, ge=2)


#: teacher.options keys that have their own field (or are set by the trainer)
_TEACHER_RESERVED_OPTIONS = {"name": "teacher.name", "weights": "teacher.weights", "spec": "teacher.spec",
                             "dataset_length": "(set from the dataset)"}


@dataclass
class TeacherConfig:
    """The frozen teacher of label-free distillation (paper sec. 5.2, fig. 2).

    Its embedding of the clean view is one more representation Z*_k of L3: the loss becomes
    L1 + L2 + beta * (1 - dCor(z_aug, teacher)) [+ the hand-crafted representations of
    ``representations.items``; an empty list distils from the teacher alone].
    """

    #: ``open_clip:<model>`` | ``hf-clip:<dir>`` | ``torchvision:<name>`` | ``timm:<name>`` |
    #: ``efficientnet-lite0`` | ``embeddings:<file.npy>``; None = no teacher (self-supervised MV-MR)
    spec: str | None = None
    #: local weights file (or an open_clip tag); None = the kind's default (see build_teacher)
    weights: str | None = None
    #: beta of the teacher's term (multiplies 1 - dCor(z_aug, teacher))
    beta: float = _num(1.0, ge=0.0)
    #: the representation name: loss term and log key ``dcor/<name>``
    name: str = "teacher"
    #: build_teacher options: input_size, crop_pct, interpolation, mean, std, l2_normalize, tag, ...
    options: dict[str, Any] = field(default_factory=dict)
    #: embed each clean image once into a memory-mapped FeatureCache (the clean view is
    #: deterministic); false runs the teacher at every step, like the authors' code
    cache: bool = True
    #: the teacher's FeatureCache directory; None = <output_dir>/teacher-cache
    cache_dir: str | None = None
    #: batch size of the teacher while it fills the cache
    batch_size: int = _num(64, ge=1)

    def _validate(self, prefix: str) -> None:
        if self.spec is None:
            if self.weights is not None:
                raise ConfigError(f"{prefix}weights: given without {prefix}spec (no teacher is configured)")
            return
        if not re.fullmatch(r"[A-Za-z0-9_.-]+", self.name):
            raise ConfigError(f"{prefix}name: expected letters, digits, '_', '.' or '-', got {self.name!r}")
        try:
            from mvmr.representations.teachers.factory import parse_teacher_spec
        except ImportError:  # pragma: no cover
            return
        try:
            kind, _ = parse_teacher_spec(self.spec)
        except ValueError as err:
            raise ConfigError(f"{prefix}spec: {err}") from None
        for key, where in _TEACHER_RESERVED_OPTIONS.items():
            if key in self.options:
                raise ConfigError(f"{prefix}options.{key}: not an option here; set {where}")
        size = self.options.get("input_size")
        if size is not None and (isinstance(size, bool) or not isinstance(size, int) or size < 8):
            raise ConfigError(f"{prefix}options.input_size: expected an int >= 8, got {size!r}")
        if kind == "embeddings":
            if self.weights is not None:
                raise ConfigError(f"{prefix}weights: {self.spec!r} is a file of precomputed embeddings, it has no weights")
            if not self.cache:
                raise ConfigError(
                    f"{prefix}cache: {self.spec!r} holds precomputed embeddings, read by index; there is no teacher "
                    f"to run at every step (set cache: true)"
                )
            unknown = sorted(set(self.options) - {"check_finite"})
            if unknown:
                raise ConfigError(f"{prefix}options.{unknown[0]}: embeddings: specs take only check_finite")


@dataclass
class EvaluationConfig:
    """The linear probe of a run's report (``mvmr distill --evaluate``).

    Same protocol as ``mvmr evaluate --protocol linear`` (paper sec. 7: one linear layer, Adam,
    lr 1e-4, batch 256, 100 epochs; the epoch is chosen on a hold-out of the training split and
    the test split is read once). The data are ``data.kind`` / ``data.root`` at ``data.image_size``.
    """

    #: labelled split to train the probe on; None = data.split
    train_split: str | None = None
    test_split: str = "test"
    #: stratified subsets of the probe's train / test images (None = all), for quick runs
    train_subset: int | None = _num(None, ge=2)
    test_subset: int | None = _num(None, ge=1)
    epochs: int = _num(100, ge=1)
    lr: float = _num(1e-4, gt=0.0)
    batch_size: int = _num(256, ge=1)
    val_fraction: float = _num(0.1, ge=0.0, lt=1.0)
    #: --compare-ssl: the hand-crafted representations of the self-supervised baseline
    #: (None = representations.items)
    ssl_representations: list[RepresentationSpec] | None = None
    #: optimiser steps timed per mode (cached teacher / teacher every step), after one warm-up step
    timing_steps: int = _num(3, ge=1)


@dataclass
class Config:
    """A whole pretraining run."""

    name: str = "mvmr"
    #: the run folder: checkpoints/, logs/, plots/ and config.yaml go here
    output_dir: str = "runs/mvmr"
    data: DataConfig = field(default_factory=DataConfig)
    model: ModelConfig = field(default_factory=ModelConfig)
    loss: LossConfig = field(default_factory=LossConfig)
    representations: RepresentationsConfig = field(default_factory=RepresentationsConfig)
    optim: OptimConfig = field(default_factory=OptimConfig)
    trainer: TrainerConfig = field(default_factory=TrainerConfig)
    probe: ProbeConfig = field(default_factory=ProbeConfig)
    teacher: TeacherConfig = field(default_factory=TeacherConfig)
    evaluation: EvaluationConfig = field(default_factory=EvaluationConfig)

    def _validate(self, prefix: str) -> None:
        names = [spec.name for spec in self.representations.items]
        self._validate_teacher(prefix, names)
        try:
            from mvmr import representations as reps  # registers the built-ins

            known = set(reps.available())
        except ImportError:  # registry not importable: the builder will report unknown names
            known = set()
        for i, name in enumerate(names):
            if known and name not in known:
                raise ConfigError(
                    f"{prefix}representations.items[{i}].name: unknown representation {name!r}; "
                    f"available: {', '.join(sorted(known))}"
                )
        if isinstance(self.loss.beta, dict):
            for name in self.loss.beta:
                if name not in names:
                    raise ConfigError(
                        f"{prefix}loss.beta.{name}: no such representation in representations.items ({', '.join(names)})"
                    )
            for i, name in enumerate(names):
                if name not in self.loss.beta:
                    raise ConfigError(f"{prefix}loss.beta: no weight for representation {name!r} (representations.items[{i}])")
        for i, spec in enumerate(self.evaluation.ssl_representations or []):
            if known and spec.name not in known:
                raise ConfigError(
                    f"{prefix}evaluation.ssl_representations[{i}].name: unknown representation {spec.name!r}; "
                    f"available: {', '.join(sorted(known))}"
                )
        if self.optim.warmup_epochs >= self.trainer.max_epochs and self.optim.warmup_epochs > 0:
            raise ConfigError(
                f"{prefix}optim.warmup_epochs: must be < trainer.max_epochs ({self.trainer.max_epochs}), "
                f"got {self.optim.warmup_epochs}"
            )

    def _validate_teacher(self, prefix: str, names: list[str]) -> None:
        t = self.teacher
        if t.spec is None:
            return
        if t.name in names:
            raise ConfigError(
                f"{prefix}teacher.name: {t.name!r} is also representations.items[{names.index(t.name)}].name; "
                f"give the teacher another name"
            )
        if isinstance(self.loss.beta, dict) and t.name in self.loss.beta:
            raise ConfigError(f"{prefix}loss.beta.{t.name}: the teacher's weight is teacher.beta, not loss.beta")
        if self.loss.l3 == "minimize":
            raise ConfigError(
                f"{prefix}loss.l3: 'minimize' would push the student AWAY from the teacher; distillation "
                f"maximises dCor(z_aug, teacher) (paper sec. 5.2): use loss.l3=maximize"
            )


# --------------------------------------------------------------------------------------------
# The generic validator
# --------------------------------------------------------------------------------------------
_FLOAT_RE = re.compile(r"[-+]?(\d+\.?\d*|\.\d+)([eE][-+]?\d+)?|[-+]?(inf|nan)", re.IGNORECASE)
_HINTS: dict[type, dict[str, Any]] = {}


def _hints(cls: type) -> dict[str, Any]:
    if cls not in _HINTS:
        _HINTS[cls] = get_type_hints(cls)
    return _HINTS[cls]


def _describe(hint: Any) -> str:
    origin = get_origin(hint)
    if hint is type(None):
        return "null"
    if origin is Literal:
        return "one of " + ", ".join(repr(a) for a in get_args(hint))
    if origin in (Union, types.UnionType):
        return " or ".join(_describe(a) for a in get_args(hint))
    if origin is list:
        return f"a list of {_describe(get_args(hint)[0])}"
    if origin is dict:
        return f"a mapping of {_describe(get_args(hint)[1])}"
    if is_dataclass(hint):
        return "a mapping"
    return getattr(hint, "__name__", str(hint))


def _coerce(value: Any, hint: Any, key: str) -> Any:
    """``value`` checked against (and mildly converted to) the type ``hint``, or a ConfigError naming ``key``."""
    origin = get_origin(hint)
    if hint is Any:
        return value
    if is_dataclass(hint):
        if is_dataclass(value) and not isinstance(value, type):
            value = to_dict(value)
        if not isinstance(value, Mapping):
            raise ConfigError(f"{key}: expected a mapping, got {type(value).__name__} {value!r}")
        return _build(hint, value, key + ".")
    if origin is Literal:
        choices = get_args(hint)
        for choice in choices:  # bool is an int: 1 must not match True, nor "1" match 1
            if value == choice and type(value) is type(choice):
                return value
        raise ConfigError(f"{key}: expected one of {', '.join(repr(c) for c in choices)}, got {value!r}")
    if origin in (Union, types.UnionType):
        args = get_args(hint)
        if value is None:
            if type(None) in args:
                return None
            raise ConfigError(f"{key}: expected {_describe(hint)}, got null")
        errors = []
        for arg in args:
            if arg is type(None):
                continue
            try:
                return _coerce(value, arg, key)
            except ConfigError as err:
                errors.append(err)
        if len(errors) == 1:
            raise errors[0]
        raise ConfigError(f"{key}: expected {_describe(hint)}, got {type(value).__name__} {value!r}")
    if origin is list:
        if not isinstance(value, (list, tuple)):
            raise ConfigError(f"{key}: expected {_describe(hint)}, got {type(value).__name__} {value!r}")
        (item,) = get_args(hint)
        return [_coerce(v, item, f"{key}[{i}]") for i, v in enumerate(value)]
    if origin is dict:
        if not isinstance(value, Mapping):
            raise ConfigError(f"{key}: expected {_describe(hint)}, got {type(value).__name__} {value!r}")
        key_hint, item = get_args(hint)
        out = {}
        for k, v in value.items():
            if not isinstance(k, str):
                raise ConfigError(f"{key}: mapping keys must be strings, got {k!r}")
            out[k] = _coerce(v, item, f"{key}.{k}")
        return out
    if hint is bool:
        if isinstance(value, bool):
            return value
    elif hint is int:
        if isinstance(value, int) and not isinstance(value, bool):
            return value
    elif hint is float:
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return float(value)
        if isinstance(value, str) and _FLOAT_RE.fullmatch(value.strip()):  # YAML 1.1 reads 1e-4 as a string
            return float(value)
    elif hint is str:
        if isinstance(value, str):
            return value
        if isinstance(value, os.PathLike):
            return os.fspath(value)
    else:  # pragma: no cover - a field with an unsupported hint is a programming error
        raise TypeError(f"{key}: unsupported type hint {hint!r}")
    raise ConfigError(f"{key}: expected {_describe(hint)}, got {type(value).__name__} {value!r}")


def _check_bounds(value: Any, bounds: Mapping[str, float], key: str) -> None:
    if value is None or not bounds or isinstance(value, bool) or not isinstance(value, (int, float)):
        return
    tests = {"ge": (lambda a, b: a >= b, ">="), "gt": (lambda a, b: a > b, ">"),
             "le": (lambda a, b: a <= b, "<="), "lt": (lambda a, b: a < b, "<")}
    for name, bound in bounds.items():
        ok, symbol = tests[name]
        if not ok(value, bound):  # NaN fails every test
            raise ConfigError(f"{key}: must be {symbol} {bound}, got {value!r}")


def _build(cls: type, data: Mapping[str, Any], prefix: str = "") -> Any:
    hints = _hints(cls)
    names = [f.name for f in fields(cls)]
    for k in data:
        if k not in names:
            close = difflib.get_close_matches(str(k), names, n=1)
            hint = f" (did you mean {close[0]!r}?)" if close else f"; known keys: {', '.join(names)}"
            raise ConfigError(f"{prefix}{k}: unknown key{hint}")
    kwargs = {}
    for f in fields(cls):
        if f.name in data:
            value = _coerce(data[f.name], hints[f.name], prefix + f.name)
        else:
            value = f.default_factory() if f.default_factory is not dataclasses.MISSING else f.default
            value = _coerce(to_dict(value) if is_dataclass(value) else value, hints[f.name], prefix + f.name)
        _check_bounds(value, f.metadata, prefix + f.name)
        kwargs[f.name] = value
    obj = cls(**kwargs)
    check = getattr(obj, "_validate", None)
    if check is not None:
        check(prefix)
    return obj


def from_dict(data: Mapping[str, Any] | None, cls: type = Config) -> Any:
    """Build and validate a config dataclass from a plain mapping (missing keys take defaults)."""
    if data is None:
        data = {}
    if not isinstance(data, Mapping):
        raise ConfigError(f"a configuration must be a mapping, got {type(data).__name__}")
    return _build(cls, data)


def to_dict(config: Any) -> Any:
    """A config dataclass as plain dicts, lists and scalars (what YAML and checkpoints store)."""
    if is_dataclass(config) and not isinstance(config, type):
        return {f.name: to_dict(getattr(config, f.name)) for f in fields(config)}
    if isinstance(config, Mapping):
        return {k: to_dict(v) for k, v in config.items()}
    if isinstance(config, (list, tuple)):
        return [to_dict(v) for v in config]
    return config


def validate(config: Any) -> Any:
    """A freshly validated copy of a config built in Python (a ConfigError names the first bad key)."""
    return from_dict(to_dict(config), type(config))


# --------------------------------------------------------------------------------------------
# YAML and overrides
# --------------------------------------------------------------------------------------------
def shipped_configs() -> list[str]:
    """Names of the configs shipped with the package (``mvmr pretrain --config <name>``)."""
    return sorted(p.stem for p in CONFIG_DIR.glob("*.yaml"))


def resolve_config_path(path: str | os.PathLike[str]) -> Path:
    """``path`` if it exists, else a shipped config of that name (``stl10`` or ``stl10.yaml``)."""
    p = Path(path)
    if p.is_file():
        return p
    if len(p.parts) == 1:
        shipped = CONFIG_DIR / (p.name if p.suffix in (".yaml", ".yml") else p.name + ".yaml")
        if shipped.is_file():
            return shipped
    raise ConfigError(f"config file not found: {path} (shipped configs: {', '.join(shipped_configs())})")


def _merge(base: dict[str, Any], over: Mapping[str, Any]) -> dict[str, Any]:
    out = dict(base)
    for k, v in over.items():
        out[k] = _merge(out[k], v) if isinstance(v, Mapping) and isinstance(out.get(k), Mapping) else v
    return out


def _read_yaml(path: Path, seen: tuple[Path, ...] = ()) -> dict[str, Any]:
    path = path.resolve()
    if path in seen:
        raise ConfigError(f"{path}: 'base' chain loops back to itself")
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except yaml.YAMLError as err:
        raise ConfigError(f"{path}: not valid YAML: {err}") from None
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: the top level must be a mapping, got {type(data).__name__}")
    base = data.pop("base", None)
    if base is None:
        return data
    if not isinstance(base, str):
        raise ConfigError(f"{path}: base: expected a file name, got {base!r}")
    base_path = path.parent / base
    return _merge(_read_yaml(base_path if base_path.is_file() else resolve_config_path(base), (*seen, path)), data)


def _parse_override(text: str) -> tuple[list[str], Any]:
    if "=" not in text:
        raise ConfigError(f"override {text!r}: expected key=value, e.g. trainer.max_epochs=10")
    key, raw = text.split("=", 1)
    key = key.strip()
    if not key or any(not part for part in key.split(".")):
        raise ConfigError(f"override {text!r}: empty key")
    try:
        value = yaml.safe_load(raw) if raw.strip() else ""
    except yaml.YAMLError as err:
        raise ConfigError(f"{key}: cannot parse value {raw!r}: {err}") from None
    return key.split("."), value


def apply_overrides(data: Mapping[str, Any], overrides: Iterable[str]) -> dict[str, Any]:
    """Apply ``a.b.c=value`` overrides to a plain config mapping; values are parsed as YAML.

    A numeric path part indexes a list (``representations.items.1.weight=2``).
    """
    out = to_dict(dict(data))
    for text in overrides:
        parts, value = _parse_override(text)
        node: Any = out
        for depth, part in enumerate(parts[:-1]):
            where = ".".join(parts[: depth + 1])
            if isinstance(node, list):
                if not part.isdigit() or int(part) >= len(node):
                    raise ConfigError(f"{where}: no list item {part!r} (the list has {len(node)} items)")
                node = node[int(part)]
            elif isinstance(node, dict):
                if part not in node or node[part] is None:
                    node[part] = {}
                elif not isinstance(node[part], (dict, list)):
                    raise ConfigError(f"{where}: is {node[part]!r}, not a mapping; cannot set {'.'.join(parts)}")
                node = node[part]
        last = parts[-1]
        if isinstance(node, list):
            if not last.isdigit() or int(last) >= len(node):
                raise ConfigError(f"{'.'.join(parts)}: no list item {last!r} (the list has {len(node)} items)")
            node[int(last)] = value
        else:
            node[last] = value
    return out


def load_config(path: str | os.PathLike[str] | None = None, overrides: Iterable[str] = ()) -> Config:
    """Read a YAML config (a path or a shipped name; None = all defaults), apply overrides, validate."""
    data = _read_yaml(resolve_config_path(path)) if path is not None else {}
    overrides = list(overrides)
    try:
        data = to_dict(from_dict(data))  # defaults filled in, so that overrides can index lists
    except ConfigError:
        if not overrides:
            raise
    return from_dict(apply_overrides(data, overrides))


def to_yaml(config: Any) -> str:
    """The resolved config as YAML (every key, defaults included)."""
    return yaml.safe_dump(to_dict(config), sort_keys=False, default_flow_style=None, width=100)


def save_config(config: Any, path: str | os.PathLike[str]) -> Path:
    """Write the resolved config as YAML, atomically (temp file + os.replace)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    tmp.write_text(to_yaml(config), encoding="utf-8")
    os.replace(tmp, path)
    return path
