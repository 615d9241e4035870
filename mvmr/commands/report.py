"""``mvmr report``: several run folders side by side as one Markdown table."""

from __future__ import annotations

import argparse

HELP = "compare the evaluation results of several run folders in one Markdown table"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("runs", nargs="+", metavar="RUN_DIR", help="run folders written by `mvmr evaluate`")
    parser.add_argument("--out", metavar="FILE", default=None, help="also write the report to this Markdown file")
    parser.add_argument("--title", default="MV-MR evaluation report", help="title of the written report")


def run(args: argparse.Namespace) -> int:
    from mvmr.evaluation.report import build_report, write_report

    if args.out:
        path = write_report(args.runs, args.out, title=args.title)
        print(build_report(args.runs, link_base=path.parent), end="")
        print(f"\nwritten: {path}")
    else:
        print(build_report(args.runs), end="")
    return 0
