"""``mvmr export``: write the encoder of a pretraining checkpoint as a standalone backbone.

Example::

    mvmr export runs/stl10/checkpoints/last.ckpt --out runs/stl10/export

writes ``backbone.safetensors`` and ``backbone.pt`` (a plain state dict with metadata: encoder
name, input channels, normalisation), loadable with :func:`mvmr.models.load_backbone`, and the
run's ``config.yaml``. The checkpoint is read with ``torch.load(weights_only=True)``.
"""

from __future__ import annotations

import argparse

HELP = "export the encoder of a checkpoint as safetensors and a plain state dict"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("checkpoint", metavar="CKPT", help="a pretraining checkpoint (.ckpt)")
    parser.add_argument("--out", required=True, metavar="DIR", help="output folder")


def run(args: argparse.Namespace) -> int:
    from mvmr.training.export import export_checkpoint

    for path in export_checkpoint(args.checkpoint, args.out):
        print(path)
    return 0
