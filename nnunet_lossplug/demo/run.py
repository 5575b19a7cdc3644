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
from nnunet_lossplug.demo.synthetic import SyntheticSpec, write_synthetic_dataset

DEFAULT_DEMO_SEED = 3

DEMO_DATASET_ID = 990
DEMO_DATASET = f"Dataset{DEMO_DATASET_ID:03d}_LossPlugDemo"
DEMO_TRAINER = "nnUNetTrainerRRW_Demo"
DEFAULT_TRAINER = "nnUNetTrainer_Demo"

DEMO_TRAINER_FILE = '''"""The demo's trainer (written by nnunet-lossplug demo): nnUNetTrainerRRW, CPU-sized schedule.

Loss, RRW maps, deep supervision and everything else are nnUNetTrainerRRW's; only the schedule is shorter, and
the initial learning rate is 1e-3 instead of the paper's 1e-4 so that a few minutes of training show results.
"""

from nnunet_lossplug.catalogue import trainer_class
from nnunet_lossplug.nnunet import adam


class {name}(trainer_class("nnUNetTrainerRRW")):
    epochs = {epochs}
    iterations_per_epoch = {iterations}
    val_iterations_per_epoch = 4
    optimizer_spec = adam(lr=1e-3)
'''

DEFAULT_TRAINER_FILE = '''"""nnU-Net's nnUNetTrainer on the demo's schedule (written by nnunet-lossplug demo --compare).

Loss (Dice + CE), optimiser (SGD, lr 1e-2) and everything else are nnU-Net's; only the number of epochs and
iterations is the demo's, so both trainers get the same data, the same budget and the same seed.
"""

import torch
from nnunetv2.training.nnUNetTrainer.nnUNetTrainer import nnUNetTrainer

from nnunet_lossplug.nnunet.trainer.seeding import SeededTraining


class {name}(SeededTraining, nnUNetTrainer):  # SeededTraining: seeded by NNUNET_LOSSPLUG_SEED, like the RRW run
    def __init__(self, plans, configuration, fold, dataset_json, device=torch.device("cuda")):
        super().__init__(plans, configuration, fold, dataset_json, device)
        self.num_epochs = {epochs}
        self.num_iterations_per_epoch = {iterations}
        self.num_val_iterations_per_epoch = 4
'''



def compare_caveat(num_cases: int) -> str:
    """What a --compare table of one seed can and cannot say."""
    return (f"{num_cases} held-out cases and one training run per trainer: one run proves nothing. This shows what "
            f"the loss changes on this data and seed, not that one trainer is better; run --compare --seeds 6 "
            f"(or more) for a paired permutation test over seeds.")


@dataclass(frozen=True)
class DemoSettings:
    workdir: Path
    epochs: int = 6
    iterations_per_epoch: int = 20
    spec: SyntheticSpec = SyntheticSpec()
    compare: bool = False
    seed: int = DEFAULT_DEMO_SEED
    seeds: int = 1  # --compare: trainings per trainer, on seeds seed, seed + 1, ...

    def seed_list(self) -> list[int]:
        return [self.seed + i for i in range(self.seeds)]


def _environment(settings: DemoSettings, trainer_folder: Path) -> dict[str, str]:
    env = dict(os.environ)
    env.update(
        nnUNet_raw=str(settings.workdir / "nnUNet_raw"),
        nnUNet_preprocessed=str(settings.workdir / "nnUNet_preprocessed"),
        nnUNet_results=str(settings.workdir / "nnUNet_results"),
        nnUNet_def_n_proc=env.get("nnUNet_def_n_proc", "2"),
        nnUNet_n_proc_DA=env.get("nnUNet_n_proc_DA", "2"),
        nnUNet_compile="f",  # the predictor would otherwise compile on CPU
        PYTHONUNBUFFERED="1",
    )
    env[discovery.ENV_VAR] = discovery.ext_trainer_value(
        os.pathsep.join(p for p in (env.get(discovery.ENV_VAR, ""), str(trainer_folder)) if p))
    return env


def _run(step: str, command: list[str], env: dict[str, str]) -> float:
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
    """Train ``trainer`` on fold 0 with ``seed``, predict the held-out cases and evaluate them; returns the
    result JSON."""
    workdir = settings.workdir.resolve()
    _run(f"training {trainer} ({description}, {settings.epochs} epochs x {settings.iterations_per_epoch} "
         f"iterations, seed {seed}) on CPU",
         ["nnUNetv2_train", str(DEMO_DATASET_ID), "2d", "0", "-tr", trainer, "-device", "cpu"],
         training_environment(env, seed))
    predictions = workdir / f"predictions{suffix}"
    _run(f"prediction of the held-out cases ({trainer})",
         ["nnUNetv2_predict", "-i", str(raw / "imagesTs"), "-o", str(predictions), "-d", str(DEMO_DATASET_ID),
          "-c", "2d", "-f", "0", "-tr", trainer, "-device", "cpu", "-npp", "1", "-nps", "1", "--disable_tta"], env)
    result = workdir / f"evaluation{suffix}.json"
    _run(f"evaluation (Dice, HD, HD95 in mm) of {trainer}",
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
    (trainer_folder / "demo_trainer.py").write_text(DEMO_TRAINER_FILE.format(
        name=DEMO_TRAINER, epochs=settings.epochs, iterations=settings.iterations_per_epoch))
    (trainer_folder / "demo_default_trainer.py").write_text(DEFAULT_TRAINER_FILE.format(
        name=DEFAULT_TRAINER, epochs=settings.epochs, iterations=settings.iterations_per_epoch))
    # a second run starts from scratch rather than mixing with the first one's results
    shutil.rmtree(workdir / "nnUNet_results" / DEMO_DATASET, ignore_errors=True)
    for old in (*workdir.glob("predictions*"), *workdir.glob("nnUNet_results/seed_*")):
        shutil.rmtree(old, ignore_errors=True)
    env = _environment(settings, trainer_folder)
    raw = write_synthetic_dataset(workdir / "nnUNet_raw", DEMO_DATASET_ID, "LossPlugDemo", settings.spec)
    print(f"wrote {settings.spec.num_training} training and {settings.spec.num_test} test cases, shape "
          f"{settings.spec.shape}, spacing {settings.spec.spacing} mm -> {raw}", flush=True)

    total = time.perf_counter()
    _run("nnU-Net planning and preprocessing (2d)",
         ["nnUNetv2_plan_and_preprocess", "-d", str(DEMO_DATASET_ID), "-c", "2d", "-np", "2", "-npfp", "2",
          "--verify_dataset_integrity"], env)
    _run("RRW maps and class statistics (the plugin's preprocessing hook)",
         ["nnunet-lossplug", "precompute", "-d", str(DEMO_DATASET_ID), "-c", "2d", "--maps", "rrw"], env)
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
