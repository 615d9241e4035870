"""The arguments every training command shares: ``--config``, ``--resume``, ``--out`` and overrides."""

from __future__ import annotations

import argparse
from typing import Any


def add_run_arguments(
    parser: argparse.ArgumentParser, *, config_help: str = "config file or shipped name", resume: bool = True
) -> None:
    """``--config`` (required), ``--resume`` (unless ``resume=False``), ``--out`` and the ``KEY=VALUE`` overrides."""
    parser.add_argument("--config", required=True, metavar="YAML", help=config_help)
    if resume:
        parser.add_argument(
            "--resume",
            default="auto",
            metavar="auto|none|PATH",
            help="auto: continue from <run>/checkpoints/last.ckpt if present (default); none: start "
            "afresh; or a checkpoint",
        )
    parser.add_argument("--out", default=None, metavar="DIR", help="run folder (overrides output_dir)")
    parser.add_argument(
        "overrides", nargs="*", metavar="KEY=VALUE", help="config overrides, e.g. trainer.max_epochs=10"
    )


def load_run_config(args: argparse.Namespace) -> Any:
    """The config named by ``--config``, with the overrides and ``--out`` applied."""
    from mvmr.config import load_config

    return load_config(args.config, [*args.overrides, *([f"output_dir={args.out}"] if args.out is not None else [])])
