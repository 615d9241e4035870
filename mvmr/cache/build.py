"""Building a feature cache: the one way, shared by every rank of a run.

The deterministic representations of the clean view never change for a fixed dataset and image
size, so :func:`build_cache` computes them once (format: :mod:`mvmr.cache.manifest`):

1. rank 0 fingerprints the dataset, checks ``root`` and creates ``<root>.tmp-<pid>`` with one
   preallocated ``.npy`` file per representation;
2. every rank computes its contiguous share of the rows (``N / world_size``) into those files;
3. when all ranks succeeded, rank 0 writes the manifest (last) and renames the folder to ``root``
   in one atomic step; every rank then opens the finished cache.

``root`` appears complete or not at all; a build that dies leaves a ``.tmp-<pid>`` folder that the
next build removes. Under several processes the folder must be on a filesystem every rank sees.

Each rank checksums the chunks of rows it wrote; rank 0 adds the chunks straddling two ranks and
records every file's size, header and chunk checksums (:mod:`mvmr.cache.integrity`). The space of
every file is checked and reserved before any row is computed, and rows are written with
``os.pwrite`` (:mod:`mvmr.cache.writing`), so a full disk raises :class:`~mvmr.errors.DiskFullError`
after the temporary folder is removed. With ``project_dim``, wider representations are compressed
by a :class:`~mvmr.representations.projection.RandomProjection` seeded by ``(seed, name)``, the same
on every rank and on the live path.

A dataset with ``view_columns`` (:class:`~mvmr.data.AugmentedViewBank`) yields ``(image, parameters)``
items; the parameters of every row are stored too, as float64 ``views.npy`` under the same rules
(preallocated, written by the rank that made the image, checksummed), so that a reader can make the
very same image again (:meth:`~mvmr.cache.FeatureCache.view_parameters`).
"""

from __future__ import annotations

import os
import re
import shutil
import time
import uuid
import warnings
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import torch
from numpy.lib.format import open_memmap

from mvmr.cache.fill import fill_rows
from mvmr.cache.integrity import CorruptCacheError, integrity_entry
from mvmr.cache.manifest import (
    DTYPE,
    FORMAT_NAME,
    FORMAT_VERSION,
    MANIFEST,
    MARKER,
    VIEWS_DTYPE,
    VIEWS_FILE,
    CacheError,
    CacheMismatchError,
    IncompleteCacheError,
    dataset_fingerprint,
    expected_manifest,
    item_image,
    manifest_entry,
    named_representations,
    read_manifest,
    views_entry,
)
from mvmr.cache.store import FeatureCache
from mvmr.cache.writing import npy_bytes, rank_checksums, reserve
from mvmr.representations.base import Representation
from mvmr.utils.atomic import atomic_write_json
from mvmr.utils.diskspace import disk_full_error, is_disk_full, require_free_space
from mvmr.utils.distributed import ProcessGroup, current_group, first_error

__all__ = ["build_cache", "open_or_build"]

Representations = Sequence[Representation] | Mapping[str, Representation]


def open_or_build(
    root: str | os.PathLike[str],
    *,
    dataset: Any,
    representations: Representations,
    image_size: int,
    project_dim: int | None = None,
    seed: int = 0,
    fingerprint: str | None = None,
    rebuild: bool = False,
    check_all: bool = False,
    group: ProcessGroup | None = None,
    **build_options: Any,
) -> FeatureCache:
    """Open the cache at ``root`` when it matches the data and settings; build it when missing or incomplete.

    Rank 0 alone fingerprints the dataset and checks the cache; the others follow its verdict. A
    cache built for another configuration raises :class:`~mvmr.cache.manifest.CacheMismatchError`
    naming the field, unless ``rebuild=True`` replaces it. A cache failing the opening checks
    (:class:`~mvmr.cache.integrity.CorruptCacheError`), or with ``check_all=True`` any chunk check
    (a full read), is rebuilt with a warning. ``build_options`` go to :func:`build_cache`.
    """
    root, group = Path(root), group or current_group()
    settings: dict[str, Any] = dict(image_size=image_size, project_dim=project_dim, seed=seed)

    def decide() -> tuple[str, str]:
        fp = fingerprint if fingerprint is not None else dataset_fingerprint(dataset)
        if root.is_dir() and any(root.iterdir()):
            expect = expected_manifest(dataset=dataset, representations=representations, fingerprint=fp, **settings)
            try:
                cache = FeatureCache.open(root, expect=expect)
                if check_all:
                    cache.verify_all()
                return "open", fp
            except IncompleteCacheError:
                pass  # an interrupted build: build again
            except CorruptCacheError as err:
                warnings.warn(f"rebuilding the damaged feature cache at {root}: {err}", stacklevel=3)
            except CacheMismatchError:
                if not rebuild:
                    raise
        return "build", fp

    action, fp = group.run_on_main(decide)
    if action == "open":
        return _open_everywhere(root, group)
    return build_cache(
        root,
        dataset=dataset,
        representations=representations,
        fingerprint=fp,
        overwrite=True,
        group=group,
        **settings,
        **build_options,
    )


def _open_everywhere(root: Path, group: ProcessGroup) -> FeatureCache:
    """Open the cache rank 0 checked on every rank, making sure all of them see the same one."""
    cache, error = None, None
    try:
        cache = FeatureCache.open(root)
    except (OSError, CacheError) as err:
        error = err
    reports = group.all_gather(
        (
            None if error is None else f"{type(error).__name__}: {error}",
            None if cache is None else cache.manifest.get("build_id"),
        )
    )
    failed = first_error([r[0] for r in reports])
    if failed is not None:
        raise CacheError(
            f"rank {failed[0]} cannot open the feature cache at {root} ({failed[1]}); the cache must "
            f"live on a filesystem every rank sees, or be copied whole to every node"
        )
    if len({r[1] for r in reports}) > 1:
        raise CacheError(
            f"the ranks see different feature caches at {root} "
            f"(build ids {sorted({str(r[1]) for r in reports})}); "
            f"copy the same finished folder to every node, or use a shared filesystem"
        )
    assert cache is not None
    return cache


def build_cache(
    root: str | os.PathLike[str],
    *,
    dataset: Any,
    representations: Representations,
    image_size: int,
    project_dim: int | None = None,
    seed: int = 0,
    batch_size: int = 64,
    num_workers: int = 0,
    device: torch.device | str = "cpu",
    fingerprint: str | None = None,
    progress: bool = True,
    overwrite: bool = False,
    group: ProcessGroup | None = None,
) -> FeatureCache:
    """Compute every representation of every dataset item once, sharing the rows among the ranks.

    Args:
        root: the cache folder (created; its parent must be writable).
        dataset: the clean images: ``dataset[i]`` is a ``(C, H, W)`` tensor in [0, 1], or a tuple
            starting with one; ``H == W == image_size``.
        representations: deterministic representations, a sequence (keyed by ``rep.name``) or a
            mapping ``{name: rep}``.
        project_dim, seed: project wider representations to ``project_dim`` dimensions, with a
            matrix seeded by ``(seed, name)``.
        batch_size, num_workers, device, progress: how this rank computes its share.
        fingerprint: dataset identity; default :func:`~mvmr.cache.manifest.dataset_fingerprint`.
        overwrite: replace an existing complete cache (an incomplete one, or an empty folder, is
            always replaced; a folder that is not a cache never is).
        group: the ranks that share the work (default: ``torch.distributed``'s, or this process).
    """
    root, group = Path(root), group or current_group()
    pairs = named_representations(representations)
    if isinstance(image_size, bool) or not isinstance(image_size, int) or image_size < 1:
        raise CacheError(f"image_size must be a positive int, got {image_size!r}")
    if project_dim is not None and (not isinstance(project_dim, int) or project_dim < 1):
        raise CacheError(f"project_dim must be a positive int or None, got {project_dim!r}")
    if batch_size < 1:
        raise CacheError(f"batch_size must be >= 1, got {batch_size}")
    n = len(dataset)
    if n == 0:
        raise CacheError("cannot cache an empty dataset")
    shape = tuple(item_image(dataset[0]).shape)
    if shape[1:] != (image_size, image_size):
        raise CacheError(
            f"dataset images are {shape[1]}x{shape[2]} but image_size={image_size}; "
            f"the cache must be built on the clean images at the training size"
        )
    entries = [manifest_entry(i, name, rep, shape, project_dim, seed) for i, (name, rep) in enumerate(pairs)]
    views = views_entry(dataset)
    needed = sum(npy_bytes(n, e["dim"]) for e in entries)
    if views is not None:
        needed += npy_bytes(n, len(views["columns"]), VIEWS_DTYPE)

    def prepare() -> tuple[str, str]:
        fp = fingerprint if fingerprint is not None else dataset_fingerprint(dataset)
        _check_replaceable(root, overwrite)
        root.parent.mkdir(parents=True, exist_ok=True)
        _remove_stale_siblings(root)
        tmp = root.with_name(f"{root.name}.tmp-{os.getpid()}")
        shutil.rmtree(tmp, ignore_errors=True)
        # every file's space before any row is computed: a full disk is found now, not hours later
        require_free_space(root, needed, what="feature cache")
        try:
            tmp.mkdir()
            (tmp / MARKER).write_text("mvmr feature cache; valid only when manifest.json exists\n")
            files = [(e["file"], DTYPE, e["dim"]) for e in entries]
            if views is not None:
                files.append((VIEWS_FILE, VIEWS_DTYPE, len(views["columns"])))
            for file, dtype, dim in files:  # preallocated, so that every rank can write its rows in place
                open_memmap(tmp / file, mode="w+", dtype=dtype, shape=(n, dim)).flush()
                reserve(tmp / file)
        except BaseException as err:
            shutil.rmtree(tmp, ignore_errors=True)
            if is_disk_full(err):
                raise disk_full_error(root, needed=needed, cause=err, what="feature cache") from err  # type: ignore[arg-type]
            raise
        return str(tmp), fp

    tmp_name, fp = group.run_on_main(prepare)
    tmp = Path(tmp_name)
    start, stop = n * group.rank // group.world_size, n * (group.rank + 1) // group.world_size
    error: BaseException | None = None
    checksums: dict[str, dict[int, int]] = {}
    try:
        if not tmp.is_dir():
            raise CacheError(
                f"rank {group.rank} cannot see the cache folder {tmp} that rank 0 created: the cache must "
                f"live on a filesystem shared by every rank (or build it once per node with `mvmr cache`)"
            )
        fill_rows(
            tmp,
            root,
            needed,
            dataset,
            pairs,
            entries,
            start,
            stop,
            seed=seed,
            batch_size=batch_size,
            num_workers=num_workers,
            device=torch.device(device),
            progress=progress and group.is_main,
            label="" if not group.distributed else f" (rank 0 of {group.world_size})",
            views=views is not None,
        )
        written = [e["file"] for e in entries] + ([VIEWS_FILE] if views is not None else [])
        checksums = {file: rank_checksums(tmp / file, start, stop) for file in written}
    except Exception as err:
        error = err
    except BaseException:  # KeyboardInterrupt / SystemExit of a single process: leave nothing behind
        if not group.distributed:
            shutil.rmtree(tmp, ignore_errors=True)
        raise
    reports = group.all_gather(
        (None if error is None else f"{type(error).__name__}: {error}", [start, stop], checksums)
    )
    failed = first_error([r[0] for r in reports])
    if failed is not None:
        if group.is_main:
            shutil.rmtree(tmp, ignore_errors=True)
        if error is not None:
            raise error
        raise CacheError(f"feature cache build failed on rank {failed[0]}: {failed[1]}")

    def commit() -> None:
        try:
            integrity = {}
            for file in [e["file"] for e in entries] + ([VIEWS_FILE] if views is not None else []):
                # each rank's chunks, plus those that straddle two ranks
                partial = {c: crc for _, _, sums in reports for c, crc in sums.get(file, {}).items()}
                integrity[file] = integrity_entry(tmp / file, partial)
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
                "views": views,
                "torch_version": torch.__version__,
                "shards": [{"rank": r, "rows": rows} for r, (_, rows, _) in enumerate(reports)],
                "integrity": integrity,
                "created": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
                "build_id": uuid.uuid4().hex,
            }
            atomic_write_json(tmp / MANIFEST, manifest, sort_keys=True)
            _install(tmp, root)
        except BaseException:
            shutil.rmtree(tmp, ignore_errors=True)
            raise

    group.run_on_main(commit)
    return FeatureCache.open(root)


def _check_replaceable(root: Path, overwrite: bool) -> None:
    """Refuse to replace a folder that is not a cache, or a complete cache without ``overwrite``."""
    if not root.exists():
        return
    try:
        read_manifest(root)
    except IncompleteCacheError:
        return
    except CacheMismatchError:
        pass  # a complete cache of another format version: replaced with overwrite, like any cache
    except CacheError:
        if root.is_dir() and not any(root.iterdir()):
            return  # an empty folder may be replaced
        raise CacheError(f"{root} exists and is not a feature cache; refusing to overwrite it") from None
    if not overwrite:
        raise FileExistsError(f"a feature cache already exists at {root} (use overwrite=True or open_or_build)")


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
    if not root.parent.is_dir():
        return
    pattern = re.compile(re.escape(root.name) + r"\.(tmp|old)-(\d+)$")
    for path in root.parent.iterdir():
        match = pattern.match(path.name)
        if match and path.is_dir() and not _pid_alive(int(match.group(2))):
            shutil.rmtree(path, ignore_errors=True)


def _install(tmp: Path, root: Path) -> None:
    """Atomically move the finished ``tmp`` folder to ``root``, replacing what is there."""
    old: Path | None = None
    if root.exists():
        old = root.with_name(f"{root.name}.old-{os.getpid()}")
        shutil.rmtree(old, ignore_errors=True)
        os.replace(root, old)
    os.replace(tmp, root)
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)
