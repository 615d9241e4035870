"""``mvmr export``: write the encoder of a pretraining checkpoint for the library that will use it.

Example::

    mvmr export runs/stl10/checkpoints/last.ckpt --out runs/stl10/export
    mvmr export runs/stl10/checkpoints/last.ckpt --out exported/timm --format timm
    mvmr export runs/stl10/checkpoints/last.ckpt --out exported/hf --format hf

The formats are those of :mod:`mvmr.workflows.export` (``safetensors``, the default: mvmr's
backbone files; ``timm``, ``torchvision`` and ``hf``, each with a ``README.md`` model card). The
command prints the files and the lines that load them. The checkpoint is read with
``torch.load(weights_only=True)``.
"""

from __future__ import annotations

import argparse

HELP = "export the encoder of a checkpoint for mvmr, timm, torchvision or the Hugging Face Hub"
#: the choices of --format (mvmr.workflows.export.EXPORT_FORMATS, repeated here to keep --help fast)
FORMATS = ("safetensors", "timm", "torchvision", "hf")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("checkpoint", metavar="CKPT", help="a pretraining checkpoint (.ckpt)")
    parser.add_argument("--out", required=True, metavar="DIR", help="output folder")
    parser.add_argument(
        "--format",
        default="safetensors",
        choices=FORMATS,
        help="safetensors: mvmr's backbone files (default); timm: timm's folder; torchvision: a "
        "state dict for torchvision.models.<arch>() (no fc); hf: a Hugging Face Hub folder "
        "for mvmr.from_pretrained, with a model card",
    )


def run(args: argparse.Namespace) -> int:
    from mvmr.workflows.export import export_run

    export = export_run(args.checkpoint, args.out, format=args.format)
    for path in export.paths:
        print(path)
    if args.format != "safetensors":
        print("\nload it with:\n" + "\n".join(f"    {line}" for line in export.usage.splitlines()))
    return 0
