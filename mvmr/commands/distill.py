"""``mvmr distill``: label-free MV-MR distillation of a frozen teacher into a student (paper sec. 5.2).

Example::

    mvmr distill --config distill_demo data.root=~/data/imagenette2-160 --evaluate --compare-ssl
    mvmr distill --config configs/distill_clip_imagenet.yaml data.root=/data/imagenet \\
        teacher.weights=/models/open_clip_vit_b16_laion400m_e32.pt trainer.devices=8

The same trainer, checkpoints, logs, resume and DDP support as ``mvmr pretrain``: distillation
is MV-MR with the teacher's embedding of the clean view as one more representation (the config's
``teacher`` section; ``representations.items: []`` distils from the teacher alone). The teacher's
embeddings are computed once per dataset into ``<run>/teacher-cache`` (``teacher.cache: false``
runs it at every step instead). ``--evaluate`` then writes the run's report
(:mod:`mvmr.workflows.distill_report`). Running the command again on a finished run only
re-evaluates (the training resumes at its end).
"""

from __future__ import annotations

import argparse

from mvmr.commands._run_args import add_run_arguments, load_run_config

HELP = "label-free distillation of a frozen teacher into a student with MV-MR (resumable), and its report"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_run_arguments(
        parser,
        config_help="config with a teacher section, file or shipped name (distill_demo, "
        "distill_demo_paper, distill_clip_imagenet)",
    )
    parser.add_argument(
        "--evaluate",
        action="store_true",
        help="after training, linear-probe student, teacher and a random student, time the steps, write the report",
    )
    parser.add_argument(
        "--compare-ssl",
        action="store_true",
        help="also train the same student by MV-MR self-supervision alone (same budget) into "
        "<run>/ssl-baseline and add it to the report (implies --evaluate)",
    )
    parser.add_argument(
        "--ssl-run",
        default=None,
        metavar="DIR",
        help="an existing self-supervised run folder to add to the report instead (implies --evaluate)",
    )
    parser.add_argument("--no-timing", action="store_true", help="leave the step-time comparison out of the report")


def run(args: argparse.Namespace) -> int:
    from pathlib import Path

    from mvmr.errors import ConfigError

    config = load_run_config(args)
    if config.teacher.spec is None:
        raise ConfigError(
            "teacher.spec: mvmr distill needs a teacher (e.g. teacher.spec=efficientnet-lite0); "
            "for self-supervised training use mvmr pretrain"
        )
    if config.data.root is None:
        raise ConfigError(
            f"data.root: required: the {config.data.kind} dataset folder of this config; "
            f"pass data.root=DIR (see docs/distillation.md)"
        )
    if args.compare_ssl and args.ssl_run:
        raise ConfigError("give --compare-ssl (train the baseline) or --ssl-run DIR (use one), not both")
    from mvmr.training.trainer import pretrain

    run_dir = pretrain(config, resume=args.resume)  # prints its plan, an ETA and where the results are
    ssl_run = Path(args.ssl_run) if args.ssl_run else None
    if args.compare_ssl:
        from mvmr.workflows.distill_report import ssl_baseline_config

        ssl_config = ssl_baseline_config(config, run_dir / "ssl-baseline")
        print(f"self-supervised baseline (no teacher, same budget) -> {ssl_config.output_dir}")
        ssl_run = pretrain(ssl_config, resume="auto")
    if args.evaluate or ssl_run is not None:
        from mvmr.workflows.distill_report import distill_report

        distill_report(
            config, run_dir, ssl_run=ssl_run, timing=not args.no_timing, progress=config.trainer.progress_bar
        )
    return 0
