"""``mvmr plan``: the cost of a run before its launch (memory, FLOPs, cache, wall time).

Example::

    mvmr plan --config stl10 trainer.devices=8                # per step and for the whole run
    mvmr plan --config demo --measure 5                       # time 5 real steps here
    mvmr plan --config imagenet --images 1281167 --throughput 1800 --json

Without ``--measure`` or ``--throughput`` (images per second per process, e.g. from
``benchmarks/gpu_check.py``) the times are left open. Without its files, a shipped dataset (STL10, ImageNet-1K,
CIFAR-10/100, Fashion-MNIST) is planned at its known size; other data needs ``--images N``.
"""

from __future__ import annotations

import argparse
import json

from mvmr.commands._run_args import add_run_arguments, load_run_config

HELP = "the cost of a run before its launch: dimensions, bytes, FLOPs, memory, cache size, wall time"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_run_arguments(parser, resume=False)
    parser.add_argument(
        "--images", type=int, default=None, metavar="N", help="training images (default: count the data)"
    )
    parser.add_argument(
        "--measure", type=int, default=0, metavar="STEPS", help="time this many real training steps here"
    )
    parser.add_argument(
        "--throughput",
        type=float,
        default=None,
        metavar="IMG_PER_S",
        help="images per second per process measured elsewhere (e.g. benchmarks/gpu_check.py)",
    )
    parser.add_argument(
        "--timing-images",
        type=int,
        default=32,
        metavar="N",
        help="the batch each representation is timed on, after a warm-up on the same batch (0: skip; "
        "the cache build time is then open)",
    )
    parser.add_argument(
        "--device",
        choices=("cpu", "cuda"),
        default=None,
        help="the device the run will use (default: the config's, on this machine), e.g. plan a GPU "
        "run from a CPU-only login node",
    )
    parser.add_argument("--json", action="store_true", help="print the plan as JSON")


def run(args: argparse.Namespace) -> int:
    from mvmr.workflows.plan import format_plan, make_plan

    config = load_run_config(args)
    plan = make_plan(
        config,
        images=args.images,
        measure_steps=args.measure,
        throughput=args.throughput,
        timing_images=args.timing_images,
        device=args.device,
        name=args.config,
    )
    print(json.dumps(plan.to_json(), indent=2) if args.json else format_plan(plan), end="\n" if args.json else "")
    return 0
