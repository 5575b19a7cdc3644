"""``nnunet-lossplug trainers``: the plugin's trainers and the user's, one line each, with the paper it comes from."""

from __future__ import annotations

import argparse
import sys


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "trainers",
        help="list the plugin's trainers and yours (LossPlugTrainer subclasses in nnUNet_extTrainer folders)",
        description=(
            "List the plugin's trainers and yours. A trainer name defined in more than one file of the folders "
            "nnU-Net searches (its own, every nnUNet_extTrainer folder, the plugin's) is flagged: nnU-Net's "
            "-tr NAME uses the first it finds and never the others. Exits with status 1 when a file of those "
            "folders does not import (each is named)."
        ),
    )
    parser.add_argument("-v", "--verbose", action="store_true", help="also show loss, maps and optimiser settings")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from nnunet_lossplug.trainer_listing import plugin_trainers, user_trainers
    from nnunet_lossplug.trainer_sources import duplicate_trainer_names

    own = plugin_trainers()
    users, failures = user_trainers()
    entries = own + users
    width = max(len(e.name) for e in entries)
    module = None
    for entry in entries:
        if entry.module != module:
            module = entry.module
            print(f"\n[{module}]")
        print(f"  {entry.name:<{width}}  {entry.summary}" + (f"  ({entry.reference})" if entry.reference else ""))
        if args.verbose:
            print(f"  {'':<{width}}    {entry.settings}")
    if failures:
        print(f"\n{len(failures)} trainer file(s) of nnUNet_extTrainer do not import; nnUNetv2_train -tr stops at "
              f"the first of them for every trainer it has not found before it. Fix or move each:", file=sys.stderr)
        for failure in failures:
            print(f"  {failure}", file=sys.stderr)
    for name, definitions in duplicate_trainer_names().items():
        others = ", ".join(str(d) for d in definitions[1:])
        print(f"\nwarning: trainer name {name} is defined {len(definitions)} times; nnUNetv2_train -tr {name} uses "
              f"{definitions[0]} and never {others}. Rename all but one.")
    mine = f" (and {len(users)} of yours)" if users else ""
    print(f"\n{len(own)} trainers{mine}. Train with: nnUNetv2_train DATASET CONFIGURATION FOLD -tr NAME")
    return 1 if failures else 0
