"""``mvmr demo``: MV-MR against VICReg on Fashion-MNIST on the CPU, then linear probes.

Pretrains with ``configs/demo.yaml`` (a ResNet-18 on a 5000-image subset, the paper's five
hand-crafted representations) and, beside it, VICReg (lightly's loss) with the same encoder, data,
optimiser and steps; then trains the same linear probe on each frozen encoder
(``mvmr.evaluation``'s linear protocol) and prints its test accuracy next to two baselines: the
same encoder randomly initialised, and raw pixels (a reference).
The run folder (default ``runs/demo``) keeps the checkpoint, the resolved config, the logs, the
plots and ``demo_results.md``. Run it again to reuse the pretraining; ``--fresh`` starts over.
"""

from __future__ import annotations

import argparse

HELP = "pretrain MV-MR on Fashion-MNIST on the CPU (~6 min on 2 cores) and compare linear probes"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--data",
        default=None,
        metavar="DIR",
        help="Fashion-MNIST folder with the idx .gz files (default: /usr/share/datasets/fashion-mnist)",
    )
    parser.add_argument("--out", default=None, metavar="DIR", help="run folder (default: runs/demo)")
    parser.add_argument("--fresh", action="store_true", help="delete an earlier demo run in the folder and start over")
    parser.add_argument(
        "--probe-train",
        type=int,
        default=10000,
        metavar="N",
        help="labelled train images for the probe (default 10000)",
    )
    parser.add_argument(
        "--probe-test",
        type=int,
        default=10000,
        metavar="N",
        help="test images for the probe (default 10000: the whole test set)",
    )
    parser.add_argument(
        "--peer",
        default="vicreg",
        choices=["vicreg", "barlow_twins", "none"],
        help="the peer method trained at the same budget (default vicreg; none: MV-MR alone)",
    )
    parser.add_argument("overrides", nargs="*", metavar="KEY=VALUE", help="overrides of configs/demo.yaml")


def run(args: argparse.Namespace) -> int:
    from mvmr.workflows.demo import run_demo

    run_demo(
        data=args.data,
        out=args.out,
        fresh=args.fresh,
        overrides=args.overrides,
        probe_train=args.probe_train,
        probe_test=args.probe_test,
        peer=None if args.peer == "none" else args.peer,
    )
    return 0
