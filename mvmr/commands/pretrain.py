"""``mvmr pretrain``: MV-MR self-supervised pretraining from a YAML config.

Example::

    mvmr pretrain --config stl10 data.root=/data trainer.devices=4
    mvmr pretrain --config configs/cifar10.yaml --out runs/c10 trainer.max_epochs=10 loss.l3=minimize

``--config`` takes a path or the name of a shipped config (``mvmr info --list``). Overrides are
``key=value`` with dotted keys; values are parsed as YAML scalars (``lr=1e-4``, ``x=[1, 2]``).
A run folder that already holds ``checkpoints/last.ckpt`` is resumed (``--resume auto``).
"""

from __future__ import annotations

import argparse

HELP = "self-supervised MV-MR pretraining from a YAML config (resumable)"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--config", required=True, metavar="YAML", help="config file or shipped name (stl10, cifar10, ...)")
    parser.add_argument("--resume", default="auto", metavar="auto|none|PATH",
                        help="auto: continue from <run>/checkpoints/last.ckpt if present (default); none: start afresh; or a checkpoint")
    parser.add_argument("--out", default=None, metavar="DIR", help="run folder (overrides output_dir)")
    parser.add_argument("overrides", nargs="*", metavar="KEY=VALUE", help="config overrides, e.g. trainer.max_epochs=10")


def run(args: argparse.Namespace) -> int:
    from mvmr.config import load_config

    overrides = list(args.overrides)
    if args.out is not None:
        overrides.append(f"output_dir={args.out}")
    config = load_config(args.config, overrides)
    from mvmr.training.trainer import pretrain

    run_dir = pretrain(config, resume=args.resume)
    print(f"run folder: {run_dir}")
    return 0
