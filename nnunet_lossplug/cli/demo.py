"""``nnunet-lossplug demo``: the whole pipeline on generated data, on CPU, with nnU-Net's own commands."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from nnunet_lossplug.demo.run import DEFAULT_DEMO_SEED, DEMO_SCHEDULE


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "demo",
        help="end-to-end demo on synthetic cardiac-like data: plan, precompute, train RRW, predict, evaluate",
        description=(
            "Writes a small synthetic 3D dataset (anisotropic spacing; background, RV, myocardium, LV; some "
            "slices without foreground) as an nnU-Net raw dataset, then runs nnUNetv2_plan_and_preprocess, the "
            "plugin's precompute hook, nnUNetv2_train with nnUNetTrainerRRW on a CPU-sized schedule, "
            "nnUNetv2_predict on held-out cases and prints per-class Dice and Hausdorff distances. "
            "A few minutes on 2 CPU cores. Running it again in the same folder starts afresh, deleting only what "
            "the demo made there; a folder holding other files is refused."
        ),
    )
    parser.add_argument("-o", "--workdir", type=Path, default=Path("nnunet_lossplug_demo"),
                        help="folder for nnU-Net's raw, preprocessed and results folders: new, empty, or made by an "
                             "earlier demo (default: ./nnunet_lossplug_demo)")
    parser.add_argument("--epochs", type=int, default=DEMO_SCHEDULE.epochs,
                        help=f"training epochs (default: {DEMO_SCHEDULE.epochs})")
    parser.add_argument("--iterations", type=int, default=DEMO_SCHEDULE.iterations_per_epoch,
                        help=f"iterations per epoch (default: {DEMO_SCHEDULE.iterations_per_epoch})")
    parser.add_argument("--compare", action="store_true",
                        help="train nnUNetTrainerRRW and nnU-Net's default nnUNetTrainer on the same data, budget "
                             "and seed with nnunet-lossplug benchmark, and print its report: Dice and HD95 per class, "
                             "raw and after nnU-Net's post-processing, and the paired test (report in WORKDIR/compare; "
                             "finished runs are reused)")
    parser.add_argument("--seed", type=int, default=DEFAULT_DEMO_SEED,
                        help=f"seed of the training (NNUNET_LOSSPLUG_SEED; augmentation in the training process), "
                             f"so a rerun gives the same numbers (default: {DEFAULT_DEMO_SEED})")
    parser.add_argument("--seeds", type=int, default=1, metavar="K",
                        help="with --compare: train both trainers on K seeds (--seed, --seed + 1, ...): mean ± sd "
                             "over the seeds and a paired permutation test, pairs = seeds x held-out cases "
                             "(default: 1, a single run, which proves nothing)")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from nnunet_lossplug.demo.run import DemoSettings, run_demo

    if args.seeds < 1 or not 0 <= args.seed < 2**32 - args.seeds:
        print(f"nnunet-lossplug demo: --seed {args.seed} --seeds {args.seeds}: give a seed from 0 to 2**32 - K "
              f"and K >= 1.", file=sys.stderr)
        return 2
    if args.seeds > 1 and not args.compare:
        print("nnunet-lossplug demo: --seeds K needs --compare (a single trainer's demo uses --seed).",
              file=sys.stderr)
        return 2
    return run_demo(DemoSettings(args.workdir, epochs=args.epochs, iterations_per_epoch=args.iterations,
                                 compare=args.compare, seed=args.seed, seeds=args.seeds))
