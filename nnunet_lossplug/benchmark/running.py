"""Running a benchmark's runs through nnU-Net's own commands, reusing the finished ones.

One run (:func:`run_one`), in its folder ``DIR/runs/<trainer variant>/seed_<seed>``:

1. ``nnUNetv2_train D C 0 -tr VARIANT -device DEVICE`` with the seed and ``nnUNet_n_proc_DA=0``; nnU-Net predicts
   the fold's validation cases at the end (``fold_0/validation``);
2. ``nnUNetv2_determine_postprocessing`` on those validation predictions against nnU-Net's ``gt_segmentations``;
3. ``nnUNetv2_predict`` of ``imagesTs`` (skipped when the scored cases are the validation cases);
4. ``nnUNetv2_apply_postprocessing`` of the chosen post-processing to the scored predictions;
5. the evaluation of ``nnunet-lossplug evaluate`` (its Python API, in this process) of the raw and of the
   post-processed predictions.

Each command's output goes to a log file beside it. ``run.json`` is written last, with the run's settings (what
makes two runs the same: data, plans, schedule, seed, trainer source, versions): a later call with the same
settings reuses the run, a run whose settings differ (or that never finished) is run again from scratch. Ctrl-C
stops the current command; the finished runs stay.
"""

from __future__ import annotations

import json
import os
import shlex
import shutil
import subprocess
import sys
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

from nnunet_lossplug.benchmark.environment import training_environment
from nnunet_lossplug.benchmark.held_out import DatasetFolders, HeldOut, file_digest, folder_digest
from nnunet_lossplug.benchmark.plan import BenchmarkPlan, PlannedRun
from nnunet_lossplug.benchmark.postprocessing import apply_command, check_postprocessing_pickle, determine_command
from nnunet_lossplug.evaluation.evaluate_folders import evaluate_folders
from nnunet_lossplug.evaluation.result_io import write_result_files

RUN_RECORD = "run.json"


class StepFailedError(RuntimeError):
    """One of nnU-Net's commands (or the evaluation) exited with an error."""


@dataclass
class CommandLog:
    """The exact commands of a run, with the environment variables that differ from the user's."""

    entries: list[dict] = field(default_factory=list)

    def add(self, argv: list[str], env: Mapping[str, str], base: Mapping[str, str]) -> None:
        changed = {key: value for key, value in env.items() if base.get(key) != value and not key.startswith("_")}
        self.entries.append({"env": changed, "argv": argv})

    @staticmethod
    def shell_line(entry: Mapping) -> str:
        prefix = " ".join(f"{key}={shlex.quote(value)}" for key, value in sorted(entry["env"].items()))
        return (prefix + " " if prefix else "") + shlex.join(entry["argv"])


def run_command(argv: list[str], env: Mapping[str, str], log_file: Path) -> float:
    """Run one console script of this environment with its output in ``log_file``; returns the seconds taken.

    Raises:
        StepFailedError: naming the command, its exit status, the log and the log's last line.
    """
    executable = Path(sys.executable).parent / argv[0]
    started = time.perf_counter()
    with open(log_file, "w") as log:
        log.write("$ " + shlex.join(argv) + "\n")
        log.flush()
        completed = subprocess.run([str(executable) if executable.exists() else argv[0], *argv[1:]], env=dict(env),
                                   stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
    if completed.returncode != 0:
        lines = [line.strip() for line in log_file.read_text(errors="replace").splitlines() if line.strip()]
        last = lines[-1] if lines else "no output"
        raise StepFailedError(f"{argv[0]} exited with status {completed.returncode} ({last}); its output is in "
                              f"{log_file}.")
    return time.perf_counter() - started


def versions() -> dict[str, str]:
    from importlib.metadata import PackageNotFoundError, version

    found = {}
    for package in ("nnunet-lossplug", "nnunetv2", "torch"):
        try:
            found[package] = version(package)
        except PackageNotFoundError:
            found[package] = "?"
    return found


def run_settings(plan: BenchmarkPlan, run: PlannedRun, folders: DatasetFolders, held_out: HeldOut,
                 trainer_source: str, base_digest: str) -> dict:
    """What makes two runs the same (compared before a finished run is reused)."""
    schedule = plan.schedule
    return {
        "dataset": folders.name, "configuration": plan.configuration, "fold": plan.fold,
        "plans_sha256": file_digest(folders.plans), "dataset_json_sha256": file_digest(folders.dataset_json),
        "splits_sha256": file_digest(folders.preprocessed / "splits_final.json"),
        "scored_cases": held_out.kind, "scored_cases_listing": folder_digest(held_out.images or held_out.labels),
        "trainer": run.trainer, "variant": run.variant, "seed": run.seed,
        "epochs": schedule.epochs, "iterations_per_epoch": schedule.iterations_per_epoch,
        "val_iterations_per_epoch": schedule.val_iterations_per_epoch, "adam_lr": schedule.adam_lr,
        "device": plan.device, "test_time_mirroring": plan.device != "cpu",
        "trainer_file": trainer_source, "base_trainer_file_sha256": base_digest, "versions": versions(),
    }


def finished_record(folder: Path, settings: Mapping) -> dict | None:
    """The run's record if it finished with exactly ``settings``, else None."""
    record_file = folder / RUN_RECORD
    if record_file.is_symlink() or not record_file.is_file():
        return None
    try:
        record = json.loads(record_file.read_text())
    except (OSError, ValueError):
        return None
    return record if isinstance(record, dict) and record.get("settings") == dict(settings) else None


def differing_settings(folder: Path, settings: Mapping) -> list[str]:
    """The settings a finished but different run was made with (names only), for the progress line."""
    try:
        recorded = json.loads((folder / RUN_RECORD).read_text()).get("settings", {})
    except (OSError, ValueError, AttributeError):
        return []
    return sorted(key for key in settings if recorded.get(key) != settings[key])


def trained_fold(results: Path, folders: DatasetFolders, plan: BenchmarkPlan, run: PlannedRun) -> Path:
    return results / folders.name / f"{run.variant}__nnUNetPlans__{plan.configuration}" / f"fold_{plan.fold}"


def run_one(plan: BenchmarkPlan, run: PlannedRun, folder: Path, folders: DatasetFolders, held_out: HeldOut,
            env: Mapping[str, str], base_env: Mapping[str, str], settings: Mapping,
            say: Callable[[str], None]) -> dict:
    """Train, post-process, predict and evaluate one run in ``folder`` (made afresh); returns its record."""
    if folder.exists():
        shutil.rmtree(folder)  # the benchmark's own run folder, unfinished or made with other settings
    folder.mkdir(parents=True)
    commands, seconds = CommandLog(), {}
    run_env = {**env, "nnUNet_results": str(folder / "nnUNet_results")}

    def step(name: str, argv: list[str], step_env: Mapping[str, str]) -> None:
        say(f"    {name}: $ {shlex.join(argv)}")
        commands.add(argv, step_env, base_env)
        seconds[name] = round(run_command(argv, step_env, folder / f"{name}.log"), 1)

    device = ["-device", plan.device]
    step("train", ["nnUNetv2_train", folders.name, plan.configuration, str(plan.fold), "-tr", run.variant, *device],
         training_environment(run_env, run.seed))
    # nnU-Net writes the split at the first training of a dataset: record the split this run used
    settings = {**settings, "splits_sha256": file_digest(folders.preprocessed / "splits_final.json")}
    validation = trained_fold(folder / "nnUNet_results", folders, plan, run) / "validation"
    step("determine_postprocessing", determine_command(validation, folders.ground_truth, folders.plans,
                                                       folders.dataset_json), run_env)
    choice = validation / "postprocessing.pkl"
    steps = check_postprocessing_pickle(choice)
    if held_out.is_validation:
        predictions, labels = validation, folder / "validation_labels"
        labels.mkdir()
        file_ending = json.loads(folders.dataset_json.read_text()).get("file_ending", ".nii.gz")
        for prediction in sorted(validation.glob(f"*{file_ending}")):
            shutil.copy2(held_out.labels / prediction.name, labels / prediction.name)
    else:
        predictions, labels = folder / "predictions", held_out.labels
        step("predict", ["nnUNetv2_predict", "-i", str(held_out.images), "-o", str(predictions), "-d", folders.name,
                         "-c", plan.configuration, "-f", str(plan.fold), "-tr", run.variant, *device,
                         "-npp", "1", "-nps", "1", *(["--disable_tta"] if plan.device == "cpu" else [])], run_env)
    postprocessed = folder / "predictions_postprocessed"
    step("apply_postprocessing", apply_command(predictions, postprocessed, choice, folders.plans,
                                               folders.dataset_json), run_env)
    for name, predicted, result in (("evaluate", predictions, "evaluation.json"),
                                    ("evaluate_postprocessed", postprocessed, "evaluation_postprocessed.json")):
        argv = ["nnunet-lossplug", "evaluate", str(labels), str(predicted), "-o", str(folder / result),
                "--dataset-json", str(folders.dataset_json), "-np", "1", "--no-progress"]
        commands.add(argv, run_env, base_env)  # run in this process (the same code, without a second start-up)
        evaluation_started = time.perf_counter()
        write_result_files(evaluate_folders(labels, predicted, num_processes=1, dataset_json=folders.dataset_json,
                                            progress=False), folder / result)
        seconds[name] = round(time.perf_counter() - evaluation_started, 1)
    record = {
        "trainer": run.trainer, "variant": run.variant, "seed": run.seed, "settings": dict(settings),
        "seconds": seconds, "postprocessing": [[name, arguments] for name, arguments in steps],
        "commands": commands.entries,
        "raw": _cases(folder / "evaluation.json"), "postprocessed": _cases(folder / "evaluation_postprocessed.json"),
        "label_names": json.loads((folder / "evaluation.json").read_text()).get("label_names", {}),
    }
    temporary = folder / (RUN_RECORD + ".tmp")
    temporary.write_text(json.dumps(record, indent=1) + "\n")
    os.replace(temporary, folder / RUN_RECORD)  # written last: a run stopped before this is run again
    return record


def _cases(result_file: Path) -> dict:
    """``{case: {label: {"dice", "hd", "hd95"}}}`` of an evaluation result (null for undefined values)."""
    cases = json.loads(result_file.read_text())["cases"]
    return {case: {label: {metric: entry[metric] for metric in ("dice", "hd", "hd95")}
                   for label, entry in per_class.items()} for case, per_class in cases.items()}
