"""Quality benchmark: does training through the plugin still learn as well? ``nnunet-lossplug benchmark`` on the
demo's data.

Every other benchmark measures speed or memory; this one measures the segmentation a training produces, so a
change to a loss, a map or the data path that makes training learn worse shows up as a number. It is
``nnunet-lossplug benchmark`` (:func:`nnunet_lossplug.benchmark.execute.run_benchmark`: seeded ``nnUNetv2_train``
per trainer and seed on one schedule, ``nnUNetv2_predict`` of the held-out cases, raw and after nnU-Net's
post-processing, the paired test) with this repository's defaults: the demo's synthetic dataset, generated in
``--workdir``, the demo's schedule (12 epochs × 40 iterations, Adam trainers at 1e-3), three trainers, and a
column counting the runs with every class at or above ``--target`` (default 0.85, the demo's promise).

Written: ``OUTPUT.md`` (the report), ``OUTPUT.png`` (one dot per run and class) and ``OUTPUT.json`` (every run;
``--report-only`` redraws the report and figure from it). The runs live in ``WORKDIR/benchmark``; finished runs
are reused, so an interrupted benchmark continues with the same command.

Run: ``python benchmarks/bench_quality.py --seeds 10`` (about 3 min per run on 2 CPU cores). The numbers of
today are in docs/performance.md ("Quality benchmark"); rerun after a change to the losses, the maps or the data
path. ``-d DATASET`` runs it on your planned dataset instead (or use ``nnunet-lossplug benchmark`` itself).
"""

from __future__ import annotations

import argparse
import json
import shlex
import sys
from pathlib import Path

from nnunet_lossplug.benchmark.execute import run_benchmark
from nnunet_lossplug.benchmark.figure import draw
from nnunet_lossplug.benchmark.owned_folder import OwnedFolder
from nnunet_lossplug.benchmark.plan import BenchmarkPlan, parse_trainer_items, variant_name
from nnunet_lossplug.benchmark.report import markdown_report
from nnunet_lossplug.benchmark.short_trainers import ShortSchedule
from nnunet_lossplug.demo.run import (
    DEFAULT_DEMO_SEED,
    DEMO_DATASET_ID,
    DEMO_SCHEDULE,
    demo_environment,
    prepare_demo_dataset,
)
from nnunet_lossplug.demo.synthetic import SyntheticSpec

DEFAULT_TRAINERS = ("nnUNetTrainerRRW", "nnUNetTrainerRRWCEGradual", "nnUNetTrainer")
DEFAULT_OUTPUT = Path(__file__).resolve().parents[1] / "docs" / "figures" / "quality_demo"
WRITER = "benchmarks/bench_quality.py"

__all__ = ["main", "parse_args", "variant_name"]


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--trainers", nargs="+", default=list(DEFAULT_TRAINERS), metavar="TRAINER[:K]",
                        help=f"trainers (the plugin's or nnU-Net's), each optionally with its own number of seeds "
                             f"(nnUNetTrainerRRW:10); default: {' '.join(DEFAULT_TRAINERS)}")
    parser.add_argument("--seeds", type=int, default=5, help="runs per trainer without its own :K (default 5)")
    parser.add_argument("--first-seed", type=int, default=DEFAULT_DEMO_SEED,
                        help=f"seeds first-seed, first-seed + 1, ... (default {DEFAULT_DEMO_SEED}, the demo's)")
    parser.add_argument("--epochs", type=int, default=DEMO_SCHEDULE.epochs)
    parser.add_argument("--iterations", type=int, default=DEMO_SCHEDULE.iterations_per_epoch)
    parser.add_argument("--adam-lr", type=float, default=DEMO_SCHEDULE.adam_lr,
                        help="initial learning rate of trainers that declare Adam (default: the demo's)")
    parser.add_argument("-d", "--dataset", default=None,
                        help="your dataset (name or id; planned and preprocessed); default: the demo's synthetic "
                             "data, generated in --workdir")
    parser.add_argument("-c", "--configuration", default="2d", help="with -d: the configuration (default 2d)")
    parser.add_argument("--workdir", type=Path, default=Path("bench_quality_work"),
                        help="runs and (for the demo's data) nnU-Net's folders; finished runs are reused")
    parser.add_argument("-o", "--output", type=Path, default=DEFAULT_OUTPUT,
                        help="writes OUTPUT.md, OUTPUT.png, OUTPUT.json (default docs/figures/quality_demo)")
    parser.add_argument("--lost-below", type=float, default=0.5, help="a run lost a class below this Dice")
    parser.add_argument("--target", type=float, default=0.85, help="count runs with every class at least this")
    parser.add_argument("--report-only", action="store_true",
                        help="no training: redraw OUTPUT.md and OUTPUT.png from OUTPUT.json")
    args = parser.parse_args(argv)
    if args.seeds < 1 or args.epochs < 1 or args.iterations < 1:
        parser.error("--seeds, --epochs and --iterations must be at least 1")
    try:
        args.trainers = parse_trainer_items(args.trainers, args.seeds)
    except ValueError as error:
        parser.error(str(error))
    return args


def run_all(args: argparse.Namespace) -> dict:
    """Prepare the demo's data (unless ``-d``) and run the benchmark in ``WORKDIR/benchmark``."""
    import os

    workdir = args.workdir.absolute()
    schedule = ShortSchedule(args.epochs, args.iterations, args.adam_lr)
    if args.dataset is None:
        folder = OwnedFolder(workdir, WRITER)
        folder.claim("--workdir")
        env = demo_environment(workdir, workdir / "benchmark" / "trainers")
        marker = workdir / "prepared.json"
        spec = SyntheticSpec()
        if not marker.exists() or json.loads(marker.read_text()) != {"spec": repr(spec)}:
            prepare_demo_dataset(workdir, spec, env)
            marker.write_text(json.dumps({"spec": repr(spec)}))
            folder.record("prepared.json", "nnUNet_raw", "nnUNet_preprocessed")
        dataset, configuration = str(DEMO_DATASET_ID), "2d"
    else:
        env, dataset, configuration = dict(os.environ), args.dataset, args.configuration
    plan = BenchmarkPlan(dataset, configuration, tuple(args.trainers), schedule, device="cpu",
                         first_seed=args.first_seed)
    return run_benchmark(plan, workdir / "benchmark", env, writer=WRITER,
                         command_line=shlex.join(["python", WRITER, *sys.argv[1:]]), lost_below=args.lost_below)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    results = args.output.with_suffix(".json")
    if args.report_only:
        if not results.exists():
            print(f"bench_quality: --report-only needs {results}; run the benchmark first.", file=sys.stderr)
            return 2
        document = json.loads(results.read_text())
        if "trainers" not in document or any("raw" not in run for run in document.get("runs", [])):
            print(f"bench_quality: {results} was written by an earlier version of this script (no per-case "
                  f"results); run the benchmark again to redraw its report.", file=sys.stderr)
            return 2
    else:
        document = run_all(args)
        results.parent.mkdir(parents=True, exist_ok=True)
        results.write_text(json.dumps(document, indent=1) + "\n")
    report = markdown_report(document, args.lost_below, target=args.target)
    args.output.with_suffix(".md").write_text(report)
    draw(document, args.output.with_suffix(".png"), target=args.target)
    print("\n" + report)
    print(f"wrote {args.output.with_suffix('.md')}, {args.output.with_suffix('.png')} and {results}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
