"""The ``nnunet-lossplug`` command: one subcommand per module of this package.

Each module exposes ``register(subparsers)``, which adds its parser and sets ``func`` (``args -> exit code``).
Modules are imported only when the command runs, so ``nnunet-lossplug env`` stays fast. A user error ends as
one line on stderr with exit status 2 (:mod:`nnunet_lossplug.cli.errors`); ``--debug`` shows the traceback.
"""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Sequence

SUBCOMMAND_MODULES = ("env", "demo", "benchmark", "precompute", "cache", "trainers", "new_trainer", "evaluate",
                      "compare", "plot", "show_maps")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="nnunet-lossplug",
        description="Region-wise, Dice-family and deep-supervision losses for an unchanged nnU-Net v2.",
    )
    parser.add_argument("--debug", action="store_true",
                        help="show the traceback of an error (also: NNUNET_LOSSPLUG_DEBUG=1)")
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name in SUBCOMMAND_MODULES:
        importlib.import_module(f"nnunet_lossplug.cli.{name}").register(subparsers)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    from nnunet_lossplug.cli.errors import run_subcommand

    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "func", None):
        parser.print_help()
        return 2
    return run_subcommand(args.command, args.func, args)


if __name__ == "__main__":
    sys.exit(main())
