"""``mvmr cache``: precompute the deterministic representations of a dataset into a feature cache.

Example::

    mvmr cache --data ROOT --dataset imagefolder --split train --size 96 \\
        --reps scatnet,hog,local_std,pixels --project-dim 4096 --out runs/cache-train96

An existing cache at ``--out`` is reused when it matches (same data, size, representations,
projection) and rebuilt when an earlier build was interrupted; a cache built for another
configuration is refused unless ``--rebuild`` is given.
"""

from __future__ import annotations

import argparse

HELP = "precompute deterministic representations of a dataset into a memory-mapped feature cache"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Register the ``mvmr cache`` options on ``parser``."""
    parser.add_argument("--data", required=True, metavar="ROOT", help="dataset root directory")
    parser.add_argument("--dataset", default="imagefolder", help="dataset kind (default: imagefolder)")
    parser.add_argument("--split", default="train", help="dataset split (default: train)")
    parser.add_argument("--size", type=int, required=True, help="image size in pixels (the training size)")
    parser.add_argument(
        "--reps",
        default="scatnet,hog,local_std,pixels",
        help="comma-separated deterministic representations (default: scatnet,hog,local_std,pixels)",
    )
    parser.add_argument(
        "--project-dim",
        type=int,
        default=None,
        metavar="D",
        help="random-project representations with more than D dims to D dims (default: no projection)",
    )
    parser.add_argument("--out", required=True, metavar="DIR", help="cache directory to create or reuse")
    parser.add_argument("--batch-size", type=int, default=64, help="images per batch (default: 64)")
    parser.add_argument("--workers", type=int, default=0, help="DataLoader workers (default: 0)")
    parser.add_argument("--device", default="cpu", help="device for the representations (default: cpu)")
    parser.add_argument("--seed", type=int, default=0, help="projection seed (default: 0)")
    parser.add_argument("--rebuild", action="store_true", help="replace a cache built for another configuration")
    parser.add_argument("--no-progress", action="store_true", help="hide the progress bar")


def run(args: argparse.Namespace) -> int:
    """Build (or reuse) the cache described by ``args``; print a summary; return 0."""
    import mvmr.representations  # noqa: F401  (registers the built-in representations)
    from mvmr.data import build_dataset
    from mvmr.errors import ConfigError
    from mvmr.representations.base import build
    from mvmr.representations.cache import FeatureCache

    names = [n.strip() for n in str(args.reps).split(",") if n.strip()]
    if not names:
        raise ConfigError("--reps: give at least one representation name")
    if args.size < 1:
        raise ConfigError(f"--size must be positive, got {args.size}")
    if args.project_dim is not None and args.project_dim < 1:
        raise ConfigError(f"--project-dim must be positive, got {args.project_dim}")
    representations = {}
    for name in names:
        try:
            representations[name] = build(name)
        except ValueError as err:
            raise ConfigError(f"--reps: {err}") from None
    dataset = build_dataset(args.dataset, args.data, split=args.split, size=args.size)
    cache = FeatureCache.open_or_build(
        args.out,
        dataset=dataset,
        representations=representations,
        image_size=args.size,
        project_dim=args.project_dim,
        seed=args.seed,
        batch_size=args.batch_size,
        num_workers=args.workers,
        device=args.device,
        progress=not args.no_progress,
        rebuild=args.rebuild,
    )
    dims = ", ".join(
        f"{name}={cache.raw_dims[name]}" + (f"->{d}" if d != cache.raw_dims[name] else "")
        for name, d in cache.dims.items()
    )
    print(f"feature cache {cache.root}: {len(cache)} images, {dims}")
    return 0
