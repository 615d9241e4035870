"""``mvmr pretrain``: MV-MR self-supervised pretraining from a YAML config.

Example::

    mvmr pretrain --config stl10 data.root=/data trainer.devices=4
    mvmr pretrain --config configs/cifar10.yaml --out runs/c10 trainer.max_epochs=10 loss.l3=minimize

``--config`` takes a path or the name of a shipped config (``mvmr info --list``). Overrides are
``key=value`` with dotted keys; values are parsed as YAML scalars (``lr=1e-4``, ``x=[1, 2]``).
A run folder that already holds ``checkpoints/last.ckpt`` is resumed (``--resume auto``). The run
prints what it will do, an ETA after its first steps, and where its results are; ``mvmr --debug
pretrain ...`` also shows all of Lightning's own messages.
"""

from __future__ import annotations

import argparse

from mvmr.commands._run_args import add_run_arguments, load_run_config

HELP = "self-supervised MV-MR pretraining from a YAML config (resumable)"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_run_arguments(parser, config_help="config file or shipped name (stl10, cifar10, ...)")


def run(args: argparse.Namespace) -> int:
    config = load_run_config(args)
    from mvmr.training.trainer import pretrain

    pretrain(config, resume=args.resume)  # prints its plan, an ETA and where the results are
    return 0
