"""Precomputed, memory-mapped features of the deterministic representations of a dataset.

For a fixed dataset and image size the deterministic representations of the clean view never
change, so recomputing them every step (ScatNet: ~140k values per image) wastes time. A
:class:`FeatureCache` computes them once and stores them on disk:

``root/``
    ``manifest.json``
        written last; describes the cache (see below). A directory without a valid manifest is
        an incomplete cache and is never read.
    ``.mvmr-feature-cache``
        marker written first, so that an incomplete cache can be told apart from an unrelated
        directory (which is never deleted).
    ``<k>-<name>.npy``
        one ``(N, D_k)`` float16 ``.npy`` file per representation, opened with ``np.load(...,
        mmap_mode="r")``; row ``i`` holds the features of ``dataset[i]``.

The manifest records the format version, for each representation its name, class, settings
(``rep.config()`` when the representation has such a method returning a JSON-serialisable
dict, otherwise ``repr(rep)``, i.e. the module's ``extra_repr`` and children), its dimension
before (``raw_dim``) and after (``dim``) projection and the projection parameters, the dataset
fingerprint, the image size and shape, ``N``, ``project_dim``, the projection seed, the dtype and
the PyTorch version (information only). :meth:`FeatureCache.open` with ``expect`` refuses a cache
whose manifest differs from the current configuration and names the differing field.

**Crash safety.** :meth:`FeatureCache.build` writes into a sibling directory
``<root>.tmp-<pid>``, writes the manifest last (atomically), then renames the directory to
``root``. An interrupted build therefore leaves no ``root`` (or, at worst, a marked directory
without manifest, which :meth:`open` reports as incomplete); stale ``.tmp-<pid>`` directories of
dead processes are removed by the next build.

**float16.** Values are stored as float16 (relative precision ~5e-4). A value that is not finite
or beyond the float16 range (|x| > 65504) makes the build fail with a :class:`CacheError` naming
the representation; values are never silently clipped or rescaled. The built-in representations
of [0, 1] images (pixels, HOG, local std, ScatNet) are far inside that range.

**Projection.** With ``project_dim``, each representation with more than ``project_dim``
dimensions is compressed by a :class:`~mvmr.representations.projection.RandomProjection` seeded
by ``(seed, name)``; smaller ones are stored as they are.

**Use in training.** The simplest use is to call :meth:`FeatureCache.get` with the batch of
dataset indices in the training step (``TwoViews`` returns the index), which returns float32
``(B, D_k)`` tensors. :class:`CachedDataset` instead appends the cached features to every item,
for DataLoader-side loading. Both are usable from DataLoader workers: a cache pickles as its path
and manifest and reopens its memory maps lazily in each process.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import time
from pathlib import Path
from typing import Any, Mapping, Sequence

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset

from mvmr.errors import MVMRError
from mvmr.representations.base import Representation
from mvmr.representations.projection import BLOCK_ROWS, RandomProjection, derive_seed

__all__ = [
    "FORMAT_VERSION",
    "CacheError",
    "CacheMismatchError",
    "IncompleteCacheError",
    "FeatureCache",
    "CachedDataset",
    "dataset_fingerprint",
    "describe_representation",
]

#: Version of the on-disk layout; a cache of another version is refused.
FORMAT_VERSION: int = 1
FORMAT_NAME = "mvmr-feature-cache"
MANIFEST = "manifest.json"
MARKER = ".mvmr-feature-cache"
DTYPE = np.float16
FLOAT16_MAX = float(np.finfo(np.float16).max)


class CacheError(MVMRError, ValueError):
    """A feature cache cannot be built or read."""


class CacheMismatchError(CacheError):
    """A cache's manifest does not match the current configuration or data."""


class IncompleteCacheError(CacheError):
    """A cache directory exists but its build never completed (no valid manifest)."""


# ----------------------------------------------------------------------------- helpers


def _item_image(item: Any) -> torch.Tensor:
    """The clean image of a dataset item: the item itself or its first element."""
    image = item[0] if isinstance(item, (tuple, list)) else item
    if not isinstance(image, torch.Tensor):
        raise CacheError(
            f"dataset items must be tensors or tuples starting with an image tensor, "
            f"got {type(image).__name__}"
        )
    if image.ndim != 3 or not image.is_floating_point():
        raise CacheError(
            f"dataset images must be float (C, H, W) tensors in [0, 1], "
            f"got {image.dtype} of shape {tuple(image.shape)}"
        )
    return image


def _collate_images(items: list[Any]) -> torch.Tensor:
    """DataLoader collate: stack the first element of each item, ignore the rest."""
    return torch.stack([_item_image(item) for item in items])


def dataset_fingerprint(dataset: Any, *, samples: int = 8) -> str:
    """A fingerprint of ``dataset``: ``dataset.fingerprint()`` when it has one, else a hash.

    The fallback hashes the class name, ``len(dataset)`` and the image bytes of ``samples``
    evenly spaced items (first and last included). It detects a different or resized dataset,
    not a change to an unsampled item: datasets should provide ``fingerprint()``.
    """
    method = getattr(dataset, "fingerprint", None)
    if callable(method):
        return str(method())
    n = len(dataset)
    digest = hashlib.sha256()
    digest.update(f"{type(dataset).__qualname__}\x00{n}".encode())
    if n > 0:
        picks = sorted({round(i * (n - 1) / max(1, samples - 1)) for i in range(samples)})
        for index in picks:
            image = _item_image(dataset[index]).detach().to("cpu", torch.float32).contiguous()
            digest.update(f"\x00{index}\x00{tuple(image.shape)}".encode())
            digest.update(image.numpy().tobytes())
    return "sha256-sampled:" + digest.hexdigest()[:32]


def _json_normalise(value: Any) -> Any:
    """``value`` as it reads back from JSON (tuples become lists, etc.)."""
    return json.loads(json.dumps(value, sort_keys=True))


def describe_representation(rep: Representation) -> dict[str, Any]:
    """The ``class`` and ``config`` that identify a representation's settings in a manifest.

    ``config`` is ``rep.config()`` when the representation defines it (must be JSON
    serialisable), otherwise ``repr(rep)``.
    """
    cls = type(rep)
    method = getattr(rep, "config", None)
    if callable(method):
        try:
            config: Any = _json_normalise(method())
        except TypeError as err:
            raise CacheError(f"{cls.__qualname__}.config() is not JSON serialisable: {err}") from None
    else:
        config = repr(rep)
    return {"class": f"{cls.__module__}.{cls.__qualname__}", "config": config}


def _named_representations(
    representations: Sequence[Representation] | Mapping[str, Representation],
) -> list[tuple[str, Representation]]:
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
                f"representation {name!r} is not deterministic (e.g. it augments its input): its "
                f"features differ on every call and cannot be cached; compute it on the fly"
            )
    return pairs


def _file_name(index: int, name: str) -> str:
    return f"{index:02d}-{re.sub(r'[^A-Za-z0-9_.-]+', '_', name)}.npy"


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _remove_stale_siblings(root: Path) -> None:
    """Delete ``<root>.tmp-<pid>`` / ``<root>.old-<pid>`` left by dead processes."""
    parent = root.parent
    if not parent.is_dir():
        return
    pattern = re.compile(re.escape(root.name) + r"\.(tmp|old)-(\d+)$")
    for path in parent.iterdir():
        match = pattern.match(path.name)
        if match and path.is_dir() and not _pid_alive(int(match.group(2))):
            shutil.rmtree(path, ignore_errors=True)


def _write_json_atomic(path: Path, data: Mapping[str, Any]) -> None:
    tmp = path.with_name(path.name + f".tmp-{os.getpid()}")
    with open(tmp, "w", encoding="utf-8") as f:
        json.dump(data, f, indent=2, sort_keys=True)
        f.write("\n")
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)


def _read_manifest(root: Path) -> dict[str, Any]:
    """The manifest of a complete cache, or raise FileNotFoundError / IncompleteCacheError."""
    if not root.exists():
        raise FileNotFoundError(f"no feature cache at {root}")
    if not root.is_dir():
        raise CacheError(f"{root} is not a directory, so not a feature cache")
    path = root / MANIFEST
    if not path.is_file():
        if (root / MARKER).exists():
            raise IncompleteCacheError(
                f"feature cache at {root} is incomplete (its build was interrupted); rebuild it"
            )
        raise CacheError(f"{root} is not a feature cache (no {MANIFEST})")
    try:
        manifest = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as err:
        raise IncompleteCacheError(f"feature cache manifest {path} is unreadable ({err}); rebuild it") from None
    if not isinstance(manifest, dict) or manifest.get("format") != FORMAT_NAME:
        raise CacheError(f"{path} is not a feature cache manifest")
    if manifest.get("version") != FORMAT_VERSION:
        raise CacheMismatchError(
            f"feature cache at {root}: field 'version' differs: cached={manifest.get('version')!r}, "
            f"current={FORMAT_VERSION!r}; rebuild it"
        )
    if not manifest.get("complete", False):
        raise IncompleteCacheError(f"feature cache at {root} is incomplete; rebuild it")
    return manifest


# ----------------------------------------------------------------------------- the cache


class FeatureCache:
    """Read-only, memory-mapped features of a dataset's deterministic representations.

    Create with :meth:`build`, :meth:`open` (alias :meth:`load`) or :meth:`open_or_build`.
    ``cache.get(indices)`` returns ``{name: float32 tensor (B, D_k)}``; ``cache.names``,
    ``cache.dims`` (after projection), ``cache.raw_dims`` (before), ``len(cache)`` (= N),
    ``cache.manifest`` describe it. Picklable: memory maps are reopened lazily per process.
    """

    def __init__(self, root: str | os.PathLike[str], manifest: Mapping[str, Any]) -> None:
        """Wrap an already validated cache; use :meth:`open` instead."""
        self.root = Path(root)
        self.manifest: dict[str, Any] = dict(manifest)
        self._reps: dict[str, dict[str, Any]] = {r["name"]: r for r in self.manifest["representations"]}
        self._arrays: dict[str, np.ndarray] = {}
        self._pid = os.getpid()

    # -- description ------------------------------------------------------------------
    @property
    def names(self) -> list[str]:
        """Representation names, in build order."""
        return list(self._reps)

    @property
    def dims(self) -> dict[str, int]:
        """Stored dimension ``D_k`` per representation (after projection)."""
        return {name: int(r["dim"]) for name, r in self._reps.items()}

    @property
    def raw_dims(self) -> dict[str, int]:
        """Dimension per representation before projection."""
        return {name: int(r["raw_dim"]) for name, r in self._reps.items()}

    @property
    def fingerprint(self) -> str:
        """The dataset fingerprint the cache was built for."""
        return str(self.manifest["dataset_fingerprint"])

    def __len__(self) -> int:
        return int(self.manifest["n"])

    def __repr__(self) -> str:
        dims = ", ".join(f"{k}={v}" for k, v in self.dims.items())
        return f"FeatureCache({str(self.root)!r}, n={len(self)}, {dims})"

    # -- pickling / lazy memory maps --------------------------------------------------
    def __getstate__(self) -> dict[str, Any]:
        return {"root": str(self.root), "manifest": self.manifest}

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__init__(state["root"], state["manifest"])  # type: ignore[misc]

    def array(self, name: str) -> np.ndarray:
        """The read-only ``(N, D_k)`` float16 memory map of one representation."""
        if self._pid != os.getpid():
            self._arrays = {}
            self._pid = os.getpid()
        arr = self._arrays.get(name)
        if arr is None:
            try:
                entry = self._reps[name]
            except KeyError:
                raise KeyError(f"no representation {name!r} in cache; it has {self.names}") from None
            path = self.root / entry["file"]
            try:
                arr = np.load(path, mmap_mode="r")
            except (OSError, ValueError) as err:
                raise IncompleteCacheError(f"feature cache file {path} is unreadable ({err}); rebuild it") from None
            expected = (len(self), int(entry["dim"]))
            if arr.shape != expected or arr.dtype != DTYPE:
                raise IncompleteCacheError(
                    f"feature cache file {path} has shape {arr.shape} / {arr.dtype}, "
                    f"expected {expected} / float16; rebuild it"
                )
            self._arrays[name] = arr
        return arr

    # -- reading ----------------------------------------------------------------------
    def get(
        self,
        indices: torch.Tensor | np.ndarray | Sequence[int] | int,
        *,
        names: Sequence[str] | None = None,
        device: torch.device | str | None = None,
    ) -> dict[str, torch.Tensor]:
        """Cached features of the given dataset indices: ``{name: float32 (B, D_k)}``.

        Indices may be unordered and repeated (rows come back in the order asked); an int gives
        ``(D_k,)`` tensors. ``names`` selects representations (default: all); ``device`` moves
        the result (default: CPU).
        """
        scalar = isinstance(indices, (int, np.integer)) or (
            isinstance(indices, torch.Tensor) and indices.ndim == 0
        )
        if isinstance(indices, torch.Tensor):
            idx = indices.detach().to("cpu").reshape(-1).numpy()
        else:
            idx = np.asarray(indices).reshape(-1)
        if idx.size and not np.issubdtype(idx.dtype, np.integer):
            raise TypeError(f"cache indices must be integers, got dtype {idx.dtype}")
        idx = idx.astype(np.int64, copy=False)
        n = len(self)
        if idx.size and (idx.min() < 0 or idx.max() >= n):
            bad = int(idx[(idx < 0) | (idx >= n)][0])
            raise IndexError(f"index {bad} out of range for a feature cache of {n} items")
        # Read each needed row once, in increasing order (sequential disk access), then reorder.
        unique, inverse = np.unique(idx, return_inverse=True)
        out: dict[str, torch.Tensor] = {}
        for name in names if names is not None else self.names:
            rows = np.asarray(self.array(name)[unique], dtype=np.float32)[inverse]
            tensor = torch.from_numpy(rows)
            if scalar:
                tensor = tensor[0]
            out[name] = tensor.to(device) if device is not None else tensor
        return out

    def __getitem__(self, index: int) -> dict[str, torch.Tensor]:
        """``cache.get(index)`` for one dataset index: ``{name: (D_k,)}``."""
        return self.get(int(index))

    # -- comparing with a configuration -----------------------------------------------
    @staticmethod
    def expected(
        *,
        dataset: Any,
        representations: Sequence[Representation] | Mapping[str, Representation],
        image_size: int,
        project_dim: int | None = None,
        seed: int = 0,
        fingerprint: str | None = None,
    ) -> dict[str, Any]:
        """The ``expect`` dict for :meth:`open` describing the current configuration and data."""
        pairs = _named_representations(representations)
        shape = tuple(_item_image(dataset[0]).shape) if len(dataset) else None
        return {
            "n": len(dataset),
            "dataset_fingerprint": fingerprint if fingerprint is not None else dataset_fingerprint(dataset),
            "image_size": image_size,
            "project_dim": project_dim,
            "seed": seed,
            "representations": [
                _rep_entry(i, name, rep, shape, project_dim, seed) for i, (name, rep) in enumerate(pairs)
            ],
        }

    def check(self, expect: Mapping[str, Any]) -> None:
        """Raise :class:`CacheMismatchError` naming the first field where ``expect`` differs.

        Keys of ``expect`` (all optional): ``n``, ``dataset_fingerprint`` (or ``fingerprint``),
        ``image_size``, ``project_dim``, ``seed`` (checked only when ``project_dim`` is set),
        ``dtype`` and ``representations`` (manifest entries as made by :meth:`expected`, or
        representations as a sequence/mapping; compared by name, class, config, raw_dim, dim).
        """
        m = self.manifest

        def differ(field: str, cached: Any, current: Any) -> CacheMismatchError:
            return CacheMismatchError(
                f"feature cache at {self.root} does not match the current configuration: field "
                f"{field!r} differs (cached={cached!r}, current={current!r}); rebuild the cache "
                f"(--rebuild / rebuild=True) or use another directory"
            )

        known = {"n", "dataset_fingerprint", "fingerprint", "image_size", "project_dim", "seed", "dtype", "representations"}
        unknown = set(expect) - known
        if unknown:
            raise ValueError(f"unknown cache expectation keys {sorted(unknown)}; known: {sorted(known)}")
        plain = {"fingerprint": "dataset_fingerprint"}
        for key in ("dataset_fingerprint", "fingerprint", "image_size", "n", "project_dim", "dtype"):
            if key in expect:
                field = plain.get(key, key)
                if m.get(field) != expect[key]:
                    raise differ(field, m.get(field), expect[key])
        if "seed" in expect and m.get("project_dim") is not None and m.get("seed") != expect["seed"]:
            raise differ("seed", m.get("seed"), expect["seed"])
        if "representations" in expect:
            current = expect["representations"]
            if isinstance(current, Mapping) or (
                isinstance(current, Sequence) and current and isinstance(current[0], Representation)
            ):
                shape = tuple(m["image_shape"])
                pairs = _named_representations(current)
                current = [
                    _rep_entry(i, name, rep, shape, m.get("project_dim"), m.get("seed", 0))
                    for i, (name, rep) in enumerate(pairs)
                ]
            current_by_name = {r["name"]: r for r in current}
            if set(current_by_name) != set(self._reps):
                raise differ("representations", sorted(self._reps), sorted(current_by_name))
            for name, entry in current_by_name.items():
                cached = self._reps[name]
                for field in ("class", "config", "raw_dim", "dim", "projection"):
                    if field in entry and _json_normalise(entry[field]) != cached.get(field):
                        raise differ(f"representations[{name!r}].{field}", cached.get(field), entry[field])

    # -- opening ------------------------------------------------------------------------
    @classmethod
    def open(cls, root: str | os.PathLike[str], *, expect: Mapping[str, Any] | None = None) -> "FeatureCache":
        """Open a complete cache read-only; with ``expect``, refuse one that does not match.

        Raises FileNotFoundError (missing), :class:`IncompleteCacheError` (interrupted build),
        :class:`CacheMismatchError` (different configuration or data; names the field).
        """
        root = Path(root)
        cache = cls(root, _read_manifest(root))
        for name in cache.names:
            cache.array(name)  # validates every file's presence, shape and dtype
        if expect is not None:
            cache.check(expect)
        return cache

    load = open

    @classmethod
    def open_or_build(
        cls,
        root: str | os.PathLike[str],
        *,
        dataset: Any,
        representations: Sequence[Representation] | Mapping[str, Representation],
        image_size: int,
        project_dim: int | None = None,
        seed: int = 0,
        batch_size: int = 64,
        num_workers: int = 0,
        device: torch.device | str = "cpu",
        fingerprint: str | None = None,
        progress: bool = True,
        rebuild: bool = False,
    ) -> "FeatureCache":
        """Open the cache at ``root`` if it matches; build it when missing or incomplete.

        A complete cache built for another configuration or dataset raises
        :class:`CacheMismatchError` unless ``rebuild=True``, which replaces it.
        """
        root = Path(root)
        build_kwargs: dict[str, Any] = dict(
            dataset=dataset,
            representations=representations,
            image_size=image_size,
            project_dim=project_dim,
            seed=seed,
            batch_size=batch_size,
            num_workers=num_workers,
            device=device,
            fingerprint=fingerprint,
            progress=progress,
        )
        if root.is_dir() and any(root.iterdir()):
            expect = cls.expected(
                dataset=dataset,
                representations=representations,
                image_size=image_size,
                project_dim=project_dim,
                seed=seed,
                fingerprint=fingerprint,
            )
            try:
                return cls.open(root, expect=expect)
            except IncompleteCacheError:
                pass  # interrupted build: rebuild below
            except CacheMismatchError:
                if not rebuild:
                    raise
        return cls.build(root, overwrite=True, **build_kwargs)

    # -- building ---------------------------------------------------------------------
    @classmethod
    def build(
        cls,
        root: str | os.PathLike[str],
        *,
        dataset: Any,
        representations: Sequence[Representation] | Mapping[str, Representation],
        image_size: int,
        project_dim: int | None = None,
        seed: int = 0,
        batch_size: int = 64,
        num_workers: int = 0,
        device: torch.device | str = "cpu",
        fingerprint: str | None = None,
        progress: bool = True,
        overwrite: bool = False,
        projection_buffer_mb: int = 256,
    ) -> "FeatureCache":
        """Compute every representation of every dataset item once and store it at ``root``.

        Args:
            root: the cache directory (created; its parent must be writable).
            dataset: map-style dataset; ``dataset[i]`` is an image tensor ``(C, H, W)`` in
                [0, 1] or a tuple whose first element is one (the rest is ignored).
            representations: deterministic representations, as a sequence (keyed by
                ``rep.name``) or a mapping ``{name: rep}``. Non-deterministic ones are refused.
            image_size: expected ``H == W`` of the images (recorded and checked).
            project_dim: if set, project representations with more dimensions to this many.
            seed: projection seed (combined with each representation name).
            batch_size, num_workers: DataLoader settings for reading the dataset.
            device: where the representations run (they are moved there).
            fingerprint: dataset identity; overrides ``dataset.fingerprint()``, which is used
                otherwise, falling back to :func:`dataset_fingerprint`'s sampled hash.
            progress: show a tqdm progress bar.
            overwrite: replace an existing complete cache at ``root`` (an incomplete one, or an
                empty directory, is always replaced; a directory that is not a cache never is).
            projection_buffer_mb: for projections too large to keep in memory, raw features
                are buffered up to about this size so that the projection matrix is
                regenerated once per buffer rather than once per batch.
        """
        from tqdm.auto import tqdm

        root = Path(root)
        pairs = _named_representations(representations)
        if not isinstance(image_size, int) or image_size < 1:
            raise CacheError(f"image_size must be a positive int, got {image_size!r}")
        if project_dim is not None and (not isinstance(project_dim, int) or project_dim < 1):
            raise CacheError(f"project_dim must be a positive int or None, got {project_dim!r}")
        if batch_size < 1:
            raise CacheError(f"batch_size must be >= 1, got {batch_size}")
        n = len(dataset)
        if n == 0:
            raise CacheError("cannot cache an empty dataset")
        shape = tuple(_item_image(dataset[0]).shape)
        if shape[1:] != (image_size, image_size):
            raise CacheError(
                f"dataset images are {shape[1]}x{shape[2]} but image_size={image_size}; "
                f"the cache must be built on the clean images at the training size"
            )
        fp = fingerprint if fingerprint is not None else dataset_fingerprint(dataset)
        entries = [_rep_entry(i, name, rep, shape, project_dim, seed) for i, (name, rep) in enumerate(pairs)]

        if root.exists():
            try:
                _read_manifest(root)
                complete = True
            except IncompleteCacheError:
                complete = False
            except CacheError:
                if root.is_dir() and not any(root.iterdir()):
                    complete = False  # an empty directory may be replaced
                else:
                    raise CacheError(f"{root} exists and is not a feature cache; refusing to overwrite it") from None
            if complete and not overwrite:
                raise FileExistsError(f"a feature cache already exists at {root} (use overwrite=True or open_or_build)")

        root.parent.mkdir(parents=True, exist_ok=True)
        _remove_stale_siblings(root)
        tmp = root.with_name(f"{root.name}.tmp-{os.getpid()}")
        if tmp.exists():
            shutil.rmtree(tmp)
        tmp.mkdir()
        try:
            (tmp / MARKER).write_text("mvmr feature cache; valid only when manifest.json exists\n")
            _fill(
                tmp,
                dataset=dataset,
                pairs=pairs,
                entries=entries,
                n=n,
                seed=seed,
                batch_size=batch_size,
                num_workers=num_workers,
                device=torch.device(device),
                progress=progress,
                tqdm=tqdm,
                buffer_bytes=projection_buffer_mb * 2**20,
            )
            manifest = {
                "format": FORMAT_NAME,
                "version": FORMAT_VERSION,
                "complete": True,
                "n": n,
                "image_size": image_size,
                "image_shape": list(shape),
                "dataset_fingerprint": fp,
                "project_dim": project_dim,
                "seed": seed,
                "dtype": "float16",
                "representations": entries,
                "torch_version": torch.__version__,
                "created": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
            }
            _write_json_atomic(tmp / MANIFEST, manifest)
            _install(tmp, root)
        except BaseException:
            shutil.rmtree(tmp, ignore_errors=True)
            raise
        return cls.open(root)


def _rep_entry(
    index: int,
    name: str,
    rep: Representation,
    shape: tuple[int, ...] | None,
    project_dim: int | None,
    seed: int,
) -> dict[str, Any]:
    """The manifest entry of one representation (everything but run-time state)."""
    raw_dim: int | None = None
    if shape is not None:
        try:
            raw_dim = int(rep.output_dim(*shape))
        except NotImplementedError:
            raise CacheError(f"representation {name!r} does not implement output_dim()") from None
    projected = project_dim is not None and raw_dim is not None and raw_dim > project_dim
    entry: dict[str, Any] = {
        "name": name,
        **describe_representation(rep),
        "raw_dim": raw_dim,
        "dim": project_dim if projected else raw_dim,
        "projection": (
            {
                "kind": "gaussian",
                "std": "1/sqrt(dim)",
                "seed": seed,
                "key": name,
                "block_rows": BLOCK_ROWS,
                "derived_seed": derive_seed(seed, name),
            }
            if projected
            else None
        ),
        "file": _file_name(index, name),
    }
    return _json_normalise(entry)


def _check_range(name: str, values: torch.Tensor) -> None:
    if not torch.isfinite(values).all():
        raise CacheError(f"representation {name!r} produced non-finite values; cannot cache them")
    peak = float(values.abs().max()) if values.numel() else 0.0
    if peak > FLOAT16_MAX:
        raise CacheError(
            f"representation {name!r} produced |value| = {peak:.4g} beyond the float16 range "
            f"({FLOAT16_MAX:.0f}); rescale the representation before caching it"
        )


def _fill(
    folder: Path,
    *,
    dataset: Any,
    pairs: list[tuple[str, Representation]],
    entries: list[dict[str, Any]],
    n: int,
    seed: int,
    batch_size: int,
    num_workers: int,
    device: torch.device,
    progress: bool,
    tqdm: Any,
    buffer_bytes: int,
) -> None:
    """Compute and write every representation of every item into ``folder``."""
    from numpy.lib.format import open_memmap

    arrays = {e["name"]: open_memmap(folder / e["file"], mode="w+", dtype=DTYPE, shape=(n, e["dim"])) for e in entries}
    projections: dict[str, RandomProjection] = {}
    buffers: dict[str, list[torch.Tensor]] = {}
    buffer_start: dict[str, int] = {}
    buffer_limit: dict[str, int] = {}
    for (name, rep), entry in zip(pairs, entries):
        rep.to(device).eval()
        if entry["projection"] is not None:
            proj = RandomProjection(entry["raw_dim"], entry["dim"], seed, key=name)
            projections[name] = proj
            buffers[name] = []
            buffer_start[name] = 0
            buffer_limit[name] = 1 if proj.materialize else max(1, buffer_bytes // (4 * entry["raw_dim"]))

    def write(name: str, start: int, values: torch.Tensor) -> None:
        _check_range(name, values)
        arrays[name][start : start + values.shape[0]] = values.detach().to("cpu", torch.float32).numpy().astype(DTYPE)

    def flush(name: str) -> None:
        if buffers[name]:
            raw = torch.cat(buffers[name])
            write(name, buffer_start[name], projections[name](raw))
            buffer_start[name] += raw.shape[0]
            buffers[name] = []

    loader = DataLoader(
        dataset,
        batch_size=batch_size,
        shuffle=False,
        num_workers=num_workers,
        collate_fn=_collate_images,
        pin_memory=device.type == "cuda",
    )
    offset = 0
    desc = "caching " + ",".join(name for name, _ in pairs)
    with torch.no_grad(), tqdm(total=n, unit="img", desc=desc, disable=not progress) as bar:
        for images in loader:
            images = images.to(device, non_blocking=True)
            b = images.shape[0]
            for (name, rep), entry in zip(pairs, entries):
                feats = rep(images)
                if not isinstance(feats, torch.Tensor) or tuple(feats.shape) != (b, entry["raw_dim"]):
                    got = tuple(feats.shape) if isinstance(feats, torch.Tensor) else type(feats).__name__
                    raise CacheError(
                        f"representation {name!r} returned {got}, expected ({b}, {entry['raw_dim']}) "
                        f"as its output_dim{tuple(images.shape[1:])} says"
                    )
                if name in projections:
                    buffers[name].append(feats.float())
                    if sum(t.shape[0] for t in buffers[name]) >= buffer_limit[name]:
                        flush(name)
                else:
                    write(name, offset, feats)
            offset += b
            bar.update(b)
        for name in projections:
            flush(name)
    if offset != n:
        raise CacheError(f"dataset yielded {offset} images but has length {n}")
    for arr in arrays.values():
        arr.flush()
    del arrays


def _install(tmp: Path, root: Path) -> None:
    """Atomically move the finished ``tmp`` directory to ``root``, replacing what is there."""
    old: Path | None = None
    if root.exists():
        old = root.with_name(f"{root.name}.old-{os.getpid()}")
        if old.exists():
            shutil.rmtree(old)
        os.replace(root, old)
    try:
        os.replace(tmp, root)
    except OSError as err:
        # Another process installed a cache concurrently: keep theirs if it is complete.
        try:
            _read_manifest(root)
        except (CacheError, FileNotFoundError):
            raise err from None
        shutil.rmtree(tmp, ignore_errors=True)
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)


class CachedDataset(Dataset):
    """``dataset`` whose items get the cached features appended: ``(*item, {name: (D_k,)})``.

    Optional: the trainer can equally call ``cache.get(index_batch)``; this wrapper moves the
    reads into the DataLoader workers. The default collate turns the dicts into
    ``{name: (B, D_k)}``.
    """

    def __init__(self, dataset: Any, cache: FeatureCache) -> None:
        if len(dataset) != len(cache):
            raise CacheError(f"dataset has {len(dataset)} items but the cache has {len(cache)}")
        self.dataset = dataset
        self.cache = cache

    def __len__(self) -> int:
        return len(self.dataset)

    def __getitem__(self, index: int) -> tuple[Any, ...]:
        item = self.dataset[index]
        item = tuple(item) if isinstance(item, (tuple, list)) else (item,)
        return (*item, self.cache[index])
