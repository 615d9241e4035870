"""Validation: pydantic checks plain data against the schema, then come the checks across keys.

:func:`from_dict` turns plain data (YAML, a checkpoint's hyper-parameters) into a config;
:func:`validate` checks one built in Python. The first error becomes a
:class:`~mvmr.errors.ConfigError` that starts with the dotted key (list items as ``[i]``), e.g.
``trainer.max_epoch: unknown key (did you mean 'max_epochs'?)`` or ``optim.lr: must be > 0.0, got
-0.1``. A config's ``plugins`` are imported between the schema check and the checks across keys,
so that the representations, teachers and methods they register can be named in the same config.
"""

from __future__ import annotations

import difflib
import functools
import re
import types
from collections.abc import Callable, Mapping
from dataclasses import fields, is_dataclass
from typing import Annotated, Any, Literal, Union, get_args, get_origin, get_type_hints

from pydantic import TypeAdapter, ValidationError
from pydantic_core import ErrorDetails

from mvmr.config.schema import (
    Config,
    DataConfig,
    LossConfig,
    ModelConfig,
    OptimConfig,
    RepresentationsConfig,
    TeacherConfig,
    TrainerConfig,
)
from mvmr.data import DATASET_KINDS
from mvmr.errors import ConfigError
from mvmr.plugins import import_plugins
from mvmr.representations import available as available_representations
from mvmr.representations.teachers.factory import parse_teacher_spec

__all__ = ["from_dict", "to_dict", "validate"]

#: pydantic's bound errors -> (the bound's name in the error context, its symbol)
_BOUND_ERRORS = {
    "greater_than": ("gt", ">"),
    "greater_than_equal": ("ge", ">="),
    "less_than": ("lt", "<"),
    "less_than_equal": ("le", "<="),
}
#: errors that mean "not a value of the declared type" besides pydantic's ``*_type`` and ``*_parsing``
_TYPE_ERRORS = {"int_from_float", "bool_is_not_a_number", "literal_error"}
#: teacher.options keys that have their own field (or are set by the trainer)
_TEACHER_RESERVED_OPTIONS = {
    "name": "teacher.name",
    "weights": "teacher.weights",
    "spec": "teacher.spec",
    "dataset_length": "(set from the dataset)",
}


#: the pydantic validator of a config class (its schema is built once)
_adapter: Callable[[type], TypeAdapter[Any]] = functools.cache(TypeAdapter)


def from_dict(data: Mapping[str, Any] | None, cls: type = Config) -> Any:
    """Build and validate a config (or one section, ``cls``) from a plain mapping; missing keys take defaults."""
    if data is None:
        data = {}
    if not isinstance(data, Mapping):
        raise ConfigError(f"a configuration must be a mapping, got {type(data).__name__}")
    try:
        config = _adapter(cls).validate_python(dict(data))
    except ValidationError as err:
        raise ConfigError(_error_message(cls, err.errors()[0])) from None
    if isinstance(config, Config):
        import_plugins(config.plugins)
    _check_sections(config, "")
    return config


def to_dict(config: Any) -> Any:
    """A config (or any part of one) as plain dicts, lists and scalars: what YAML and checkpoints store."""
    if is_dataclass(config) and not isinstance(config, type):
        return {f.name: to_dict(getattr(config, f.name)) for f in fields(config)}
    if isinstance(config, Mapping):
        return {k: to_dict(v) for k, v in config.items()}
    if isinstance(config, (list, tuple)):
        return [to_dict(v) for v in config]
    return config


def validate(config: Any) -> Any:
    """A validated copy of a config built in Python (a ConfigError names the first bad key)."""
    return from_dict(to_dict(config), type(config))


def _error_message(root: type, error: ErrorDetails) -> str:
    """The ConfigError message of one pydantic error, for a config of class ``root``."""
    loc, kind, value = error["loc"], error["type"], error["input"]
    if kind == "unexpected_keyword_argument":
        names = [f.name for f in fields(_declared(root, loc[:-1])[1])]
        close = difflib.get_close_matches(str(loc[-1]), names, n=1)
        known = f" (did you mean {close[0]!r}?)" if close else f"; known keys: {', '.join(names)}"
        return f"{_dotted(loc)}: unknown key{known}"
    if loc[-1:] == ("[key]",):  # (..., mapping, the bad key, "[key]")
        return f"{_dotted(loc[:-2])}: mapping keys must be strings, got {value!r}"
    path, hint = _declared(root, loc)
    key = _dotted(path)
    if kind in _BOUND_ERRORS:
        bound, symbol = _BOUND_ERRORS[kind]
        return f"{key}: must be {symbol} {error.get('ctx', {})[bound]}, got {value!r}"
    if kind in ("string_too_short", "too_short") and error.get("ctx", {}).get("min_length") == 1:
        return f"{key}: must not be empty"
    if kind.endswith(("_type", "_parsing")) or kind in _TYPE_ERRORS:
        if get_origin(hint) is Literal or value is None:
            return f"{key}: expected {_expected(hint)}, got {'null' if value is None else repr(value)}"
        return f"{key}: expected {_expected(hint)}, got {type(value).__name__} {value!r}"
    return f"{key}: {error['msg']}"


def _declared(root: type, loc: tuple[Any, ...]) -> tuple[tuple[Any, ...], Any]:
    """The longest start of pydantic's error location ``loc`` that is a declared key, and its bare type.

    pydantic's locations also name the member of a union that failed (``'int'``,
    ``'function-before[...]'``); the key is then the union's, which is where the walk stops.
    """
    hint = root
    for depth, part in enumerate(loc):
        declared = get_type_hints(hint, include_extras=True) if is_dataclass(hint) else {}
        if part in declared:
            hint = _bare(declared[part])
        elif get_origin(hint) is list and isinstance(part, int):
            hint = _bare(get_args(hint)[0])
        elif get_origin(hint) is dict:
            hint = _bare(get_args(hint)[1])
        else:
            return loc[:depth], hint
    return loc, hint


def _bare(hint: Any) -> Any:
    """``hint`` without its ``Annotated`` metadata, and without ``None`` where one other type remains."""
    while True:
        if get_origin(hint) is Annotated:
            hint = get_args(hint)[0]
        elif get_origin(hint) in (Union, types.UnionType) and len(_not_none(hint)) == 1:
            hint = _not_none(hint)[0]
        else:
            return hint


def _not_none(union: Any) -> list[Any]:
    """The members of a union other than ``None``."""
    return [arg for arg in get_args(union) if arg is not type(None)]


def _expected(hint: Any) -> str:
    """What a declared type accepts, in words: ``int``, ``one of 'adam', 'lars'``, ``a list of float``."""
    hint = _bare(hint)
    origin, args = get_origin(hint), get_args(hint)
    if origin is Literal:
        return "one of " + ", ".join(repr(choice) for choice in args)
    if origin in (Union, types.UnionType):
        return " or ".join(_expected(arg) for arg in _not_none(hint))
    if origin is list:
        return f"a list of {_expected(args[0])}"
    if origin is dict and _bare(args[1]) is not Any:
        return f"a mapping of {_expected(args[1])}"
    return "a mapping" if origin is dict or is_dataclass(hint) else getattr(hint, "__name__", str(hint))


def _dotted(loc: tuple[Any, ...]) -> str:
    """A location as the user writes it: ``representations.items[0].name``."""
    key = ""
    for part in loc:
        key += f"[{part}]" if isinstance(part, int) else f".{part}" if key else str(part)
    return key


def _check_sections(section: Any, prefix: str) -> None:
    """The checks across keys of ``section`` (dotted key ``prefix``), after those of the sections in it."""
    for f in fields(section):
        value = getattr(section, f.name)
        if is_dataclass(value):
            _check_sections(value, f"{prefix}{f.name}.")
    check = _SECTION_CHECKS.get(type(section))
    if check is not None:
        check(section, prefix)


def _check_data(data: DataConfig, prefix: str) -> None:
    """data.kind is a kind that mvmr.data can build; kind hf, and it alone, names its dataset."""
    if data.kind not in DATASET_KINDS:
        raise ConfigError(f"{prefix}kind: expected one of {', '.join(map(repr, DATASET_KINDS))}, got {data.kind!r}")
    if data.kind == "hf" and not data.name:
        raise ConfigError(
            f"{prefix}name: required with {prefix}kind=hf: a Hub dataset id (user/name) or a save_to_disk folder"
        )
    if data.kind != "hf" and data.name is not None:
        raise ConfigError(f"{prefix}name: only read with {prefix}kind=hf (the {data.kind} data are at {prefix}root)")


def _check_model(model: ModelConfig, prefix: str) -> None:
    """mean and std come together, one value per channel."""
    mean, std = model.mean, model.std
    if (mean is None) != (std is None) or (mean is not None and std is not None and len(mean) != len(std)):
        raise ConfigError(f"{prefix}std: give mean and std together, with one value per channel")


def _check_loss(loss: LossConfig, prefix: str) -> None:
    """Every beta_k is >= 0 (and not NaN)."""
    betas = loss.beta.items() if isinstance(loss.beta, dict) else [("", loss.beta)]
    for name, value in betas:
        if not value >= 0:
            raise ConfigError(f"{prefix}beta{'.' + name if name else ''}: must be >= 0, got {value!r}")


def _check_representations(representations: RepresentationsConfig, prefix: str) -> None:
    """No representation is listed twice (names key the loss terms and the cache)."""
    names = [spec.name for spec in representations.items]
    for i, name in enumerate(names):
        if name in names[:i]:
            raise ConfigError(f"{prefix}items[{i}].name: representation {name!r} is listed twice")


def _check_optim(optim: OptimConfig, prefix: str) -> None:
    """A cosine that does not end above where it starts."""
    if optim.min_lr > optim.lr:
        raise ConfigError(f"{prefix}min_lr: must be <= optim.lr ({optim.lr}), got {optim.min_lr}")


def _check_trainer(trainer: TrainerConfig, prefix: str) -> None:
    """Each logger once."""
    for i, name in enumerate(trainer.loggers):
        if name in trainer.loggers[:i]:
            raise ConfigError(f"{prefix}loggers[{i}]: {name!r} is listed twice")


def _check_teacher(teacher: TeacherConfig, prefix: str) -> None:
    """A teacher's spec parses, its options are its own, and precomputed embeddings are read from a cache."""
    if teacher.spec is None:
        if teacher.weights is not None:
            raise ConfigError(f"{prefix}weights: given without {prefix}spec (no teacher is configured)")
        return
    if not re.fullmatch(r"[A-Za-z0-9_.-]+", teacher.name):
        raise ConfigError(f"{prefix}name: expected letters, digits, '_', '.' or '-', got {teacher.name!r}")
    try:
        kind, _ = parse_teacher_spec(teacher.spec)
    except ValueError as err:
        raise ConfigError(f"{prefix}spec: {err}") from None
    for key, where in _TEACHER_RESERVED_OPTIONS.items():
        if key in teacher.options:
            raise ConfigError(f"{prefix}options.{key}: not an option here; set {where}")
    size = teacher.options.get("input_size")
    if size is not None and (isinstance(size, bool) or not isinstance(size, int) or size < 8):
        raise ConfigError(f"{prefix}options.input_size: expected an int >= 8, got {size!r}")
    if teacher.cached_views > 0 and teacher.view != "augmented":
        raise ConfigError(
            f"{prefix}cached_views: stored views are augmented views the teacher embeds; set "
            f"{prefix}view: augmented (or {prefix}cached_views: 0)"
        )
    if teacher.cached_views > 0 and not teacher.cache:
        raise ConfigError(
            f"{prefix}cache: cached_views={teacher.cached_views} stores the teacher's embeddings of the "
            f"views in its cache; set {prefix}cache: true (or {prefix}cached_views: 0)"
        )
    if kind == "embeddings" and teacher.view == "augmented":
        raise ConfigError(
            f"{prefix}view: {teacher.spec!r} holds precomputed embeddings of the clean images; only a "
            f"teacher that runs can embed the augmented view (view: clean)"
        )
    if kind == "embeddings":
        if teacher.weights is not None:
            raise ConfigError(
                f"{prefix}weights: {teacher.spec!r} is a file of precomputed embeddings, it has no weights"
            )
        if not teacher.cache:
            raise ConfigError(
                f"{prefix}cache: {teacher.spec!r} holds precomputed embeddings, read by index; there is "
                f"no teacher to run at every step (set cache: true)"
            )
        unknown = sorted(set(teacher.options) - {"check_finite"})
        if unknown:
            raise ConfigError(f"{prefix}options.{unknown[0]}: embeddings: specs take only check_finite")


def _check_config(config: Config, prefix: str) -> None:
    """Representations are registered (plugins imported by now) and match loss.beta; the teacher is a
    distinct representation whose dCor is maximised; the warm-up ends before training does."""
    names = [spec.name for spec in config.representations.items]
    teacher = config.teacher
    if teacher.spec is not None and teacher.name in names:
        raise ConfigError(
            f"{prefix}teacher.name: {teacher.name!r} is also representations.items"
            f"[{names.index(teacher.name)}].name; give the teacher another name"
        )
    if teacher.spec is not None and isinstance(config.loss.beta, dict) and teacher.name in config.loss.beta:
        raise ConfigError(f"{prefix}loss.beta.{teacher.name}: the teacher's weight is teacher.beta, not loss.beta")
    if teacher.spec is not None and config.loss.l3 == "minimize":
        raise ConfigError(
            f"{prefix}loss.l3: 'minimize' would push the student AWAY from the teacher; distillation "
            f"maximises dCor(z_aug, teacher) (paper sec. 5.2): use loss.l3=maximize"
        )
    known = available_representations()
    listed = [
        ("representations.items", config.representations.items),
        ("evaluation.ssl_representations", config.evaluation.ssl_representations or []),
    ]
    for key, specs in listed:
        for i, spec in enumerate(specs):
            if spec.name not in known:
                raise ConfigError(
                    f"{prefix}{key}[{i}].name: unknown representation {spec.name!r}; available: {', '.join(known)}"
                )
    if isinstance(config.loss.beta, dict):
        for name in config.loss.beta:
            if name not in names:
                raise ConfigError(
                    f"{prefix}loss.beta.{name}: no such representation in representations.items ({', '.join(names)})"
                )
        for i, name in enumerate(names):
            if name not in config.loss.beta:
                raise ConfigError(
                    f"{prefix}loss.beta: no weight for representation {name!r} (representations.items[{i}])"
                )
    warmup, epochs = config.optim.warmup_epochs, config.trainer.max_epochs
    if warmup > 0 and warmup >= epochs:
        raise ConfigError(f"{prefix}optim.warmup_epochs: must be < trainer.max_epochs ({epochs}), got {warmup}")


#: the cross-key checks of each section, run by :func:`_check_sections`
_SECTION_CHECKS: dict[type, Callable[[Any, str], None]] = {
    DataConfig: _check_data,
    ModelConfig: _check_model,
    LossConfig: _check_loss,
    OptimConfig: _check_optim,
    RepresentationsConfig: _check_representations,
    TrainerConfig: _check_trainer,
    TeacherConfig: _check_teacher,
    Config: _check_config,
}
