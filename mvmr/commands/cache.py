"""``mvmr cache``: build the feature caches of a config before training, exactly as ``mvmr pretrain`` reads them.

Example::

    mvmr cache --config stl10 data.root=/data representations.cache_dir=cache/stl10 representations.project_dim=4096
    torchrun --nproc_per_node 8 -m mvmr cache --config imagenet data.root=/data/imagenet   # 8 ranks share the rows

It builds every cached source of the run (the deterministic representations when
``representations.cache_dir`` is set, and a cached teacher) from the same data pipeline as
``mvmr pretrain`` with the same config, so ``mvmr pretrain`` opens the cache instead of rebuilding
it. A cache that exists and matches is checked (every chunk of rows against the checksums of its
build) and reused, or rebuilt when it is damaged; one built for another configuration is refused,
naming the field, unless ``--rebuild`` is given. Under ``torchrun`` the ranks share the work.
"""

from __future__ import annotations

import argparse
import os

from mvmr.commands._run_args import add_run_arguments, load_run_config

HELP = "build a config's feature caches (deterministic representations, teacher) before training"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_run_arguments(parser, resume=False)
    parser.add_argument("--device", default=None, help="device for the representations (default: cuda if available)")
    parser.add_argument("--rebuild", action="store_true", help="replace a cache built for another configuration")


def run(args: argparse.Namespace) -> int:
    import torch
    import torch.distributed as dist

    from mvmr.errors import ConfigError
    from mvmr.sources import CachedSource
    from mvmr.training.build import build_data, build_sources

    config = load_run_config(args)
    if int(os.environ.get("WORLD_SIZE", "1")) > 1 and not dist.is_initialized():  # launched by torchrun
        dist.init_process_group("nccl" if torch.cuda.is_available() else "gloo")
        if torch.cuda.is_available():
            torch.cuda.set_device(int(os.environ.get("LOCAL_RANK", "0")))
    device = args.device or (f"cuda:{torch.cuda.current_device()}" if torch.cuda.is_available() else "cpu")
    data = build_data(config)
    sources = [s for s in build_sources(config, data).all if isinstance(s, CachedSource)]
    if not sources:
        raise ConfigError(
            "representations.cache_dir: nothing to cache; set representations.cache_dir (and/or a "
            "cached teacher) in the config or as an override"
        )
    for source in sources:
        source.rebuild = args.rebuild
        source.check_all = True  # a full read: a damaged cache is rebuilt here, not found mid-training
        source.prepare(device)
        cache = source.cache
        if cache is None:  # prepare() opens or builds it
            raise RuntimeError(f"{source!r}: prepare() left no feature cache")
        dims = ", ".join(
            f"{name}={cache.raw_dims[name]}" + (f"->{d}" if d != cache.raw_dims[name] else "")
            for name, d in cache.dims.items()
        )
        verb = "built" if source.build_seconds is not None else "reused"
        if not dist.is_initialized() or dist.get_rank() == 0:
            what = "images" if cache.view_columns is None else "stored augmented views"
            print(f"feature cache {cache.root} ({verb}): {len(cache)} {what}, {dims}")
    if dist.is_initialized():
        dist.destroy_process_group()
    return 0
