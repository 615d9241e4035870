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
from collections.abc import Sequence

import mvmr
from mvmr.errors import MVMRError
from mvmr.plugins import import_plugins
from mvmr.training.quiet import clean_output

#: Sub-commands in the order ``mvmr --help`` lists them.
COMMANDS: tuple[str, ...] = (
    "demo",
    "pretrain",
    "distill",
    "evaluate",
    "cache",
    "plan",
    "export",
    "report",
    "ablate",
    "info",
)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="mvmr",
        description="MV-MR: self-supervised learning and label-free distillation with distance correlation.",
    )
    parser.add_argument("--version", action="version", version=f"mvmr {mvmr.__version__}")
    parser.add_argument(
        "--debug",
        action="store_true",
        help="show everything: full tracebacks on errors, and all of Lightning's messages and warnings "
        "(normal output hides its tips and notices and shows each warning once)",
    )
    parser.add_argument(
        "--plugin",
        action="append",
        default=[],
        metavar="MODULE",
        help="import MODULE first, so that the representations, teachers or methods it registers can "
        "be named in the config (repeatable; installed packages can use entry points instead)",
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name in (c for c in COMMANDS if importlib.util.find_spec(f"mvmr.commands.{c}") is not None):
        module = importlib.import_module(f"mvmr.commands.{name}")
        p = sub.add_parser(name, help=module.HELP, description=module.HELP)
        module.add_arguments(p)
        p.set_defaults(_run=module.run)
    return parser


def parse(parser: argparse.ArgumentParser, argv: Sequence[str] | None) -> argparse.Namespace:
    """``argv`` parsed, with ``KEY=VALUE`` overrides accepted anywhere among the flags.

    argparse stops a ``nargs="*"`` positional at the first flag, so ``a=1 --evaluate b=2`` would leave
    ``b=2`` unrecognised; such left-overs join the command's overrides in their order on the command
    line (a later value of a key wins). Anything else left over is the usual usage error.
    """
    args, extra = parser.parse_known_args(argv)
    late = [a for a in extra if "=" in a and not a.startswith("-")]
    unknown = [a for a in extra if a not in late]
    if unknown or (late and not hasattr(args, "overrides")):
        parser.error(f"unrecognized arguments: {' '.join(unknown or late)}")
    if late:
        args.overrides = [*(args.overrides or []), *late]
    return args


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parse(parser, argv)
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
