"""The end-to-end demo: synthetic data -> nnU-Net planning -> RRW training on CPU -> prediction -> Dice.

Every step is nnU-Net's own command-line entry point, run as a subprocess with its output streamed, exactly
as a user would type it; the only plugin-specific steps are ``nnunet-lossplug precompute`` (optional: the
trainer would run it itself) and ``nnunet-lossplug evaluate``. ``--compare`` runs the benchmark
(:func:`nnunet_lossplug.benchmark.execute.run_benchmark`) on the demo's data: nnUNetTrainerRRW against nnU-Net's
nnUNetTrainer on the demo's schedule, raw and after nnU-Net's post-processing, in ``WORKDIR/compare``.

The demo writes only into a folder it made (:class:`~nnunet_lossplug.benchmark.owned_folder.OwnedFolder`): a new or
empty one, or one holding its manifest. A rerun deletes what the earlier demo recorded there (its trainer file,
results, predictions, evaluation) and nothing else.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

from nnunet_lossplug.benchmark.environment import child_environment, training_environment
from nnunet_lossplug.benchmark.owned_folder import OwnedFolder
from nnunet_lossplug.benchmark.short_trainers import ShortSchedule, TrainerLocation, write_short_trainer
from nnunet_lossplug.demo.synthetic import SyntheticSpec, write_synthetic_dataset

DEFAULT_DEMO_SEED = 3

DEMO_DATASET_ID = 990
DEMO_DATASET = f"Dataset{DEMO_DATASET_ID:03d}_LossPlugDemo"
DEMO_TRAINER = "nnUNetTrainerRRW_Demo"
WRITER = "nnunet-lossplug demo"

#: the demo's budget (everything else is nnUNetTrainerRRW's): every class reached Dice >= 0.85 on every one of 10
#: seeds (README "Quality benchmark", benchmarks/bench_quality.py), with about 2 minutes of training on 2 idle
#: CPU cores
DEMO_SCHEDULE = ShortSchedule(epochs=12, iterations_per_epoch=40, adam_lr=1e-3)
DEMO_TRAINER_NOTE = ("Loss, RRW maps, deep supervision and everything else are nnUNetTrainerRRW's; only the schedule "
                     "is shorter, and the initial\nlearning rate of Adam is the demo's instead of the paper's 1e-4, "
                     "so that minutes of training show results.")

def compare_caveat(num_cases: int) -> str:
    """What a --compare table of one seed can and cannot say."""
    return (f"{num_cases} held-out cases and one training run per trainer: one run proves nothing. This shows what "
            f"the loss changes on this data and seed, not that one trainer is better; run --compare --seeds 3 "
            f"(or more) to see the spread over seeds.")


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
    """nnU-Net's folders under ``workdir``, and the child processes' settings of
    :func:`~nnunet_lossplug.benchmark.environment.child_environment` (``OMP_WAIT_POLICY=PASSIVE`` unless set)."""
    env = child_environment(os.environ, trainer_folder)
    env.update(nnUNet_raw=str(workdir / "nnUNet_raw"), nnUNet_preprocessed=str(workdir / "nnUNet_preprocessed"),
               nnUNet_results=str(workdir / "nnUNet_results"))
    env.setdefault("nnUNet_n_proc_DA", "2")
    return env


def run_step(step: str, command: list[str], env: dict[str, str]) -> float:
    print(f"\n=== {step}\n$ {' '.join(command)}", flush=True)
    start = time.perf_counter()
    executable = Path(sys.executable).parent / command[0]
    subprocess.run([str(executable) if executable.exists() else command[0], *command[1:]], env=env, check=True)
    seconds = time.perf_counter() - start
    print(f"--- {step}: {seconds:.0f} s", flush=True)
    return seconds


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



#: what the single-trainer demo writes (relative to its folder) and deletes before a rerun
DEMO_OUTPUTS = (f"trainers/{DEMO_TRAINER}.py", f"nnUNet_results/{DEMO_DATASET}", "predictions", "evaluation.json",
                "evaluation.csv", "evaluation_summary.csv")
#: what the demo rewrites in place on a rerun (the same data and plans) and keeps
DEMO_DATA = (f"nnUNet_raw/{DEMO_DATASET}", f"nnUNet_preprocessed/{DEMO_DATASET}", "compare")


def run_demo(settings: DemoSettings) -> int:
    """Run the whole pipeline in ``settings.workdir``; returns an exit code.

    Raises:
        FolderNotOursError: the folder holds files the demo did not make (nothing is touched).
    """
    workdir = settings.workdir.absolute()
    if settings.seeds < 1:
        raise ValueError(f"--seeds {settings.seeds}: give at least 1 seed.")
    folder = OwnedFolder(workdir, WRITER)
    folder.claim()
    with folder.exclusive():
        return _run_demo_locked(settings, folder)


def _run_demo_locked(settings: DemoSettings, folder: OwnedFolder) -> int:
    workdir = folder.path
    seeds = settings.seed_list() if settings.compare else [settings.seed]
    print(f"nnunet-lossplug demo: writing everything under {workdir}; seed{'s' if len(seeds) > 1 else ''} "
          f"{', '.join(map(str, seeds))} (--seed N to change; the same seed gives the same numbers)", flush=True)
    removed = folder.remove_recorded(keep=DEMO_DATA)  # a rerun starts afresh, deleting only the demo's own files
    if removed:
        print(f"removed the earlier demo's {', '.join(removed)}", flush=True)
    trainer_folder = workdir / "trainers"
    env = demo_environment(workdir, trainer_folder)
    total = time.perf_counter()
    folder.record(*DEMO_DATA[:2])
    raw = prepare_demo_dataset(workdir, settings.spec, env)
    schedule = ShortSchedule(settings.epochs, settings.iterations_per_epoch, settings.adam_lr)
    if settings.compare:
        return _compare(settings, schedule, folder, env, total)
    folder.record(*DEMO_OUTPUTS)
    write_short_trainer(trainer_folder, TrainerLocation("nnUNetTrainerRRW", "plugin", "nnunet_lossplug.trainers"),
                        DEMO_TRAINER, schedule, WRITER, DEMO_TRAINER_NOTE)
    result = train_predict_evaluate(
        TrainingRun(DEMO_TRAINER, str(DEMO_DATASET_ID), "2d", settings.seed, settings.epochs,
                    settings.iterations_per_epoch), "nnUNetTrainerRRW", raw, workdir, env)
    print(f"\nDemo finished in {time.perf_counter() - total:.0f} s. Results: {result}; models: "
          f"{workdir / 'nnUNet_results' / DEMO_DATASET}", flush=True)
    return 0


def _compare(settings: DemoSettings, schedule: ShortSchedule, folder: OwnedFolder, env: dict[str, str],
             started: float) -> int:
    """nnUNetTrainerRRW against nnU-Net's nnUNetTrainer on the demo's seeds: the benchmark, in WORKDIR/compare."""
    from nnunet_lossplug.benchmark.execute import run_benchmark
    from nnunet_lossplug.benchmark.plan import BenchmarkPlan

    seeds = settings.seed_list()
    plan = BenchmarkPlan(str(DEMO_DATASET_ID), "2d", (("nnUNetTrainerRRW", len(seeds)), ("nnUNetTrainer", len(seeds))),
                         schedule, device="cpu", first_seed=settings.seed)
    output = folder.path / "compare"
    run_benchmark(plan, output, env, reference="nnUNetTrainer", writer=WRITER,
                  say=lambda line: print(line, flush=True))
    print("\n" + (output / "report.md").read_text(), flush=True)
    if len(seeds) == 1:
        print(compare_caveat(settings.spec.num_test), flush=True)
    print(f"Demo finished in {time.perf_counter() - started:.0f} s. Report: {output / 'report.md'} (figure "
          f"report.png, every run in report.json); finished runs are reused by the same command.", flush=True)
    return 0
