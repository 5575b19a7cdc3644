"""The end-to-end demo: synthetic data -> nnU-Net planning -> RRW training on CPU -> prediction -> Dice.

Every step is nnU-Net's own command-line entry point, run as a subprocess with its output streamed, exactly
as a user would type it; the only plugin-specific steps are ``nnunet-lossplug precompute`` (optional: the
trainer would run it itself) and ``nnunet-lossplug evaluate``.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

from nnunet_lossplug import discovery
from nnunet_lossplug.demo.short_schedule import ShortSchedule, write_short_schedule_trainer
from nnunet_lossplug.demo.synthetic import SyntheticSpec, write_synthetic_dataset

DEFAULT_DEMO_SEED = 3

DEMO_DATASET_ID = 990
DEMO_DATASET = f"Dataset{DEMO_DATASET_ID:03d}_LossPlugDemo"
DEMO_TRAINER = "nnUNetTrainerRRW_Demo"
DEFAULT_TRAINER = "nnUNetTrainer_Demo"
WRITER = "nnunet-lossplug demo"

#: the demo's budget (everything else is nnUNetTrainerRRW's): every class reached Dice >= 0.85 on every one of 10
#: seeds (README "Quality benchmark", benchmarks/bench_quality.py), with about 2 minutes of training on 2 idle
#: CPU cores
DEMO_SCHEDULE = ShortSchedule(epochs=12, iterations_per_epoch=40, adam_lr=1e-3)
DEMO_TRAINER_NOTE = ("Loss, RRW maps, deep supervision and everything else are nnUNetTrainerRRW's; only the schedule "
                     "is shorter, and the initial\nlearning rate of Adam is the demo's instead of the paper's 1e-4, "
                     "so that minutes of training show results.")
DEFAULT_TRAINER_NOTE = ("Loss (Dice + CE), optimiser (SGD, lr 1e-2) and everything else are nnU-Net's; only the "
                        "number of epochs and\niterations is the demo's, so both trainers get the same data, budget "
                        "and seed.")


def compare_caveat(num_cases: int) -> str:
    """What a --compare table of one seed can and cannot say."""
    return (f"{num_cases} held-out cases and one training run per trainer: one run proves nothing. This shows what "
            f"the loss changes on this data and seed, not that one trainer is better; run --compare --seeds 6 "
            f"(or more) for a paired permutation test over seeds.")


@dataclass(frozen=True)
class DemoSettings:
    workdir: Path
    epochs: int = DEMO_SCHEDULE.epochs
    iterations_per_epoch: int = DEMO_SCHEDULE.iterations_per_epoch
    adam_lr: float | None = DEMO_SCHEDULE.adam_lr
    spec: SyntheticSpec = SyntheticSpec()
    compare: bool = False
    seed: int = DEFAULT_DEMO_SEED
    seeds: int = 1  # --compare: trainings per trainer, on seeds seed, seed + 1, ...

    def seed_list(self) -> list[int]:
        return [self.seed + i for i in range(self.seeds)]


def demo_environment(workdir: Path, trainer_folder: Path) -> dict[str, str]:
    env = dict(os.environ)
    env.update(
        nnUNet_raw=str(workdir / "nnUNet_raw"),
        nnUNet_preprocessed=str(workdir / "nnUNet_preprocessed"),
        nnUNet_results=str(workdir / "nnUNet_results"),
        nnUNet_def_n_proc=env.get("nnUNet_def_n_proc", "2"),
        nnUNet_n_proc_DA=env.get("nnUNet_n_proc_DA", "2"),
        nnUNet_compile="f",  # the predictor would otherwise compile on CPU
        PYTHONUNBUFFERED="1",
    )
    env[discovery.ENV_VAR] = discovery.ext_trainer_value(
        os.pathsep.join(p for p in (env.get(discovery.ENV_VAR, ""), str(trainer_folder)) if p))
    return env


def run_step(step: str, command: list[str], env: dict[str, str]) -> float:
    print(f"\n=== {step}\n$ {' '.join(command)}", flush=True)
    start = time.perf_counter()
    executable = Path(sys.executable).parent / command[0]
    subprocess.run([str(executable) if executable.exists() else command[0], *command[1:]], env=env, check=True)
    seconds = time.perf_counter() - start
    print(f"--- {step}: {seconds:.0f} s", flush=True)
    return seconds


def training_environment(env: dict[str, str], seed: int) -> dict[str, str]:
    """The training command's environment: the seed, and augmentation in the training process
    (``nnUNet_n_proc_DA=0``), without which nnU-Net's augmenter hands out batches in arrival order."""
    from nnunet_lossplug.nnunet.trainer.seeding import SEED_ENV_VAR  # imports torch: only when training

    return {**env, SEED_ENV_VAR: str(seed), "nnUNet_n_proc_DA": "0"}


def _train_predict_evaluate(trainer: str, description: str, settings: DemoSettings, raw: Path,
                            env: dict[str, str], seed: int, suffix: str = "") -> Path:
    """Train ``trainer`` on fold 0 of the demo's dataset with ``seed``, predict the held-out cases and evaluate
    them; returns the result JSON."""
    return train_predict_evaluate(
        TrainingRun(trainer, str(DEMO_DATASET_ID), "2d", seed, settings.epochs, settings.iterations_per_epoch),
        description, raw, settings.workdir.resolve(), env, suffix)


@dataclass(frozen=True)
class TrainingRun:
    """One ``nnUNetv2_train DATASET CONFIGURATION 0 -tr TRAINER`` run with a seed (schedule for the log line)."""

    trainer: str
    dataset: str
    configuration: str
    seed: int
    epochs: int
    iterations_per_epoch: int


def train_predict_evaluate(run: TrainingRun, description: str, raw: Path, workdir: Path, env: dict[str, str],
                           suffix: str = "") -> Path:
    """Train fold 0 with the run's seed on the CPU, predict ``raw``'s imagesTs, evaluate them against its
    labelsTs; returns the result JSON ``workdir/evaluation{suffix}.json``."""
    run_step(f"training {run.trainer} ({description}, {run.epochs} epochs x {run.iterations_per_epoch} "
             f"iterations, seed {run.seed}) on CPU",
             ["nnUNetv2_train", run.dataset, run.configuration, "0", "-tr", run.trainer, "-device", "cpu"],
             training_environment(env, run.seed))
    predictions = workdir / f"predictions{suffix}"
    run_step(f"prediction of the held-out cases ({run.trainer})",
             ["nnUNetv2_predict", "-i", str(raw / "imagesTs"), "-o", str(predictions), "-d", run.dataset,
              "-c", run.configuration, "-f", "0", "-tr", run.trainer, "-device", "cpu", "-npp", "1", "-nps", "1",
              "--disable_tta"], env)
    result = workdir / f"evaluation{suffix}.json"
    run_step(f"evaluation (Dice, HD, HD95 in mm) of {run.trainer}",
             ["nnunet-lossplug", "evaluate", str(raw / "labelsTs"), str(predictions), "-o", str(result),
              "--dataset-json", str(raw / "dataset.json"), "--no-progress"], env)
    return result


def side_by_side(results: list[tuple[str, Path]], dataset_json: Path) -> str:
    """Per-class Dice, HD and HD95 (mean ± sd over the held-out cases) of several evaluation results."""
    from nnunet_lossplug.evaluation.result_io import load_label_names, load_result
    from nnunet_lossplug.evaluation.tables import format_class_table

    rows = [(name, load_result(path)["summary"]["classes"]) for name, path in results]
    names = load_label_names(dataset_json)
    labels = sorted({label for _, classes in rows for label in classes}, key=int)
    return format_class_table(rows, labels, names, metrics=("dice", "hd", "hd95"))


def prepare_demo_dataset(workdir: Path, spec: SyntheticSpec, env: dict[str, str]) -> Path:
    """Write the synthetic dataset, plan and preprocess it (2d) and precompute its RRW maps; returns the raw
    dataset folder."""
    raw = write_synthetic_dataset(workdir / "nnUNet_raw", DEMO_DATASET_ID, "LossPlugDemo", spec)
    print(f"wrote {spec.num_training} training and {spec.num_test} test cases, shape {spec.shape}, spacing "
          f"{spec.spacing} mm -> {raw}", flush=True)
    run_step("nnU-Net planning and preprocessing (2d)",
             ["nnUNetv2_plan_and_preprocess", "-d", str(DEMO_DATASET_ID), "-c", "2d", "-np", "2", "-npfp", "2",
              "--verify_dataset_integrity"], env)
    run_step("RRW maps and class statistics (the plugin's preprocessing hook)",
             ["nnunet-lossplug", "precompute", "-d", str(DEMO_DATASET_ID), "-c", "2d", "--maps", "rrw"], env)
    return raw


def run_demo(settings: DemoSettings) -> int:
    """Run the whole pipeline in ``settings.workdir``; returns an exit code."""
    workdir = settings.workdir.resolve()
    if settings.seeds < 1:
        raise ValueError(f"--seeds {settings.seeds}: give at least 1 seed.")
    seeds = settings.seed_list() if settings.compare else [settings.seed]
    print(f"nnunet-lossplug demo: writing everything under {workdir}; seed{'s' if len(seeds) > 1 else ''} "
          f"{', '.join(map(str, seeds))} (--seed N to change; the same seed gives the same numbers)", flush=True)
    trainer_folder = workdir / "trainers"
    trainer_folder.mkdir(parents=True, exist_ok=True)
    schedule = ShortSchedule(settings.epochs, settings.iterations_per_epoch, settings.adam_lr)
    for old in trainer_folder.glob("*.py"):
        old.unlink()
    write_short_schedule_trainer(trainer_folder, "nnUNetTrainerRRW", DEMO_TRAINER, schedule, WRITER, DEMO_TRAINER_NOTE)
    write_short_schedule_trainer(trainer_folder, "nnUNetTrainer", DEFAULT_TRAINER, schedule, WRITER,
                                 DEFAULT_TRAINER_NOTE)
    # a second run starts from scratch rather than mixing with the first one's results
    shutil.rmtree(workdir / "nnUNet_results" / DEMO_DATASET, ignore_errors=True)
    for old in (*workdir.glob("predictions*"), *workdir.glob("nnUNet_results/seed_*")):
        shutil.rmtree(old, ignore_errors=True)
    env = demo_environment(settings.workdir, trainer_folder)
    total = time.perf_counter()
    raw = prepare_demo_dataset(workdir, settings.spec, env)
    if len(seeds) > 1:
        return _compare_over_seeds(settings, seeds, raw, env, total)
    result = _train_predict_evaluate(DEMO_TRAINER, "nnUNetTrainerRRW", settings, raw, env, settings.seed)
    if settings.compare:
        default = _train_predict_evaluate(DEFAULT_TRAINER, "nnU-Net's default nnUNetTrainer: Dice + CE, SGD",
                                          settings, raw, env, settings.seed, suffix="_default")
        print("\n=== side by side: per class, mean ± sd over the held-out cases (HD, HD95 in mm)\n", flush=True)
        print(side_by_side([("RRW (nnUNetTrainerRRW)", result), ("default (nnUNetTrainer)", default)],
                           raw / "dataset.json"))
        print(f"\n{compare_caveat(settings.spec.num_test)}", flush=True)
    print(f"\nDemo finished in {time.perf_counter() - total:.0f} s. Results: {result}"
          + (f" and {workdir / 'evaluation_default.json'}" if settings.compare else "")
          + f"; models: {workdir / 'nnUNet_results' / DEMO_DATASET}", flush=True)
    return 0


def _compare_over_seeds(settings: DemoSettings, seeds: list[int], raw: Path, env: dict[str, str],
                        started: float) -> int:
    """Both trainers on every seed (models under nnUNet_results/seed_N), then the paired report over seeds."""
    from nnunet_lossplug.demo.seed_comparison import format_seed_comparison

    workdir = settings.workdir.resolve()
    rrw: dict[int, Path] = {}
    default: dict[int, Path] = {}
    for seed in seeds:
        seed_env = {**env, "nnUNet_results": str(workdir / "nnUNet_results" / f"seed_{seed}")}
        rrw[seed] = _train_predict_evaluate(DEMO_TRAINER, "nnUNetTrainerRRW", settings, raw, seed_env, seed,
                                            suffix=f"_seed{seed}")
        default[seed] = _train_predict_evaluate(DEFAULT_TRAINER, "nnU-Net's default nnUNetTrainer: Dice + CE, SGD",
                                                settings, raw, seed_env, seed, suffix=f"_default_seed{seed}")
    print("\n" + format_seed_comparison(rrw, default, raw / "dataset.json"), flush=True)
    print(f"\nDemo finished in {time.perf_counter() - started:.0f} s. Results: "
          f"{', '.join(str(path) for path in (*rrw.values(), *default.values()))}; models: "
          f"{workdir / 'nnUNet_results'}/seed_N", flush=True)
    return 0
