"""``nnunet-lossplug env``: show whether nnU-Net finds our trainers, and the line that makes it so."""

from __future__ import annotations

import argparse
import os

from nnunet_lossplug import discovery


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "env",
        help="show how nnU-Net discovers the plugin's trainers (nnUNet_extTrainer)",
        description=(
            "nnU-Net finds trainers outside its own package through the nnUNet_extTrainer environment "
            "variable. The installed nnunet-lossplug.pth adds our trainer folder to it whenever Python starts, "
            "so nothing needs to be set. Where that is switched off (NNUNET_LOSSPLUG_NO_AUTOREGISTER=1) or "
            ".pth files are not run, put the printed export line in your shell profile."
        ),
    )
    parser.add_argument("--export", action="store_true", help="print only the export line (for eval)")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    line = discovery.shell_export_line()
    if args.export:
        print(line)
        return 0
    registered = discovery.is_registered()
    print(f"trainer folder:       {discovery.trainers_folder()}")
    print(f"{discovery.ENV_VAR}:    {os.environ.get(discovery.ENV_VAR, '<unset>')}")
    print(f"found by nnU-Net:     {'yes' if registered else 'NO'}")
    for name in ("nnUNet_raw", "nnUNet_preprocessed", "nnUNet_results"):
        print(f"{name + ':':<22}{os.environ.get(name, '<unset>')}")
    if not registered:
        print("\nnnU-Net will not find the plugin's trainers in this shell. Add this line to your shell profile:")
        print(f"  {line}")
        return 1
    return 0
