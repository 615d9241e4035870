"""The ``mvmr`` command line: parses arguments and dispatches to ``mvmr.commands.<name>``.

Each command lives in its own module with ``HELP`` (one line), ``add_arguments(parser)`` and
``run(args) -> int``. Command modules import heavy dependencies inside ``run`` so that
``mvmr --help`` stays fast.
"""

from __future__ import annotations

import argparse
import importlib
import importlib.util
import sys
from typing import Sequence

import mvmr
from mvmr.errors import MVMRError
from mvmr.plugins import import_plugins
from mvmr.training.quiet import clean_output

#: Sub-commands in the order ``mvmr --help`` lists them.
COMMANDS: tuple[str, ...] = ("demo", "pretrain", "distill", "evaluate", "cache", "plan", "export", "report", "ablate",
                             "info")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="mvmr", description="MV-MR: self-supervised learning and label-free "
                                                              "distillation with distance correlation.")
    parser.add_argument("--version", action="version", version=f"mvmr {mvmr.__version__}")
    parser.add_argument("--debug", action="store_true",
                        help="show everything: full tracebacks on errors, and all of Lightning's messages and warnings "
                             "(normal output hides its tips and notices and shows each warning once)")
    parser.add_argument("--plugin", action="append", default=[], metavar="MODULE",
                        help="import MODULE first, so that the representations, teachers or methods it registers can be "
                             "named in the config (repeatable; installed packages can use entry points instead)")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name in (c for c in COMMANDS if importlib.util.find_spec(f"mvmr.commands.{c}") is not None):
        module = importlib.import_module(f"mvmr.commands.{name}")
        p = sub.add_parser(name, help=module.HELP, description=module.HELP)
        module.add_arguments(p)
        p.set_defaults(_run=module.run)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command is None:
        parser.print_help()
        return 0
    try:
        import_plugins(args.plugin, key="--plugin")
        with clean_output(enabled=not args.debug):
            return int(args._run(args) or 0)
    except (MVMRError, FileNotFoundError, ValueError) as err:
        if args.debug:
            raise
        print(f"mvmr {args.command}: error: {err}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"mvmr {args.command}: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    raise SystemExit(main())
