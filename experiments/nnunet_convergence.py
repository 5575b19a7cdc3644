"""Experiment 5 -- Valverde & Tohka 2022 Fig. 5 through the product: RW loss alone inside nnU-Net, over seeds.

Claim (Valverde & Tohka 2022 Sec. 4.3, Fig. 5): trained with the RW loss alone in nnU-Net, all 50 RRW models reach a
validation Dice >= 0.9 after 50 epochs on ACDC17, while a fraction of the RW-Boundary models stall near 0.5.
Experiment 2 (``convergence_stability.py``, a 30 k-parameter toy U-Net) found RRW runs losing whole classes
too. nnU-Net adds normalisation, deep supervision, augmentation and the poly schedule, which the toy lacks.

Here the whole protocol runs through nnU-Net's own command-line entry points and the plugin's trainers:

1. the demo's ACDC-like synthetic 3D data (:mod:`nnunet_lossplug.demo.synthetic`, more cases), written as an
   nnU-Net raw dataset and planned and preprocessed once by ``nnUNetv2_plan_and_preprocess -c 2d``;
2. short, seeded variants of ``nnUNetTrainerRRW``, ``nnUNetTrainerRWBoundary`` and ``nnUNetTrainerRRWCEGradual``
   written by this script into a trainer file in the work folder (added to ``nnUNet_extTrainer``); nnU-Net has
   no seed option, so each variant seeds ``random``, numpy and torch when it is built (network initialisation,
   patch sampling and augmentation; the data and the split are fixed). The gradual CE -> RRW schedule is
   stretched so that the run's last epoch has the α of the paper's epoch 50 (α = 0.51);
3. ``nnUNetv2_train DATASET 2d 0 -tr <variant> -device cpu`` per trainer and seed, which ends with nnU-Net's
   own validation of fold 0 (whole validation cases, sliding window); its ``summary.json`` gives the
   per-class Dice of each run.

Reported: the final validation Dice per run (mean of RV, MYO, LV, and per class), its empirical CDF (paper
002 eq. 8), the per-epoch pseudo-Dice nnU-Net logged, the number of runs that lose a class, and paired
permutation tests by seed (:func:`nnunet_lossplug.evaluation.paired_permutation_test`).

Run: ``python experiments/nnunet_convergence.py [--quick] [--seeds N] [--workdir DIR]``; writes
``docs/figures/nnunet_convergence.png`` and ``.md``. Runs already finished in ``--workdir`` are reused, so an
interrupted run can be continued with the same command.
"""

from __future__ import annotations

import dataclasses
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

if __package__ in (None, ""):  # run as a script: make the repository root importable
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from experiments.common.plots import per_class_dots  # noqa: E402
from experiments.common.reporting import experiment_parser, markdown_table, start_run  # noqa: E402
from experiments.convergence_stability import empirical_cdf  # noqa: E402
from nnunet_lossplug import discovery  # noqa: E402
from nnunet_lossplug.demo.synthetic import SyntheticSpec, write_synthetic_dataset  # noqa: E402
from nnunet_lossplug.evaluation import paired_permutation_test  # noqa: E402
from nnunet_lossplug.nnunet.trainer.collapse_guard import collapse_events  # noqa: E402

NAME = "nnunet_convergence"
DATASET_ID = 995
DATASET_NAME = "LossPlugFig5"
CLASS_NAMES = ("RV", "MYO", "LV")
TRAINERS = ("nnUNetTrainerRWBoundary", "nnUNetTrainerRRW", "nnUNetTrainerRRWCEGradual")
LABELS = {"nnUNetTrainerRWBoundary": "RW-Boundary alone", "nnUNetTrainerRRW": "RRW alone",
          "nnUNetTrainerRRWCEGradual": "CE -> RRW (gradual)"}
COLOURS = {"nnUNetTrainerRWBoundary": "#d95f02", "nnUNetTrainerRRW": "#1b9e77",
           "nnUNetTrainerRRWCEGradual": "#7570b3"}
LOST_CLASS_DICE = 0.1
PAPER_EPOCHS = 50  # Valverde & Tohka 2022 Fig. 5 / Fig. 6: 50 epochs
PLANS = "nnUNetPlansCPU"
GUARD_WARMUP, GUARD_PATIENCE = 2, 3  # the collapse guard, scaled to the short runs, applied to the logged history

VARIANT_HEADER = '''"""Seeded short variants written by experiments/nnunet_convergence.py (not part of the package)."""

import random

import numpy as np
import torch

from nnunet_lossplug import trainers
from nnunet_lossplug.nnunet import adam


class _Seeded:
    seed = 0
    threads = {threads}  # nnUNetv2_train sets one torch thread per core; on a shared machine that oversubscribes
    schedule_epochs = {paper_epochs}  # the gradual alpha at the last epoch is the paper's at this epoch

    def __init__(self, plans, configuration, fold, dataset_json, device=torch.device("cuda")):
        # nnU-Net records its trainers' __init__ arguments by name, so the signature is spelled out
        random.seed(self.seed)
        np.random.seed(self.seed)
        torch.manual_seed(self.seed)
        torch.set_num_threads(self.threads)
        super().__init__(plans, configuration, fold, dataset_json, device)

    def on_train_epoch_start(self):
        super().on_train_epoch_start()
        stretched = int(self.current_epoch * self.schedule_epochs / max(1, self.num_epochs))
        for module in self.loss.modules():
            if hasattr(module, "set_epoch"):
                module.set_epoch(stretched)
'''

VARIANT_CLASS = '''

class {name}(_Seeded, trainers.{base}):
    seed = {seed}
    epochs = {epochs}
    iterations_per_epoch = {iterations}
    val_iterations_per_epoch = {val_iterations}
    optimizer_spec = adam(lr={lr!r})
'''


@dataclass(frozen=True)
class Budget:
    """Per-run training budget, data size and the CPU-sized plan (features per stage divided, batch size)."""

    epochs: int
    iterations: int
    val_iterations: int
    lr: float
    spec: SyntheticSpec
    feature_divisor: int = 4
    batch_size: int = 4


FULL = Budget(epochs=10, iterations=12, val_iterations=2, lr=1e-3,
              spec=SyntheticSpec(num_training=20, num_test=0, shape=(10, 64, 64), seed=5))
QUICK = Budget(epochs=2, iterations=2, val_iterations=1, lr=1e-3,
               spec=SyntheticSpec(num_training=5, num_test=0, shape=(6, 48, 48), seed=5), batch_size=2)


def variant_name(base: str, seed: int) -> str:
    return f"{base}_Fig5_s{seed}"


def write_variants(folder: Path, seeds: range, budget: Budget, threads: int = 1) -> Path:
    """One seeded short variant per trainer and seed, in one trainer file nnU-Net's discovery finds."""
    folder.mkdir(parents=True, exist_ok=True)
    text = VARIANT_HEADER.format(paper_epochs=PAPER_EPOCHS, threads=threads)
    for base in TRAINERS:
        for seed in seeds:
            text += VARIANT_CLASS.format(name=variant_name(base, seed), base=base, seed=seed,
                                         epochs=budget.epochs, iterations=budget.iterations,
                                         val_iterations=budget.val_iterations, lr=budget.lr)
    path = folder / "fig5_variants.py"
    path.write_text(text)
    return path


def nnunet_environment(workdir: Path, trainer_folder: Path) -> dict[str, str]:
    env = dict(os.environ)
    env.update(nnUNet_raw=str(workdir / "nnUNet_raw"), nnUNet_preprocessed=str(workdir / "nnUNet_preprocessed"),
               nnUNet_results=str(workdir / "nnUNet_results"), nnUNet_def_n_proc="2", nnUNet_compile="f",
               PYTHONUNBUFFERED="1")
    env.pop("nnUNet_n_proc_DA", None)  # set for training only (0 breaks planning)
    env[discovery.ENV_VAR] = discovery.ext_trainer_value(
        os.pathsep.join(p for p in (env.get(discovery.ENV_VAR, ""), str(trainer_folder)) if p))
    return env


def run_cli(command: list[str], env: dict[str, str], log: Path) -> None:
    """Run one console script of this environment, output to ``log``; one clear line if it fails."""
    executable = Path(sys.executable).parent / command[0]
    with log.open("w") as handle:
        result = subprocess.run([str(executable) if executable.exists() else command[0], *command[1:]],
                                env=env, stdout=handle, stderr=subprocess.STDOUT)
    if result.returncode != 0:
        tail = log.read_text()[-3000:]
        raise RuntimeError(f"{' '.join(command)} exited {result.returncode}; log {log}:\n{tail}")


def run_folder(workdir: Path, variant: str) -> Path:
    return (workdir / "nnUNet_results" / f"Dataset{DATASET_ID:03d}_{DATASET_NAME}" / f"{variant}__{PLANS}__2d"
            / "fold_0")


def write_cpu_plans(preprocessed: Path, budget: Budget) -> dict:
    """``nnUNetPlansCPU.json``: nnU-Net's 2d plan with fewer features per stage and a smaller batch.

    Same preprocessed data (``data_identifier`` unchanged), same number of stages, kernels and strides, so the
    network keeps nnU-Net's layout and deep supervision; only its width and the batch shrink to CPU size.
    """
    plans = json.loads((preprocessed / "nnUNetPlans.json").read_text())
    plans["plans_name"] = PLANS
    config = plans["configurations"]["2d"]
    arch = config["architecture"]["arch_kwargs"]
    arch["features_per_stage"] = [max(4, f // budget.feature_divisor) for f in arch["features_per_stage"]]
    config["batch_size"] = budget.batch_size
    (preprocessed / f"{PLANS}.json").write_text(json.dumps(plans, indent=2))
    return config


def read_run(folder: Path) -> dict:
    """Final validation Dice per class (nnU-Net's ``summary.json``) and the logged per-epoch pseudo-Dice."""
    summary = json.loads((folder / "validation" / "summary.json").read_text())
    per_class = [float(summary["mean"][str(label)]["Dice"]) for label in (1, 2, 3)]
    pseudo = []
    log = folder / "pseudo_dice.json"
    if log.exists():
        pseudo = json.loads(log.read_text())
    return {"per_class": per_class, "dice": float(np.mean(per_class)), "pseudo_dice": pseudo}


def save_pseudo_dice(folder: Path) -> None:
    """Keep nnU-Net's per-epoch pseudo-Dice (from the final checkpoint) and drop the checkpoint's weights."""
    import torch

    checkpoint = folder / "checkpoint_final.pth"
    state = torch.load(checkpoint, map_location="cpu", weights_only=False)
    values = state["logging"]["dice_per_class_or_region"]
    (folder / "pseudo_dice.json").write_text(json.dumps([[float(v) for v in epoch] for epoch in values]))
    checkpoint.unlink()  # weights are not needed for the analysis; keeps the work folder small
    (folder / "checkpoint_best.pth").unlink(missing_ok=True)


def prepare(workdir: Path, budget: Budget, env: dict[str, str]) -> None:
    raw = workdir / "nnUNet_raw"
    marker = workdir / "preprocessed.ok"
    if marker.exists():
        return
    write_synthetic_dataset(raw, DATASET_ID, DATASET_NAME, budget.spec)
    (workdir / "logs").mkdir(exist_ok=True)
    run_cli(["nnUNetv2_plan_and_preprocess", "-d", str(DATASET_ID), "-c", "2d", "-np", "2", "-npfp", "2",
             "--verify_dataset_integrity"], env, workdir / "logs" / "plan_and_preprocess.log")
    marker.write_text("ok\n")


def prepare_cpu_plans(workdir: Path, budget: Budget, env: dict[str, str]) -> dict:
    config = write_cpu_plans(workdir / "nnUNet_preprocessed" / f"Dataset{DATASET_ID:03d}_{DATASET_NAME}", budget)
    run_cli(["nnunet-lossplug", "precompute", "-d", str(DATASET_ID), "-c", "2d", "-p", PLANS, "--maps",
             "rrw,boundary"], env, workdir / "logs" / "precompute.log")
    return config


def train_all(workdir: Path, seeds: range, env: dict[str, str], elapsed) -> list[dict]:
    records = []
    train_env = dict(env, nnUNet_n_proc_DA="0")
    for seed in seeds:
        for base in TRAINERS:
            variant = variant_name(base, seed)
            folder = run_folder(workdir, variant)
            started = time.perf_counter()
            if not (folder / "validation" / "summary.json").exists():
                run_cli(["nnUNetv2_train", str(DATASET_ID), "2d", "0", "-tr", variant, "-p", PLANS, "-device", "cpu"],
                        train_env, workdir / "logs" / f"{variant}.log")
                save_pseudo_dice(folder)
                (folder / "wall_seconds.txt").write_text(f"{time.perf_counter() - started:.1f}\n")
            timing = folder / "wall_seconds.txt"
            record = {"trainer": base, "seed": seed, **read_run(folder),
                      "seconds": float(timing.read_text()) if timing.exists() else float("nan")}
            records.append(record)
            per_class = ", ".join(f"{n} {v:.3f}" for n, v in zip(CLASS_NAMES, record["per_class"]))
            print(f"seed {seed:2d} {LABELS[base]:20s} Dice {record['dice']:.3f} ({per_class}) "
                  f"{record['seconds']:.0f} s  [{elapsed():.0f} s]", flush=True)
    (workdir / "records.json").write_text(json.dumps(records, indent=1))
    return records


def lost_class(record: dict) -> bool:
    return min(record["per_class"]) < LOST_CLASS_DICE


def guard_fired(record: dict) -> bool:
    """Whether the collapse guard would have warned on this run's logged per-epoch pseudo-Dice."""
    return bool(collapse_events(record["pseudo_dice"], GUARD_PATIENCE, GUARD_WARMUP))


def summary_rows(records: list[dict]) -> list[list[object]]:
    rows = []
    for base in TRAINERS:
        runs = [r for r in records if r["trainer"] == base]
        dice = np.array([r["dice"] for r in runs])
        per_class = np.array([r["per_class"] for r in runs])
        n = len(runs)
        rows.append([LABELS[base], n, float(dice.mean()), float(dice.std(ddof=1)) if n > 1 else float("nan"),
                     float(np.median(dice)), float(dice.min()), float(dice.max()),
                     f"{int(np.sum(dice >= 0.9))}/{n}", f"{int(np.sum(dice < 0.5))}/{n}",
                     f"{sum(lost_class(r) for r in runs)}/{n}", f"{sum(guard_fired(r) for r in runs)}/{n}",
                     *[float(v) for v in per_class.mean(axis=0)]])
    return rows


def paired_tests(records: list[dict]) -> list[tuple[str, object]]:
    def dice_of(base: str) -> np.ndarray:
        return np.array([r["dice"] for r in sorted(records, key=lambda r: r["seed"]) if r["trainer"] == base])

    rrw = dice_of("nnUNetTrainerRRW")
    return [(f"{LABELS['nnUNetTrainerRRW']} - {LABELS[other]}", paired_permutation_test(rrw, dice_of(other)))
            for other in ("nnUNetTrainerRWBoundary", "nnUNetTrainerRRWCEGradual")]


def draw_figure(records: list[dict], path: Path, title_suffix: str, test_lines: list[str]) -> None:
    fig, axes = plt.subplots(1, 3, figsize=(16, 4.8))
    ax = axes[0]
    for base in TRAINERS:
        dice = np.array([r["dice"] for r in records if r["trainer"] == base])
        x, y = empirical_cdf(dice)
        ax.plot(x, y, color=COLOURS[base], lw=2, label=f"{LABELS[base]} (n={len(dice)})")
    ax.set_xlabel("final validation Dice (nnU-Net fold 0, mean of RV, MYO, LV)")
    ax.set_ylabel("fraction of models with Dice <= x (eq. 8)")
    ax.set_xlim(0, 1)
    ax.set_ylim(0, 1.02)
    ax.grid(alpha=0.3)
    ax.legend(loc="upper left", fontsize=8)
    ax.text(0.02, 0.70, "\n".join(test_lines), transform=ax.transAxes, fontsize=7, va="top")
    ax.set_title("Empirical CDF of the final Dice (Valverde & Tohka 2022 Fig. 5)", fontsize=10)

    ax = axes[1]
    for base in TRAINERS:
        curves = [np.mean(np.array(r["pseudo_dice"]), axis=1) for r in records
                  if r["trainer"] == base and r["pseudo_dice"]]
        for curve in curves:
            ax.plot(np.arange(1, len(curve) + 1), curve, color=COLOURS[base], alpha=0.3, lw=0.8)
        if curves and all(len(c) == len(curves[0]) for c in curves):
            ax.plot(np.arange(1, len(curves[0]) + 1), np.median(np.stack(curves), axis=0), color=COLOURS[base],
                    lw=2.5, label=f"{LABELS[base]}, median")
    ax.set_xlabel("epoch")
    ax.set_ylabel("nnU-Net pseudo-Dice (mean of RV, MYO, LV)")
    ax.set_ylim(0, 1)
    ax.grid(alpha=0.3)
    ax.legend(loc="lower right", fontsize=8)
    ax.set_title("Pseudo-Dice nnU-Net logs per epoch (thin: one seed)", fontsize=10)

    groups = [(LABELS[base], COLOURS[base], np.array([r["per_class"] for r in records if r["trainer"] == base]))
              for base in TRAINERS]
    per_class_dots(axes[2], groups, CLASS_NAMES, np.linspace(-0.25, 0.25, len(TRAINERS)), jitter=0.05, bar=0.09,
                   ylabel="final validation Dice (one dot per seed)", fontsize=8)
    fig.suptitle("RW loss alone inside nnU-Net (2d, synthetic ACDC-like data): convergence over seeds"
                 + title_suffix, fontsize=11)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def main(argv: list[str] | None = None) -> int:
    parser = experiment_parser(__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, default=None, help="seeds per trainer (default 10; quick 2)")
    parser.add_argument("--epochs", type=int, default=None, help=f"epochs per run (default {FULL.epochs})")
    parser.add_argument("--iterations", type=int, default=None,
                        help=f"iterations per epoch (default {FULL.iterations})")
    parser.add_argument("--workdir", type=Path, default=None,
                        help="folder for nnU-Net's raw/preprocessed/results folders; finished runs there are "
                             "reused (default: a temporary folder, removed at the end)")
    args = parser.parse_args(argv)
    run = start_run(NAME, args)
    budget = QUICK if args.quick else FULL
    budget = dataclasses.replace(budget, epochs=args.epochs or budget.epochs,
                                 iterations=args.iterations or budget.iterations)
    seeds = range(args.seeds or (2 if args.quick else 10))
    temporary = args.workdir is None
    workdir = Path(tempfile.mkdtemp(prefix="lossplug_fig5_")) if temporary else args.workdir.resolve()
    workdir.mkdir(parents=True, exist_ok=True)
    (workdir / "logs").mkdir(exist_ok=True)
    print(f"{NAME}: work folder {workdir}; {len(seeds)} seeds x {len(TRAINERS)} trainers, "
          f"{budget.epochs} epochs x {budget.iterations} iterations each", flush=True)
    try:
        trainer_folder = workdir / "trainers"
        write_variants(trainer_folder, seeds, budget, args.threads)
        env = nnunet_environment(workdir, trainer_folder)
        prepare(workdir, budget, env)
        config = prepare_cpu_plans(workdir, budget, env)
        print(f"planned and preprocessed [{run.elapsed():.0f} s]", flush=True)
        records = train_all(workdir, seeds, env, run.elapsed)
    finally:
        if temporary:
            shutil.rmtree(workdir, ignore_errors=True)

    tests = paired_tests(records)
    test_lines = [f"paired permutation test {name}: mean difference {t.mean_difference:+.3f}, p = {t.p_value:.3g}"
                  for name, t in tests]
    draw_figure(records, run.png_path, " [QUICK]" if args.quick else "", test_lines)
    headers = ["trainer", "runs", "mean Dice", "sd", "median", "min", "max", "Dice >= 0.9", "Dice < 0.5",
               f"a class lost (Dice < {LOST_CLASS_DICE})",
               f"guard fired (warm-up {GUARD_WARMUP}, patience {GUARD_PATIENCE})",
               *[f"{n} (mean)" for n in CLASS_NAMES]]
    table = markdown_table(headers, summary_rows(records))
    run_rows = [[r["seed"], LABELS[r["trainer"]], r["dice"], *r["per_class"], "yes" if guard_fired(r) else "no",
                 f"{r['seconds']:.0f}"]
                for r in sorted(records, key=lambda r: (TRAINERS.index(r["trainer"]), r["seed"]))]
    run_table = markdown_table(["seed", "trainer", "Dice (mean)", *CLASS_NAMES, "guard fired", "wall s"], run_rows)
    lost = [r for r in records if lost_class(r)]
    guard_line = (f"The collapse guard fired on {sum(guard_fired(r) for r in lost)} of the {len(lost)} runs that lost "
                  f"a class and on {sum(guard_fired(r) for r in records if not lost_class(r))} of the "
                  f"{len(records) - len(lost)} runs that did not.")
    print(table)
    print("\n".join(test_lines))
    print(guard_line)
    spec = budget.spec
    features = config["architecture"]["arch_kwargs"]["features_per_stage"]
    command = " ".join(["python experiments/nnunet_convergence.py", *(sys.argv[1:] if argv is None else argv)])
    body = (
        f"Command: `{command}`.\n\n"
        f"{len(seeds)} seeds per trainer, through `nnUNetv2_plan_and_preprocess` (2d) and "
        f"`nnUNetv2_train DATASET 2d 0 -tr <variant> -device cpu` with `nnUNet_n_proc_DA=0`. Data: "
        f"{spec.num_training} synthetic ACDC-like volumes of {spec.shape} voxels, spacing {spec.spacing} mm "
        f"(`nnunet_lossplug.demo.synthetic`, seed {spec.seed}); nnU-Net's fold 0 "
        f"({spec.num_training - spec.num_training // 5} training, {spec.num_training // 5} validation cases). "
        f"CPU-sized 2d plan `{PLANS}`: nnU-Net's 2d plan (patch {config['patch_size']}, "
        f"{len(features)} stages) with features per stage {features} (nnU-Net's divided by "
        f"{budget.feature_divisor}) and batch size {config['batch_size']}. "
        f"Per run: {budget.epochs} epochs x {budget.iterations} iterations (validation "
        f"{budget.val_iterations} iterations per epoch), Adam with initial lr {budget.lr:g} (the paper's 1e-4 "
        f"does not move in so few iterations) and nnU-Net's poly schedule, {args.threads} torch thread(s); "
        f"everything else (network, deep supervision, augmentation, gradient clipping) is the trainers' own. "
        f"The gradual schedule is stretched "
        f"to reach the paper's epoch-{PAPER_EPOCHS} alpha at the last epoch. Dice: nnU-Net's final validation "
        f"(`fold_0/validation/summary.json`), per class, mean of RV, MYO, LV. 'guard fired': the collapse guard "
        f"(`nnunet_lossplug.nnunet.trainer.collapse_guard`, warm-up {GUARD_WARMUP} and patience {GUARD_PATIENCE} "
        f"epochs for "
        f"these short runs) applied to the per-epoch pseudo-Dice nnU-Net logged.\n\n{table}\n\n{guard_line}\n\n"
        + "\n".join(f"- {line}" for line in test_lines)
        + "\n\n(`nnunet_lossplug.evaluation.paired_permutation_test`, paired by seed.)\n\n"
        f"Wall time of the {len(records)} trainings (each `nnUNetv2_train` call, start-up and final validation "
        f"included), summed: {np.nansum([r['seconds'] for r in records]) / 60:.1f} min; finished runs found in the "
        f"work folder are reused, so the wall time at the end of this page can be that of the analysis alone.\n\n"
        f"<details><summary>Every run</summary>\n\n{run_table}\n\n</details>"
    )
    run.write_markdown("Valverde & Tohka 2022 Fig. 5 through nnU-Net: RW loss alone over seeds", body)
    print(f"\nwrote {run.png_path} and {run.md_path} in {run.elapsed():.1f} s")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
