"""``nnunet-lossplug trainers``: the trainer catalogue, one line each, with the paper it comes from."""

from __future__ import annotations

import argparse


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "trainers",
        help="list the plugin's trainers and yours (LossPlugTrainer subclasses in nnUNet_extTrainer folders)",
    )
    parser.add_argument("-v", "--verbose", action="store_true", help="also show loss, maps and optimiser settings")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from nnunet_lossplug.catalogue import list_trainers, list_user_trainers

    own = list_trainers()
    users, failures = list_user_trainers()
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
    for failure in failures:
        print(f"\nnot imported (a file of nnUNet_extTrainer): {failure}")
    mine = f" (and {len(users)} of yours)" if users else ""
    print(f"\n{len(own)} trainers{mine}. Train with: nnUNetv2_train DATASET CONFIGURATION FOLD -tr NAME")
    return 0
