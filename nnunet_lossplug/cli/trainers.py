"""``nnunet-lossplug trainers``: the trainer catalogue, one line each, with the paper it comes from."""

from __future__ import annotations

import argparse


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser("trainers", help="list the plugin's trainers (names for nnUNetv2_train -tr)")
    parser.add_argument("-v", "--verbose", action="store_true", help="also show loss, maps and optimiser settings")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from nnunet_lossplug.catalogue import list_trainers

    entries = list_trainers()
    width = max(len(e.name) for e in entries)
    module = None
    for entry in entries:
        if entry.module != module:
            module = entry.module
            print(f"\n[{module}]")
        print(f"  {entry.name:<{width}}  {entry.summary}" + (f"  ({entry.reference})" if entry.reference else ""))
        if args.verbose:
            print(f"  {'':<{width}}    {entry.settings}")
    print(f"\n{len(entries)} trainers. Train with: nnUNetv2_train DATASET CONFIGURATION FOLD -tr NAME")
    return 0
