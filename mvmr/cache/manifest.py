"""The on-disk format of a feature cache, and how its manifest is compared with a configuration.

``root/`` holds ``.mvmr-feature-cache`` (a marker written first, telling an incomplete cache from an
unrelated folder, which is never deleted), one ``(N, D_k)`` float16 ``<k>-<name>.npy`` per
representation (row ``i``: ``dataset[i]``) and ``manifest.json``, written last: without a valid one
the cache is incomplete and never read. The manifest records the format version; per representation
its name, class, settings (``rep.config()``, JSON-serialisable), ``raw_dim``,
``dim`` and projection; the dataset fingerprint, image size and shape, ``N``, ``project_dim``, seed,
dtype, the rows of each rank (``shards``), the PyTorch version, and (version 2) every file's
``integrity`` (:mod:`mvmr.cache.integrity`). A value that is not finite or beyond the float16 range
makes the build fail naming the representation: values are never clipped or rescaled. A cache of
stored augmented views (the dataset has ``view_columns``) also holds ``views.npy``, the float64
parameters of every row's view, and the manifest's ``views`` entry names its columns.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch

from mvmr.errors import MVMRError
from mvmr.representations.base import Representation
from mvmr.representations.projection import BLOCK_ROWS, derive_seed

__all__ = [
    "FORMAT_VERSION",
    "FORMAT_NAME",
    "MANIFEST",
    "MARKER",
    "DTYPE",
    "FLOAT16_MAX",
    "VIEWS_FILE",
    "VIEWS_DTYPE",
    "view_columns",
    "views_entry",
    "CacheError",
    "CacheMismatchError",
    "IncompleteCacheError",
    "dataset_fingerprint",
    "describe_representation",
    "named_representations",
    "item_image",
    "manifest_entry",
    "read_manifest",
    "check_manifest",
    "expected_manifest",
]

#: Version of the on-disk layout; a cache of another version is refused. 2: per-chunk checksums.
FORMAT_VERSION: int = 2
FORMAT_NAME = "mvmr-feature-cache"
MANIFEST = "manifest.json"
MARKER = ".mvmr-feature-cache"
DTYPE = np.float16
FLOAT16_MAX = float(np.finfo(np.float16).max)
#: The stored views' parameters (exact: float64), in caches of datasets with ``view_columns``.
VIEWS_FILE = "views.npy"
VIEWS_DTYPE = np.float64


class CacheError(MVMRError, ValueError):
    """A feature cache cannot be built or read."""


class CacheMismatchError(CacheError):
    """A cache's manifest does not match the current configuration or data."""


class IncompleteCacheError(CacheError):
    """A cache directory exists but its build never completed (no valid manifest)."""


def item_image(item: Any) -> torch.Tensor:
    """The clean image of a dataset item: the item itself or its first element, checked."""
    image = item[0] if isinstance(item, (tuple, list)) else item
    if not isinstance(image, torch.Tensor):
        raise CacheError(
            f"dataset items must be tensors or tuples starting with an image tensor, got {type(image).__name__}"
        )
    if image.ndim != 3 or not image.is_floating_point():
        raise CacheError(
            f"dataset images must be float (C, H, W) tensors in [0, 1], got {image.dtype} of shape {tuple(image.shape)}"
        )
    return image


def dataset_fingerprint(dataset: Any, *, samples: int = 8) -> str:
    """``dataset.fingerprint()`` when it has one, else a hash of the class name, the length and the
    images of ``samples`` evenly spaced items: it detects a different or resized dataset, not a
    change to an unsampled item."""
    method = getattr(dataset, "fingerprint", None)
    if callable(method):
        return str(method())
    n = len(dataset)
    digest = hashlib.sha256(f"{type(dataset).__qualname__}\x00{n}".encode())
    if n > 0:
        for index in sorted({round(i * (n - 1) / max(1, samples - 1)) for i in range(samples)}):
            image = item_image(dataset[index]).detach().to("cpu", torch.float32).contiguous()
            digest.update(f"\x00{index}\x00{tuple(image.shape)}".encode())
            digest.update(image.numpy().tobytes())
    return "sha256-sampled:" + digest.hexdigest()[:32]


def view_columns(dataset: Any) -> tuple[str, ...] | None:
    """The parameter columns of a dataset of stored views (its ``view_columns``), None for plain images."""
    columns = getattr(dataset, "view_columns", None)
    return None if columns is None else tuple(str(c) for c in columns)


def views_entry(dataset: Any) -> dict[str, Any] | None:
    """The manifest's ``views`` entry of a dataset of stored views (None for plain images): the file, its
    columns and the settings that decided the views (``dataset.view_settings()``: count, seed, ...)."""
    columns = view_columns(dataset)
    if columns is None:
        return None
    settings = dataset.view_settings() if callable(getattr(dataset, "view_settings", None)) else {}
    return _json({"file": VIEWS_FILE, "dtype": "float64", "columns": list(columns), "settings": settings})


def _json(value: Any) -> Any:
    """``value`` as it reads back from JSON (tuples become lists, etc.)."""
    return json.loads(json.dumps(value, sort_keys=True))


def describe_representation(rep: Representation) -> dict[str, Any]:
    """The ``class`` and ``config`` that identify a representation's settings in a manifest."""
    cls = type(rep)
    try:
        config: Any = _json(rep.config())
    except TypeError as err:
        raise CacheError(f"{cls.__qualname__}.config() is not JSON serialisable: {err}") from None
    return {"class": f"{cls.__module__}.{cls.__qualname__}", "config": config}


def named_representations(
    representations: Sequence[Representation] | Mapping[str, Representation],
) -> list[tuple[str, Representation]]:
    """``(name, representation)`` pairs, checked: unique names, deterministic representations."""
    if isinstance(representations, Mapping):
        pairs = [(str(k), v) for k, v in representations.items()]
    else:
        pairs = [(getattr(r, "name", type(r).__name__), r) for r in representations]
    if not pairs:
        raise CacheError("no representations to cache")
    seen: set[str] = set()
    for name, rep in pairs:
        if not isinstance(rep, Representation):
            raise CacheError(f"{name!r} is a {type(rep).__name__}, not a Representation")
        if name in seen:
            raise CacheError(f"representation name {name!r} appears twice")
        seen.add(name)
        if not getattr(rep, "deterministic", False):
            raise CacheError(
                f"representation {name!r} is not deterministic (e.g. it augments its input): its features differ "
                f"on every call and cannot be cached; compute it on the fly"
            )
    return pairs


def manifest_entry(
    index: int, name: str, rep: Representation, shape: tuple[int, ...] | None, project_dim: int | None, seed: int
) -> dict[str, Any]:
    """The manifest entry of one representation (everything but run-time state)."""
    raw_dim: int | None = None
    if shape is not None:
        try:
            raw_dim = int(rep.output_dim(*shape))
        except NotImplementedError:
            raise CacheError(f"representation {name!r} does not implement output_dim()") from None
    projected = project_dim is not None and raw_dim is not None and raw_dim > project_dim
    projection = {
        "kind": "gaussian",
        "std": "1/sqrt(dim)",
        "seed": seed,
        "key": name,
        "block_rows": BLOCK_ROWS,
        "derived_seed": derive_seed(seed, name),
    }
    return _json(
        {
            "name": name,
            **describe_representation(rep),
            "raw_dim": raw_dim,
            "dim": project_dim if projected else raw_dim,
            "projection": projection if projected else None,
            "file": f"{index:02d}-{re.sub(r'[^A-Za-z0-9_.-]+', '_', name)}.npy",
        }
    )


def expected_manifest(
    *,
    dataset: Any,
    representations: Sequence[Representation] | Mapping[str, Representation],
    image_size: int,
    project_dim: int | None = None,
    seed: int = 0,
    fingerprint: str | None = None,
) -> dict[str, Any]:
    """The ``expect`` mapping of :func:`check_manifest` for the current configuration and data."""
    pairs = named_representations(representations)
    shape = tuple(item_image(dataset[0]).shape) if len(dataset) else None
    return {
        "views": views_entry(dataset),
        "n": len(dataset),
        "dataset_fingerprint": fingerprint if fingerprint is not None else dataset_fingerprint(dataset),
        "image_size": image_size,
        "project_dim": project_dim,
        "seed": seed,
        "representations": [
            manifest_entry(i, name, rep, shape, project_dim, seed) for i, (name, rep) in enumerate(pairs)
        ],
    }


def read_manifest(root: Path) -> dict[str, Any]:
    """The manifest of a complete cache, or raise FileNotFoundError / :class:`IncompleteCacheError` /
    :class:`CacheError`."""
    if not root.exists():
        raise FileNotFoundError(f"no feature cache at {root}")
    if not root.is_dir():
        raise CacheError(f"{root} is not a directory, so not a feature cache")
    path = root / MANIFEST
    if not path.is_file():
        if (root / MARKER).exists():
            raise IncompleteCacheError(f"feature cache at {root} is incomplete (its build was interrupted); rebuild it")
        raise CacheError(f"{root} is not a feature cache (no {MANIFEST})")
    try:
        manifest = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as err:
        raise IncompleteCacheError(f"feature cache manifest {path} is unreadable ({err}); rebuild it") from None
    if not isinstance(manifest, dict) or manifest.get("format") != FORMAT_NAME:
        raise CacheError(f"{path} is not a feature cache manifest")
    if manifest.get("version") != FORMAT_VERSION:
        old = isinstance(manifest.get("version"), int) and manifest["version"] < FORMAT_VERSION
        why = (
            " (an older mvmr wrote it, without the per-chunk checksums this version checks every read against)"
            if old
            else " (a newer mvmr wrote it)"
        )
        raise CacheMismatchError(
            f"feature cache at {root}: field 'version' differs: "
            f"cached={manifest.get('version')!r}, current={FORMAT_VERSION!r}{why}; rebuild it "
            f"(`mvmr cache --rebuild`, rebuild=True, or delete the folder)"
        )
    if not manifest.get("complete", False):
        raise IncompleteCacheError(f"feature cache at {root} is incomplete; rebuild it")
    return manifest


_EXPECT_KEYS = {"n", "dataset_fingerprint", "image_size", "project_dim", "seed", "dtype", "representations", "views"}


def check_manifest(root: Path, manifest: Mapping[str, Any], expect: Mapping[str, Any]) -> None:
    """Raise :class:`CacheMismatchError` naming the first field where ``expect`` differs from ``manifest``.

    ``expect`` may hold any of :data:`_EXPECT_KEYS` (``seed`` is checked only with a ``project_dim``);
    its ``representations`` are manifest entries, as :func:`expected_manifest` makes them.
    """

    def differ(field: str, cached: Any, current: Any) -> CacheMismatchError:
        return CacheMismatchError(
            f"feature cache at {root} does not match the current configuration: field {field!r} differs "
            f"(cached={cached!r}, current={current!r}); rebuild the cache (--rebuild / rebuild=True) "
            "or use another directory"
        )

    unknown = set(expect) - _EXPECT_KEYS
    if unknown:
        raise ValueError(f"unknown cache expectation keys {sorted(unknown)}; known: {sorted(_EXPECT_KEYS)}")
    if "views" in expect:  # first: a changed count, seed or augmentation also changes the fingerprint
        cached, current = manifest.get("views") or {}, expect["views"] or {}
        if bool(cached) != bool(current):
            what = {True: "stored augmented views", False: "features of the clean images"}
            raise differ("views", what[bool(cached)], what[bool(current)])
        for key in sorted(set(cached.get("settings", {})) | set(current.get("settings", {}))):
            if cached.get("settings", {}).get(key) != current.get("settings", {}).get(key):
                raise differ(f"views.{key}", cached.get("settings", {}).get(key), current.get("settings", {}).get(key))
        if cached.get("columns") != current.get("columns"):
            raise differ("views.columns", cached.get("columns"), current.get("columns"))
    for key in ("dataset_fingerprint", "image_size", "n", "project_dim", "dtype"):
        if key in expect and manifest.get(key) != expect[key]:
            raise differ(key, manifest.get(key), expect[key])
    if "seed" in expect and manifest.get("project_dim") is not None and manifest.get("seed") != expect["seed"]:
        raise differ("seed", manifest.get("seed"), expect["seed"])

    if "representations" not in expect:
        return
    cached_by_name = {r["name"]: r for r in manifest["representations"]}
    current_by_name = {r["name"]: r for r in expect["representations"]}
    if set(current_by_name) != set(cached_by_name):
        raise differ("representations", sorted(cached_by_name), sorted(current_by_name))
    for name, entry in current_by_name.items():
        for field in ("class", "config", "raw_dim", "dim", "projection"):
            if field in entry and _json(entry[field]) != cached_by_name[name].get(field):
                raise differ(f"representations[{name!r}].{field}", cached_by_name[name].get(field), entry[field])
