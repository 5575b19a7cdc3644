"""``nnunet-lossplug new-trainer``: write a short trainer file (loss, maps, deep supervision, optimiser)."""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

from nnunet_lossplug.cli.map_args import map_kinds_help


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "new-trainer",
        help="write a trainer file (a LossPlugTrainer declaration) for your own nnUNet_extTrainer folder",
        description=(
            "Write FOLDER/NAME.py declaring a trainer from the plugin's LossPlugTrainer: which loss, which "
            "RW map, which deep-supervision (WMLA) weights, which optimiser. Deep supervision, map "
            "precomputation, checkpoints, resuming and nnUNetv2_predict work as for the plugin's own "
            "trainers. The request is checked now (the loss is built once), an existing file is never "
            "overwritten, and the line that lists FOLDER in nnUNet_extTrainer is printed. Edit the file "
            "freely afterwards."
        ),
        epilog=(
            "example: nnunet-lossplug new-trainer nnUNetTrainerMyRRW --loss RegionWiseLoss --maps rrw "
            "--ds-weights 1,0.1,0.01 --optimizer adam --lr 1e-4 --epochs 300 -o ~/my_trainers"
        ),
    )
    parser.add_argument("name", metavar="NAME",
                        help="trainer class name; also the file name and the -tr of nnUNetv2_train")
    parser.add_argument("--loss", required=True,
                        help="a loss class of nnunet_lossplug.losses (e.g. RegionWiseLoss, DiceLoss, "
                             "FocalLoss) or module:Class of an installed module")
    parser.add_argument("--loss-kwargs", default=None, metavar="JSON",
                        help='keyword arguments of the loss as a JSON object, e.g. \'{"batch_dice": true}\'')
    parser.add_argument("--maps", default=None, metavar="KIND",
                        help=f"built-in map kind for a loss that takes one (default: none): {map_kinds_help()}")
    parser.add_argument("--ds-weights", default="nnunet", metavar="WEIGHTS",
                        help="deep-supervision weights: nnunet (default), trainable, or numbers from high "
                             "to low resolution such as 1,0.1,0.01 (Nguyen et al.'s (2019) best)")
    parser.add_argument("--optimizer", choices=("adam", "sgd"), default=None,
                        help="optimiser (default: nnU-Net's SGD; with only --lr: SGD)")
    parser.add_argument("--lr", type=float, default=None,
                        help="initial learning rate (default: 1e-4 for adam as in Valverde & Tohka 2022, 1e-2 for sgd)")
    parser.add_argument("--epochs", type=int, default=None, help="training epochs (default: nnU-Net's 1000)")
    parser.add_argument("--iterations", type=int, default=None,
                        help="training iterations per epoch (default: nnU-Net's 250)")
    parser.add_argument("--val-iterations", type=int, default=None,
                        help="validation iterations per epoch (default: nnU-Net's 50)")
    parser.add_argument("--grad-clip", type=float, default=None,
                        help="L2 gradient-clipping norm, at most 12 (default: 12 as nnU-Net; "
                             "Nguyen et al. 2019 uses 5)")
    parser.add_argument("-o", "--output-folder", default=".", metavar="FOLDER",
                        help="folder of your trainer files, created if missing (default: current folder)")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from nnunet_lossplug.discovery import ENV_VAR
    from nnunet_lossplug.scaffold import (
        ScaffoldError,
        TrainerRequest,
        export_line,
        parse_ds_weights,
        parse_loss_kwargs,
        write_trainer,
    )

    folder = Path(args.output_folder).expanduser()
    try:
        request = TrainerRequest(
            name=args.name, loss=args.loss, loss_kwargs=parse_loss_kwargs(args.loss_kwargs), maps=args.maps,
            ds_weights=parse_ds_weights(args.ds_weights), optimizer=args.optimizer, lr=args.lr,
            epochs=args.epochs, grad_clip=args.grad_clip, iterations_per_epoch=args.iterations,
            val_iterations_per_epoch=args.val_iterations,
        )
        path = write_trainer(request, folder)
    except ScaffoldError as err:
        print(f"nnunet-lossplug new-trainer: error: {err}", file=sys.stderr)
        return 2
    listed = str(folder.resolve()) in [p for p in os.environ.get(ENV_VAR, "").split(os.pathsep) if p]
    print(f"Wrote {path}")
    if listed:
        print(f"{folder.resolve()} is already listed in {ENV_VAR}.")
    else:
        print(f"nnU-Net finds it once {folder.resolve()} is listed in {ENV_VAR}; add to your shell profile:")
        print(f"  {export_line(folder)}")
    print(f"Train with: nnUNetv2_train DATASET CONFIGURATION FOLD -tr {request.name}")
    return 0
