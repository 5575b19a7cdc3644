"""``nnunet-lossplug demo``: the whole pipeline on generated data, on CPU, with nnU-Net's own commands."""

from __future__ import annotations

import argparse
from pathlib import Path


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "demo",
        help="end-to-end demo on synthetic cardiac-like data: plan, precompute, train RRW, predict, evaluate",
        description=(
            "Writes a small synthetic 3D dataset (anisotropic spacing; background, RV, myocardium, LV; some "
            "slices without foreground) as an nnU-Net raw dataset, then runs nnUNetv2_plan_and_preprocess, the "
            "plugin's precompute hook, nnUNetv2_train with nnUNetTrainerRRW on a CPU-sized schedule, "
            "nnUNetv2_predict on held-out cases and prints per-class Dice and Hausdorff distances. "
            "A few minutes on 2 CPU cores. Running it again starts afresh in the same folder."
        ),
    )
    parser.add_argument("-o", "--workdir", type=Path, default=Path("nnunet_lossplug_demo"),
                        help="folder for nnU-Net's raw, preprocessed and results folders (default: "
                             "./nnunet_lossplug_demo)")
    parser.add_argument("--epochs", type=int, default=6, help="training epochs (default: 6)")
    parser.add_argument("--iterations", type=int, default=20, help="iterations per epoch (default: 20)")
    parser.add_argument("--compare", action="store_true",
                        help="also train nnU-Net's default nnUNetTrainer on the same data and budget and print "
                             "both evaluation tables side by side (Dice, HD, HD95 per class)")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from nnunet_lossplug.demo.run import DemoSettings, run_demo

    return run_demo(DemoSettings(args.workdir, epochs=args.epochs, iterations_per_epoch=args.iterations,
                                 compare=args.compare))
