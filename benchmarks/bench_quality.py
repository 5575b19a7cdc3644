"""Quality benchmark: does training through the plugin still learn as well? N seeds x trainers, real nnU-Net.

Every other benchmark measures speed or memory; this one measures the segmentation a training produces, so a
change to a loss, a map or the data path that makes training learn worse shows up as a number. For each
trainer and seed it runs, as a user would:

1. ``nnUNetv2_train DATASET CONFIGURATION 0 -tr <trainer on a short schedule>`` on the CPU with
   ``NNUNET_LOSSPLUG_SEED=seed`` and ``nnUNet_n_proc_DA=0`` (a seeded run is repeatable bit for bit, so a
   difference between two commits is the code's, not chance's);
2. ``nnUNetv2_predict`` on the held-out cases (the raw dataset's ``imagesTs``) and
   ``nnunet-lossplug evaluate`` against ``labelsTs``.

The trainers run on the demo's schedule (:data:`nnunet_lossplug.demo.run.DEMO_SCHEDULE`; ``--epochs``,
``--iterations``, ``--adam-lr`` change it) through trainer files written by
:mod:`nnunet_lossplug.demo.short_schedule`: everything but the epochs, the iterations and Adam's initial rate is
the named trainer's. The data is the demo's synthetic dataset, or ``-d DATASET`` (yours: planned and
preprocessed, with ``imagesTs`` and ``labelsTs`` in its raw folder, and the nnU-Net folders set as usual).

The unit is one training run: per run and class the mean Dice over the held-out cases. Reported per trainer and
class: mean ± sd over the seeds, the minimum, and the runs that lost the class (run's mean Dice below
``--lost-below``, default 0.5); and per trainer the runs with every class at or above ``--target`` (default
0.85, the demo's promise). Written: ``OUTPUT.md`` (the table), ``OUTPUT.png`` (one dot per run and class) and
``OUTPUT.json`` (every run's means; ``--report-only`` redraws the table and figure from it). Runs already
finished in ``--workdir`` are reused, so an interrupted benchmark continues with the same command.

Run: ``python benchmarks/bench_quality.py --seeds 10`` (about 3 min per run on 2 CPU cores). The numbers of
today are in the README ("Quality benchmark"); rerun after a change to the losses, the maps or the data path.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import sys
import time
from pathlib import Path

import numpy as np

from nnunet_lossplug.demo.run import (
    DEFAULT_DEMO_SEED,
    DEMO_DATASET_ID,
    DEMO_SCHEDULE,
    TrainingRun,
    demo_environment,
    prepare_demo_dataset,
    train_predict_evaluate,
)
from nnunet_lossplug.demo.seed_comparison import run_means
from nnunet_lossplug.demo.short_schedule import ShortSchedule, write_short_schedule_trainer
from nnunet_lossplug.demo.synthetic import SyntheticSpec

DEFAULT_TRAINERS = ("nnUNetTrainerRRW", "nnUNetTrainerRRWCEGradual", "nnUNetTrainer")
DEFAULT_OUTPUT = Path(__file__).resolve().parents[1] / "docs" / "figures" / "quality_demo"
WRITER = "benchmarks/bench_quality.py"


def variant_name(base: str, schedule: ShortSchedule) -> str:
    """The short-schedule trainer's class name, e.g. ``nnUNetTrainerRRW_q6x20_lr1em03``."""
    lr = "" if schedule.adam_lr is None else "_lr" + f"{schedule.adam_lr:.0e}".replace("-", "m").replace("+", "p")
    return f"{base}_q{schedule.epochs}x{schedule.iterations_per_epoch}{lr}"


def raw_dataset_folder(dataset: str) -> Path:
    """The raw folder of ``dataset`` (name or id) with the held-out ``imagesTs`` and ``labelsTs`` it needs."""
    from nnunetv2.paths import nnUNet_raw
    from nnunetv2.utilities.dataset_name_id_conversion import maybe_convert_to_dataset_name

    name = maybe_convert_to_dataset_name(dataset)
    folder = Path(nnUNet_raw or "") / name
    missing = [sub for sub in ("imagesTs", "labelsTs") if not (folder / sub).is_dir()]
    if missing:
        raise SystemExit(f"bench_quality: {folder} has no {' and no '.join(missing)}; the benchmark evaluates "
                         f"held-out cases: put some cases (images and labels) there.")
    return folder


def run_all(args: argparse.Namespace, schedule: ShortSchedule) -> dict:
    """Train, predict and evaluate every (trainer, seed) not already done; returns the results document."""
    workdir = args.workdir.resolve()
    trainer_folder = workdir / "trainers"
    names = {base: variant_name(base, schedule) for base, _ in args.trainers}
    seed_counts = dict(args.trainers)
    for base, name in names.items():
        write_short_schedule_trainer(trainer_folder, base, name, schedule, WRITER)
    if args.dataset is None:
        env = demo_environment(workdir, trainer_folder)
        raw_marker = workdir / "prepared.json"
        spec = SyntheticSpec()
        if not raw_marker.exists() or json.loads(raw_marker.read_text()) != {"spec": repr(spec)}:
            raw = prepare_demo_dataset(workdir, spec, env)
            raw_marker.write_text(json.dumps({"spec": repr(spec)}))
        raw = workdir / "nnUNet_raw" / f"Dataset{DEMO_DATASET_ID:03d}_LossPlugDemo"
        dataset, configuration = str(DEMO_DATASET_ID), "2d"
    else:
        from nnunet_lossplug import discovery

        env = dict(os.environ, nnUNet_def_n_proc=os.environ.get("nnUNet_def_n_proc", "2"), nnUNet_compile="f")
        env[discovery.ENV_VAR] = discovery.ext_trainer_value(
            os.pathsep.join(p for p in (env.get(discovery.ENV_VAR, ""), str(trainer_folder)) if p))
        raw = raw_dataset_folder(args.dataset)
        dataset, configuration = args.dataset, args.configuration
    runs = []
    for base, name in names.items():
        for seed in range(args.first_seed, args.first_seed + seed_counts[base]):
            folder = workdir / "runs" / name / f"seed_{seed}"
            done = folder / "run.json"  # written last: a run killed half-way is run again
            if not done.exists():
                started = time.perf_counter()
                run_env = {**env, "nnUNet_results": str(folder / "nnUNet_results")}
                run = TrainingRun(name, dataset, configuration, seed, schedule.epochs, schedule.iterations_per_epoch)
                train_predict_evaluate(run, base, raw, folder, run_env)
                done.write_text(json.dumps({"seconds": round(time.perf_counter() - started, 1)}))
            runs.append({"trainer": base, "variant": name, "seed": seed,
                         "seconds": json.loads(done.read_text())["seconds"],
                         "classes": run_means(folder / "evaluation.json")})
    label_names = {str(v): k for k, v in json.loads((raw / "dataset.json").read_text())["labels"].items()
                   if isinstance(v, int) and v > 0}
    return {"dataset": dataset, "configuration": configuration,
            "schedule": {"epochs": schedule.epochs, "iterations_per_epoch": schedule.iterations_per_epoch,
                         "adam_lr": schedule.adam_lr},
            "label_names": label_names, "runs": runs}


def summarise(document: dict, lost_below: float, target: float) -> list[dict]:
    """Per trainer: per class mean, sd, min of the runs' Dice and the lost runs; runs with every class >= target."""
    labels = sorted(document["label_names"], key=int)
    rows = []
    for trainer in dict.fromkeys(run["trainer"] for run in document["runs"]):
        runs = [run for run in document["runs"] if run["trainer"] == trainer]
        dice = np.array([[run["classes"][label]["dice"] for label in labels] for run in runs], dtype=float)
        hd95 = np.array([[run["classes"][label]["hd95"] for label in labels] for run in runs], dtype=float)
        rows.append({
            "trainer": trainer, "runs": len(runs), "seeds": [run["seed"] for run in runs],
            "dice": dice, "hd95": hd95,
            "lost": (dice < lost_below).sum(axis=0), "at_target": int((dice >= target).all(axis=1).sum()),
            "seconds": float(np.nanmedian([run["seconds"] for run in runs])),
        })
    return rows


def _mean_sd(values: np.ndarray, digits: int) -> str:
    finite = values[np.isfinite(values)]
    if finite.size == 0:
        return "n/a"
    sd = finite.std(ddof=1) if finite.size > 1 else math.nan
    return f"{finite.mean():.{digits}f} ± {sd:.{digits}f}"


def markdown_report(document: dict, rows: list[dict], lost_below: float, target: float) -> str:
    """The benchmark's table as Markdown (also printed)."""
    labels = sorted(document["label_names"], key=int)
    names = [document["label_names"][label] for label in labels]
    schedule = document["schedule"]
    lines = [
        f"# Quality benchmark: dataset {document['dataset']}, {document['configuration']}, "
        f"{schedule['epochs']} epochs x {schedule['iterations_per_epoch']} iterations"
        + (f", Adam trainers at lr {schedule['adam_lr']:g}" if schedule["adam_lr"] is not None else ""),
        "",
        "Written by `python benchmarks/bench_quality.py`. One run = one seeded `nnUNetv2_train` (fold 0, "
        "`nnUNet_n_proc_DA=0`), then `nnUNetv2_predict` and `nnunet-lossplug evaluate` on the held-out cases; "
        "a run's Dice of a class is its mean over those cases. Mean ± sd and min are over the runs (seeds).",
        "",
        "| trainer | runs | " + " | ".join(f"{n} Dice mean ± sd (min)" for n in names)
        + " | " + " | ".join(f"{n} HD95 mm" for n in names)
        + f" | runs that lost a class (Dice < {lost_below:g}) | runs with every class ≥ {target:g} "
        "| median s per run |",
        "|---|---|" + "---|" * (2 * len(names) + 3),
    ]
    for row in rows:
        dice_cells = [f"{_mean_sd(row['dice'][:, c], 3)} ({np.nanmin(row['dice'][:, c]):.3f})"
                      for c in range(len(labels))]
        hd_cells = [_mean_sd(row["hd95"][:, c], 1) for c in range(len(labels))]
        lost = ", ".join(f"{n}: {int(k)}" for n, k in zip(names, row["lost"]) if k) or "none"
        lines.append(f"| {row['trainer']} | {row['runs']} | " + " | ".join(dice_cells) + " | "
                     + " | ".join(hd_cells) + f" | {lost} | {row['at_target']} / {row['runs']} "
                     f"| {row['seconds']:.0f} |")
    seed_lists = {row["trainer"]: ", ".join(map(str, sorted(row["seeds"]))) for row in rows}
    seeds = (next(iter(seed_lists.values())) if len(set(seed_lists.values())) == 1
             else "; ".join(f"{trainer} {listed}" for trainer, listed in seed_lists.items()))
    lines += ["", f"Seeds: {seeds}. Seconds are wall time on the machine that ran the benchmark, "
              "longer for runs that shared its cores with other work. A later change whose mean Dice of a class "
              "falls by more than that class's sd here deserves a look; compare two commits run for run with "
              "`nnunet-lossplug compare` (pairs = seeds)."]
    return "\n".join(lines) + "\n"


def draw(document: dict, rows: list[dict], target: float, path: Path) -> None:
    """One dot per run and class for each trainer (black bar: median), the target as a dashed line."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    labels = sorted(document["label_names"], key=int)
    names = [document["label_names"][label] for label in labels]
    colours = plt.get_cmap("tab10").colors
    fig, ax = plt.subplots(figsize=(2.2 + 1.8 * len(names), 3.6))
    width = 0.8 / max(1, len(rows))
    rng = np.random.default_rng(0)
    for index, row in enumerate(rows):
        offset = (index - (len(rows) - 1) / 2) * width
        for c in range(len(names)):
            values = row["dice"][:, c]
            ax.scatter(c + offset + rng.uniform(-width / 4, width / 4, values.size), values, s=14,
                       color=colours[index % 10], alpha=0.75, label=f"{row['trainer']} ({row['runs']} runs)"
                       if c == 0 else None)
            ax.hlines(np.nanmedian(values), c + offset - width / 3, c + offset + width / 3, color="black", lw=1.5)
    ax.axhline(target, color="grey", ls="--", lw=1, label=f"demo target {target:g}")
    ax.set_xticks(range(len(names)))
    ax.set_xticklabels(names)
    ax.set_ylabel("Dice on the held-out cases (per run)")
    low = min(0.5, float(np.nanmin([np.nanmin(row["dice"]) for row in rows])) - 0.02)
    ax.set_ylim(low, 1.0)
    ax.grid(axis="y", alpha=0.3)
    ax.legend(fontsize=7, loc="lower left")
    schedule = document["schedule"]
    ax.set_title(f"Quality benchmark, {schedule['epochs']} x {schedule['iterations_per_epoch']} iterations "
                 f"(black bar: median)", fontsize=9)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


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
                        help="your dataset (name or id; planned, preprocessed, imagesTs + labelsTs); default: "
                             "the demo's synthetic data, generated in --workdir")
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
    trainers = []
    for item in args.trainers:
        name, _, count = item.partition(":")
        if not name.isidentifier() or (count and (not count.isdigit() or int(count) < 1)):
            parser.error(f"--trainers {item}: give TRAINER or TRAINER:K with K >= 1")
        trainers.append((name, int(count) if count else args.seeds))
    args.trainers = trainers
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    results = args.output.with_suffix(".json")
    if args.report_only:
        if not results.exists():
            print(f"bench_quality: --report-only needs {results}; run the benchmark first.", file=sys.stderr)
            return 2
        document = json.loads(results.read_text())
    else:
        document = run_all(args, ShortSchedule(args.epochs, args.iterations, args.adam_lr))
        results.parent.mkdir(parents=True, exist_ok=True)
        results.write_text(json.dumps(document, indent=1) + "\n")
    rows = summarise(document, args.lost_below, args.target)
    report = markdown_report(document, rows, args.lost_below, args.target)
    args.output.with_suffix(".md").write_text(report)
    draw(document, rows, args.target, args.output.with_suffix(".png"))
    print("\n" + report)
    print(f"wrote {args.output.with_suffix('.md')}, {args.output.with_suffix('.png')} and {results}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
