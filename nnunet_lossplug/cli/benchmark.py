"""``nnunet-lossplug benchmark``: which trainer for my dataset? Several trainers, K seeds each, one short schedule."""

from __future__ import annotations

import argparse
import json
import os
import shlex
import sys
from pathlib import Path

BUDGET_HELP = {"cpu": "12 epochs x 40 iterations on the CPU (the demo's; minutes per run)",
               "gpu-short": "50 x 250 on the GPU (nnU-Net's 50-epoch schedule)",
               "gpu": "250 x 250 on the GPU (nnU-Net's 250-epoch schedule; Adam trainers at their own rate)"}


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "benchmark",
        help="which loss for my dataset: train several trainers on K seeds with one short schedule, compare them",
        description=(
            "Trains each named trainer (the plugin's, yours from an nnUNet_extTrainer folder, or nnU-Net's own such "
            "as nnUNetTrainer) on your planned dataset with K seeds and one matched short schedule, through "
            "nnU-Net's own nnUNetv2_train (seeded; nnU-Net's trainers get the plugin's seeding in a generated "
            "subclass). It predicts the held-out cases (imagesTs/labelsTs; without them the fold's validation "
            "cases), evaluates them raw and after nnU-Net's own post-processing (chosen on the fold's validation "
            "cases with nnUNetv2_determine_postprocessing, applied with nnUNetv2_apply_postprocessing), runs the "
            "paired permutation test against a reference trainer (pairs = seeds x cases) and writes one report "
            "folder: report.md, report.png, report.json, commands.sh, the generated trainers and every run. "
            "Finished runs are reused when the same command runs again (their recorded settings are checked); "
            "Ctrl-C keeps them."
        ),
        epilog="example: nnunet-lossplug benchmark -d 501 --trainers nnUNetTrainerRRW nnUNetTrainer --seeds 3 "
               "-o rrw_vs_default",
    )
    parser.add_argument("-d", "--dataset", required=True, help="your dataset, planned and preprocessed (id or name)")
    parser.add_argument("-c", "--configuration", default="2d", help="nnU-Net configuration (default: 2d)")
    parser.add_argument("--trainers", nargs="+", required=True, metavar="TRAINER[:K]",
                        help="trainers to compare: the plugin's, yours (found in nnUNet_extTrainer) or nnU-Net's "
                             "(nnUNetTrainer); TRAINER:K gives one trainer K seeds")
    parser.add_argument("--seeds", type=int, default=3, metavar="K",
                        help="seeds per trainer without its own :K (default: 3)")
    parser.add_argument("--first-seed", type=int, default=None,
                        help="seeds are first-seed, first-seed + 1, ... (default: 3, the demo's)")
    parser.add_argument("--budget", choices=tuple(BUDGET_HELP), default="cpu",
                        help="schedule preset: " + "; ".join(f"{k}: {v}" for k, v in BUDGET_HELP.items())
                             + " (default: cpu)")
    parser.add_argument("--epochs", type=int, default=None, help="epochs (default: the budget's)")
    parser.add_argument("--iterations", type=int, default=None, help="iterations per epoch (default: the budget's)")
    parser.add_argument("--adam-lr", type=float, default=None,
                        help="initial learning rate of trainers that declare Adam (default: the budget's; SGD "
                             "trainers keep theirs)")
    parser.add_argument("--device", choices=("cpu", "cuda", "mps"), default=None,
                        help="device of nnUNetv2_train and nnUNetv2_predict (default: the budget's)")
    parser.add_argument("--reference", default=None, metavar="TRAINER",
                        help="the trainer the others are compared with (default: nnUNetTrainer when named, else "
                             "the first)")
    parser.add_argument("-o", "--output", type=Path, required=True, metavar="DIR",
                        help="report folder: new, empty, or made by an earlier benchmark (its finished runs are "
                             "reused); a folder holding other files is refused")
    parser.add_argument("--report-only", action="store_true",
                        help="train nothing: redraw report.md and report.png from DIR/report.json")
    parser.add_argument("--trainers-only", action="store_true",
                        help="train nothing: write the short-schedule trainers to DIR/trainers and print the "
                             "nnUNet_extTrainer line and the nnUNetv2_train command that train them, seeded")
    parser.set_defaults(func=run)


def plan_from_args(args: argparse.Namespace):
    """The :class:`~nnunet_lossplug.benchmark.plan.BenchmarkPlan` of the command line (ValueError when wrong)."""
    from dataclasses import replace

    from nnunet_lossplug.benchmark.plan import BUDGETS, DEFAULT_FIRST_SEED, BenchmarkPlan, parse_trainer_items

    if args.seeds < 1:
        raise ValueError(f"--seeds {args.seeds}: give at least 1.")
    budget = BUDGETS[args.budget]
    schedule = budget.schedule
    if args.epochs is not None:
        schedule = replace(schedule, epochs=args.epochs)
    if args.iterations is not None:
        schedule = replace(schedule, iterations_per_epoch=args.iterations)
    if args.adam_lr is not None:
        schedule = replace(schedule, adam_lr=args.adam_lr)
    return BenchmarkPlan(args.dataset, args.configuration, tuple(parse_trainer_items(args.trainers, args.seeds)),
                         schedule, device=args.device or budget.device,
                         first_seed=DEFAULT_FIRST_SEED if args.first_seed is None else args.first_seed)


def run(args: argparse.Namespace) -> int:
    from nnunet_lossplug.benchmark.execute import WRITER, run_benchmark, write_report, write_trainers_only
    from nnunet_lossplug.benchmark.owned_folder import OwnedFolder

    if args.report_only:
        OwnedFolder(args.output, WRITER).claim()
        document_file = args.output / "report.json"
        if not document_file.is_file():
            raise ValueError(f"--report-only needs {document_file}; run the benchmark into {args.output} first.")
        print(write_report(json.loads(document_file.read_text()), args.output))
        return 0
    plan = plan_from_args(args)
    if args.trainers_only:
        write_trainers_only(plan, args.output, os.environ)
        return 0
    run_benchmark(plan, args.output, os.environ, reference=args.reference,
                  command_line=shlex.join(["nnunet-lossplug", *sys.argv[1:]]))
    print("\n" + (args.output / "report.md").read_text())
    print(f"wrote {args.output / 'report.md'}, report.png, report.json and commands.sh in {args.output}")
    return 0
