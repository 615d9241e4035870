"""Throughput of the hand-crafted representations on real images, and HOG against skimage.

Prints, for a batch of ``--batch`` images at each of ``--sizes`` (default 256 images at 32 and 96
px) on the CPU, the images per second of every built-in representation, and our batched HOG next to
``skimage.feature.hog`` called image by image (same settings, its default-equivalent configuration).

Real images: CIFAR-10 (32 px) and Imagenette (96 px) extracted from ``../shared/data`` into
``.test-data/`` as ``tests/conftest.py`` does, or any ImageFolder-style tree given with ``--data``
(resized to each size). Example::

    .venv/bin/python benchmarks/representations_bench.py --batch 256 --sizes 32 96 --repeats 3 --threads 1
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path
from typing import Callable

import numpy as np
import torch

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from mvmr.representations import build  # noqa: E402

from _data import SHARED_DATA, extract_once  # noqa: E402

ARCHIVES = {32: ("cifar10-jpeg.tar.gz", "cifar10", "test"), 96: ("imagenette96.tar.gz", "imagenette96", "val")}
REPRESENTATIONS = ["pixels", "scatnet", "hog", "local_std", "augmented_pixels"]

Row = tuple[str, float, str]  # (label, images per second, note)


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
            img = img.resize((size, size), Image.BICUBIC)
        out.append(torch.from_numpy(np.asarray(img, dtype=np.float32) / 255.0).permute(2, 0, 1))
    return torch.stack(out)


def images_for(size: int, batch: int, data: Path | None) -> torch.Tensor:
    if data is not None:
        return load_images(data, batch, size)
    archive, folder, split = ARCHIVES.get(size, ARCHIVES[96])
    return load_images(extract(archive, folder) / split, batch, size)


def best_time(fn: Callable[[], object], repeats: int) -> float:
    """Best wall time of ``repeats`` calls, after one warm-up call (filters, caches, allocator)."""
    fn()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return min(times)


def representation_rows(images: torch.Tensor, repeats: int) -> list[Row]:
    rows = []
    for name in REPRESENTATIONS:
        rep = build(name)
        with torch.no_grad():
            seconds = best_time(lambda: rep(images), repeats)
        dim = rep.output_dim(*images.shape[1:])
        rows.append((name, len(images) / seconds, f"D={dim}"))
    return rows


def hog_vs_skimage_rows(images: torch.Tensor, repeats: int) -> list[Row]:
    from skimage.feature import hog

    rep = build("hog")
    arrays = [image.permute(1, 2, 0).numpy() for image in images]

    def skimage_loop() -> None:
        for array in arrays:
            hog(array, orientations=24, pixels_per_cell=(8, 8), cells_per_block=(1, 1), block_norm="L2-Hys",
                channel_axis=-1, feature_vector=True)

    with torch.no_grad():
        ours = best_time(lambda: rep(images), repeats)
    theirs = best_time(skimage_loop, repeats)
    return [
        ("hog (skimage, image by image)", len(images) / theirs, "reference"),
        ("hog (mvmr, batched)", len(images) / ours, f"{theirs / ours:.1f}x skimage"),
    ]


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
    args = parser.parse_args(argv)
    if args.threads is not None:
        torch.set_num_threads(args.threads)

    print(f"# torch {torch.__version__}, CPU, {torch.get_num_threads()} thread(s), batch {args.batch}, "
          f"best of {args.repeats}")
    print(f"| size | representation | images/s | note |")
    print(f"|---:|---|---:|---|")
    for size in args.sizes:
        images = images_for(size, args.batch, args.data)
        rows = representation_rows(images, args.repeats)
        rows += hog_vs_skimage_rows(images, args.repeats)
        rows += extra_rows(images, args)
        for label, rate, note in rows:
            print(f"| {size} | {label} | {rate:,.0f} | {note} |", flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
