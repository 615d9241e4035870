"""Filling a cache under construction: each rank computes its rows of every representation into
the preallocated files of the temporary folder (:mod:`mvmr.cache.build` runs the build around it).

Rows are checked (finite, within float16, of the declared width) before they are written; with
``project_dim`` the raw rows of a wide representation are buffered and compressed by its seeded
:class:`~mvmr.representations.projection.RandomProjection`; with stored views, the parameters of
every image go to ``views.npy`` beside its features.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch
from torch.utils.data import DataLoader, Subset

from mvmr.cache.manifest import DTYPE, FLOAT16_MAX, VIEWS_DTYPE, VIEWS_FILE, CacheError, item_image
from mvmr.cache.writing import RowFile
from mvmr.representations.base import Representation
from mvmr.representations.projection import RandomProjection

__all__ = ["fill_rows"]

#: Raw rows of a projection too large to keep in memory are buffered up to about this size, so that
#: its matrix is regenerated once per buffer, not per batch.
_PROJECTION_BUFFER_BYTES = 256 * 2**20


def fill_rows(
    folder: Path,
    root: Path,
    needed: int,
    dataset: Any,
    pairs: list[tuple[str, Representation]],
    entries: list[dict[str, Any]],
    start: int,
    stop: int,
    **options: Any,
) -> None:
    """Compute rows ``start:stop`` of every representation into the preallocated files of ``folder``
    (the temporary folder of the cache ``root``, of ``needed`` bytes in all: for messages)."""
    files = {e["name"]: RowFile(folder / e["file"], root / e["file"], needed) for e in entries}
    if options.get("views"):
        files[VIEWS_FILE] = RowFile(folder / VIEWS_FILE, root / VIEWS_FILE, needed)
    try:
        _compute_rows(files, dataset, pairs, entries, start, stop, **options)
        for f in files.values():
            f.sync()
    finally:
        for f in files.values():
            f.close()


def _compute_rows(
    files: dict[str, RowFile],
    dataset: Any,
    pairs: list[tuple[str, Representation]],
    entries: list[dict[str, Any]],
    start: int,
    stop: int,
    *,
    seed: int,
    batch_size: int,
    num_workers: int,
    device: torch.device,
    progress: bool,
    label: str,
    views: bool = False,
) -> None:
    from tqdm.auto import tqdm

    projections: dict[str, RandomProjection] = {}
    buffers: dict[str, list[torch.Tensor]] = {}
    written: dict[str, int] = {}
    limit: dict[str, int] = {}
    for (name, rep), entry in zip(pairs, entries, strict=True):
        rep.to(device).eval()
        if entry["projection"] is not None:
            projections[name] = proj = RandomProjection(entry["raw_dim"], entry["dim"], seed, key=name)
            buffers[name], written[name] = [], start
            limit[name] = 1 if proj.materialize else max(1, _PROJECTION_BUFFER_BYTES // (4 * entry["raw_dim"]))

    def write(name: str, row: int, values: torch.Tensor) -> None:
        if not torch.isfinite(values).all():
            raise CacheError(f"representation {name!r} produced non-finite values; cannot cache them")
        peak = float(values.abs().max()) if values.numel() else 0.0
        if peak > FLOAT16_MAX:
            raise CacheError(
                f"representation {name!r} produced |value| = {peak:.4g} beyond the float16 range "
                f"({FLOAT16_MAX:.0f}); rescale the representation before caching it"
            )
        files[name].write_rows(row, values.detach().to("cpu", torch.float32).numpy().astype(DTYPE))

    def flush(name: str) -> None:
        if buffers[name]:
            raw = torch.cat(buffers[name])
            write(name, written[name], projections[name](raw))
            written[name] += raw.shape[0]
            buffers[name] = []

    loader = DataLoader(
        Subset(dataset, range(start, stop)),
        batch_size=batch_size,
        shuffle=False,
        num_workers=num_workers,
        pin_memory=device.type == "cuda",
        collate_fn=_stack_views if views else _stack_images,
    )
    row = start
    desc = "caching " + ",".join(name for name, _ in pairs) + label
    with torch.no_grad(), tqdm(total=stop - start, unit="img", desc=desc, disable=not progress) as bar:
        for batch in loader:
            images = batch[0] if views else batch
            if views:  # the parameters that made these images, exactly as drawn
                files[VIEWS_FILE].write_rows(row, batch[1].numpy().astype(VIEWS_DTYPE))
            images = images.to(device, non_blocking=True)
            b = images.shape[0]
            for (name, rep), entry in zip(pairs, entries, strict=True):
                feats = rep(images)
                if not isinstance(feats, torch.Tensor) or tuple(feats.shape) != (b, entry["raw_dim"]):
                    got = tuple(feats.shape) if isinstance(feats, torch.Tensor) else type(feats).__name__
                    raise CacheError(
                        f"representation {name!r} returned {got}, expected ({b}, {entry['raw_dim']}) "
                        f"as its output_dim{tuple(images.shape[1:])} says"
                    )
                if name in projections:
                    buffers[name].append(feats.float())
                    if sum(t.shape[0] for t in buffers[name]) >= limit[name]:
                        flush(name)
                else:
                    write(name, row, feats)
            row += b
            bar.update(b)
        for name in projections:
            flush(name)
    if row != stop:
        raise CacheError(f"the dataset yielded {row - start} images for rows {start}:{stop}")


def _stack_images(items: list[Any]) -> torch.Tensor:
    """DataLoader collate: stack the clean image of each item, ignore the rest."""
    return torch.stack([item_image(item) for item in items])


def _stack_views(items: list[Any]) -> tuple[torch.Tensor, torch.Tensor]:
    """DataLoader collate of ``(image, parameters)`` items: the images and their (B, P) float64 parameters."""
    params = [item[1] for item in items]
    if not all(isinstance(p, torch.Tensor) and p.ndim == 1 and p.dtype == torch.float64 for p in params):
        raise CacheError("a dataset with view_columns must yield (image, float64 parameter vector) items")
    return _stack_images(items), torch.stack(params)
