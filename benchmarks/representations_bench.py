"""Throughput of the hand-crafted representations on real images, and HOG against skimage.

Prints, for a batch of ``--batch`` images at each of ``--sizes`` (default 256 images at 32 and 96
px) on the CPU, the images per second of every built-in representation, and our batched HOG next to
``skimage.feature.hog`` called image by image (same settings, its default-equivalent configuration).

Real images: CIFAR-10 (32 px) and Imagenette (96 px) extracted from ``../shared/data`` into
``.test-data/`` as ``tests/conftest.py`` does, or any ImageFolder-style tree given with ``--data``
(resized to each size). ``--records FILE`` writes one JSON record per row (its settings, every timed call,
the command line, threads and provenance); :func:`table` renders the table from those records alone. Example::

    .venv/bin/python benchmarks/representations_bench.py --batch 256 --sizes 32 96 --repeats 3 --threads 1
    .venv/bin/python benchmarks/representations_bench.py --repeats 5 --records docs/results/bench-representations.json
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Callable
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np
import torch

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from _data import SHARED_DATA, extract_once  # noqa: E402
from _provenance import command, provenance, write_records  # noqa: E402

from mvmr.representations import build  # noqa: E402

ARCHIVES = {32: ("cifar10-jpeg.tar.gz", "cifar10", "test"), 96: ("imagenette96.tar.gz", "imagenette96", "val")}
REPRESENTATIONS = ["pixels", "scatnet", "hog", "local_std", "augmented_pixels"]

Row = tuple[str, float, str]  # (label, images per second, note): what extra_rows returns
SKIMAGE_LABEL, OURS_LABEL = "hog (skimage, image by image)", "hog (mvmr, batched)"


def extract(archive: str, folder: str) -> Path:
    """Extract a shared archive into .test-data/ once (the layout of tests/conftest.py)."""
    return extract_once(SHARED_DATA / archive, folder, hint="set MVMR_SHARED_DATA or pass --data")


def load_images(folder: Path, n: int, size: int) -> torch.Tensor:
    """``n`` images spread over an ImageFolder tree, float (n, 3, size, size) in [0, 1]."""
    from PIL import Image

    paths = sorted(p for p in folder.rglob("*") if p.suffix.lower() in {".jpg", ".jpeg", ".png"})
    if not paths:
        raise SystemExit(f"no images under {folder}")
    paths = paths[:: max(1, len(paths) // n)][:n]
    paths = (paths * (n // len(paths) + 1))[:n]
    out = []
    for p in paths:
        img = Image.open(p).convert("RGB")
        if img.size != (size, size):
            img = img.resize((size, size), Image.Resampling.BICUBIC)
        out.append(torch.from_numpy(np.asarray(img, dtype=np.float32) / 255.0).permute(2, 0, 1))
    return torch.stack(out)


def image_folder(size: int, data: Path | None) -> Path:
    """Where the images of ``size`` come from: ``--data``, else the shared archive's split for that size."""
    if data is not None:
        return data
    archive, folder, split = ARCHIVES.get(size, ARCHIVES[96])
    return extract(archive, folder) / split


def times(fn: Callable[[], object], repeats: int) -> list[float]:
    """The wall time of each of ``repeats`` calls, after one warm-up call (filters, caches, allocator)."""
    fn()
    seconds = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        seconds.append(time.perf_counter() - start)
    return seconds


def representation_rows(images: torch.Tensor, repeats: int) -> list[dict[str, Any]]:
    """One record per built-in representation: its output dimension and every timed call on the batch."""
    rows = []
    for name in REPRESENTATIONS:
        rep = build(name)
        with torch.no_grad():
            seconds = times(partial(rep, images), repeats)
        dim = rep.output_dim(*images.shape[1:])
        rows.append({"kind": "representation", "label": name, "dim": dim, "seconds": seconds})
    return rows


def hog_vs_skimage_rows(images: torch.Tensor, repeats: int) -> list[dict[str, Any]]:
    """skimage's HOG image by image and ours batched, with the same settings: one record each."""
    from skimage.feature import hog

    rep = build("hog")
    arrays = [image.permute(1, 2, 0).numpy() for image in images]
    settings = {"orientations": 24, "pixels_per_cell": [8, 8], "cells_per_block": [1, 1], "block_norm": "L2-Hys"}

    def skimage_loop() -> None:
        for array in arrays:
            hog(
                array,
                orientations=24,
                pixels_per_cell=(8, 8),
                cells_per_block=(1, 1),
                block_norm="L2-Hys",
                channel_axis=-1,
                feature_vector=True,
            )

    with torch.no_grad():
        ours = times(partial(rep, images), repeats)
    theirs = times(skimage_loop, repeats)
    return [
        {"kind": "skimage", "label": SKIMAGE_LABEL, "hog": settings, "seconds": theirs},
        {"kind": "hog_batched", "label": OURS_LABEL, "hog": settings, "seconds": ours},
    ]


def table(records: list[dict[str, Any]]) -> str:
    """The Markdown table of docs/benchmarks.md's representations section from ``records`` alone: images per
    second from each row's best call; the batched HOG's note is its speed-up over skimage's row of the same size."""
    lines = ["| size | representation | images/s | note |", "|---:|---|---:|---|"]
    best = {(r["size"], r["kind"]): min(r["seconds"]) for r in records if r.get("seconds")}
    for r in records:
        if r.get("seconds"):
            rate = r["images"] / min(r["seconds"])
        else:  # an extra row: its rate as extra_rows gave it
            rate = r["images_per_s"]
        if r["kind"] == "representation":
            note = f"D={r['dim']}"
        elif r["kind"] == "skimage":
            note = "reference"
        elif r["kind"] == "hog_batched":
            note = f"{best[(r['size'], 'skimage')] / min(r['seconds']):.1f}x skimage"
        else:
            note = r["note"]
        lines.append(f"| {r['size']} | {r['label']} | {rate:,.0f} | {note} |")
    return "\n".join(lines) + "\n"


def extra_rows(images: torch.Tensor, args: argparse.Namespace) -> list[Row]:
    """Hook for more rows at each size (e.g. reading the same features back from a FeatureCache).

    Return ``(label, images per second, note)`` tuples; nothing by default.
    """
    return []


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--batch", type=int, default=256, help="images per batch (default 256)")
    parser.add_argument("--sizes", type=int, nargs="+", default=[32, 96], help="image sizes (default 32 96)")
    parser.add_argument("--repeats", type=int, default=3, help="timed calls per row; the best is kept (default 3)")
    parser.add_argument("--data", type=Path, default=None, help="ImageFolder-style tree to read images from")
    parser.add_argument("--threads", type=int, default=None, help="torch intra-op threads (default: torch's)")
    parser.add_argument(
        "--records", type=Path, default=None, metavar="FILE", help="write every row's record to this JSON"
    )
    args = parser.parse_args(argv)
    if args.threads is not None:
        torch.set_num_threads(args.threads)

    print(
        f"# torch {torch.__version__}, CPU, {torch.get_num_threads()} thread(s), batch {args.batch}, "
        f"best of {args.repeats}"
    )
    records = []
    for size in args.sizes:
        folder = image_folder(size, args.data)
        images = load_images(folder, args.batch, size)
        rows = representation_rows(images, args.repeats)
        rows += hog_vs_skimage_rows(images, args.repeats)
        rows += [
            {"kind": "extra", "label": label, "images_per_s": rate, "note": note}
            for label, rate, note in extra_rows(images, args)
        ]
        records += [
            {"size": size, "images": len(images), "images_from": str(folder), "repeats": args.repeats, **r}
            for r in rows
        ]
        print(f"size {size}: measured", file=sys.stderr, flush=True)
    common = {"command": command(argv, __file__), "threads": torch.get_num_threads(), **provenance()}
    records = [{**r, **common} for r in records]
    if args.records is not None:
        write_records(args.records, records)
    print(table(records), end="")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
