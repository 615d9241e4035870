"""``mvmr info``: print a configuration resolved with all its defaults, or list the shipped configs.

Example::

    mvmr info --config stl10 trainer.max_epochs=10
    mvmr info --list
"""

from __future__ import annotations

import argparse

HELP = "print a config resolved with its defaults (or list the shipped configs)"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--config", default=None, metavar="YAML", help="config file or shipped name (default: all defaults)"
    )
    parser.add_argument("--list", action="store_true", help="list the shipped configs")
    parser.add_argument("overrides", nargs="*", metavar="KEY=VALUE", help="config overrides")


def run(args: argparse.Namespace) -> int:
    from mvmr.config import CONFIG_DIR, load_config, shipped_configs, to_yaml
    from mvmr.methods import get_method

    if args.list:
        for name in shipped_configs():
            first = (CONFIG_DIR / f"{name}.yaml").read_text(encoding="utf-8").splitlines()[:1]
            about = first[0].lstrip("# ").strip() if first and first[0].startswith("#") else ""
            print(f"{name:16s} {about}")
        return 0
    config = load_config(args.config, args.overrides)
    get_method(config.method)  # an unknown method is an error here too, not only at training time
    print(to_yaml(config), end="")
    return 0
