"""A whole benchmark: the report folder, the short-schedule trainers, every run (reused when finished), the report.

:func:`run_benchmark` is what ``nnunet-lossplug benchmark``, ``nnunet-lossplug demo --compare`` and
``benchmarks/bench_quality.py`` call. The report folder ``-o DIR`` holds::

    report.md, report.png, report.json   the table, the figure, every run's settings and per-case metrics
    commands.sh                          the exact commands, with the environment each needs
    trainers/<TRAINER>_q<E>x<I>*.py      the short-schedule trainers (list the folder in nnUNet_extTrainer to
                                         train or predict with them yourself)
    runs/<variant>/seed_<s>/             one run: nnUNet_results, predictions, logs, run.json
    .nnunet-lossplug.json                the manifest: this folder was made by the benchmark
"""

from __future__ import annotations

import contextlib
import json
import os
import shlex
import signal
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path

from nnunet_lossplug.benchmark.environment import SEED_ENV_VAR, child_environment
from nnunet_lossplug.benchmark.figure import draw
from nnunet_lossplug.benchmark.held_out import dataset_folders, held_out_cases
from nnunet_lossplug.benchmark.owned_folder import OwnedFolder
from nnunet_lossplug.benchmark.plan import BenchmarkPlan
from nnunet_lossplug.benchmark.postprocessing import STEP_NAME, describe_steps
from nnunet_lossplug.benchmark.report import markdown_report, schedule_text
from nnunet_lossplug.benchmark.running import (
    CommandLog,
    differing_settings,
    finished_record,
    run_one,
    run_settings,
)
from nnunet_lossplug.benchmark.short_trainers import locate_trainer, write_short_trainer
from nnunet_lossplug.discovery import ENV_VAR

WRITER = "nnunet-lossplug benchmark"
REPORT_FILES = ("report.md", "report.png", "report.json", "commands.sh")


def ext_trainer_line(trainer_folder: Path) -> str:
    """The shell line that lets nnU-Net's commands find the generated trainers."""
    return f'export {ENV_VAR}="${{{ENV_VAR}:+${{{ENV_VAR}}}{os.pathsep}}}{trainer_folder}"'


def _minutes(seconds: float) -> str:
    return f"{seconds / 60:.0f} min" if seconds >= 90 else f"{seconds:.0f} s"


def run_benchmark(plan: BenchmarkPlan, output: Path, environ: Mapping[str, str], reference: str | None = None,
                  writer: str = WRITER, command_line: str | None = None, say: Callable[[str], None] = print,
                  lost_below: float = 0.5) -> dict:
    """Run (or reuse) every run of ``plan`` into ``output`` and write the report; returns the report document.

    Raises:
        FolderNotOursError: ``output`` holds files the benchmark did not make.
        FolderBusyError: another benchmark is writing ``output`` now.
        ValueError, LookupError: the dataset, a trainer or the reference cannot be found.
        StepFailedError: one of nnU-Net's commands failed (finished runs are kept).
        KeyboardInterrupt: Ctrl-C or SIGTERM (its ``signum``); its message says what was kept.
    """
    output = Path(output).absolute()
    folder = OwnedFolder(output, writer)
    folder.claim()
    with folder.exclusive(), _sigterm_as_interrupt():
        return _run_locked(plan, folder, environ, reference, writer, command_line, say, lost_below)


def _run_locked(plan: BenchmarkPlan, folder: OwnedFolder, environ: Mapping[str, str], reference: str | None,
                writer: str, command_line: str | None, say: Callable[[str], None], lost_below: float) -> dict:
    output = folder.path
    folders = dataset_folders(plan.dataset, plan.configuration, environ)
    reference = plan.reference(reference)
    locations = {name: locate_trainer(name, environ) for name in plan.trainer_names}
    held_out = held_out_cases(folders, plan.fold)
    trainer_folder = output / "trainers"
    sources = write_trainers(plan, locations, folder, writer)
    env = child_environment(environ, trainer_folder)
    runs = plan.runs()
    schedule = schedule_text(vars(plan.schedule))
    trainers = ", ".join(f"{name} on {count} seed{'s' if count > 1 else ''}" for name, count in plan.trainers)
    say(f"{writer}: {len(runs)} runs ({trainers}) of {schedule} on {plan.device}, {folders.name} "
        f"{plan.configuration}, into {output}")
    say(f"scored cases: {held_out.description}")
    records, trained_seconds, started = [], [], time.perf_counter()
    try:
        for index, run in enumerate(runs, start=1):
            run_folder = output / "runs" / run.variant / f"seed_{run.seed}"
            settings = run_settings(plan, run, folders, held_out, *sources[run.trainer])
            record = finished_record(run_folder, settings)
            if record is not None:
                say(f"[{index}/{len(runs)}] {run.trainer} seed {run.seed}: finished earlier with the same settings, "
                    f"reused ({run_folder})")
                records.append(record)
                continue
            if not folder.reachable_without_links(str(run_folder.relative_to(output))):
                raise ValueError(f"{run_folder} lies behind a symbolic link; the benchmark deletes and writes only "
                                 f"its own folders: give another -o folder.")
            changed = differing_settings(run_folder, settings) if run_folder.exists() else []
            left = len(runs) - index + 1
            estimate = (f"about {_minutes(left * sorted(trained_seconds)[len(trained_seconds) // 2])} left"
                        if trained_seconds else "time left known after the first run")
            say(f"[{index}/{len(runs)}] {run.trainer} seed {run.seed}"
                + (f" (again: made with other {', '.join(changed)})" if changed else "")
                + f"; {_minutes(time.perf_counter() - started)} so far, {estimate}")
            folder.record("runs")
            run_started = time.perf_counter()
            records.append(run_one(plan, run, run_folder, folders, held_out, env, environ, settings, say))
            trained_seconds.append(time.perf_counter() - run_started)
            say(f"    done in {_minutes(trained_seconds[-1])}")
    except KeyboardInterrupt as interrupt:
        stop = KeyboardInterrupt(f"{len(records)} of {len(runs)} runs finished and are kept in {output / 'runs'}; "
                                 f"run the same command again to continue")
        stop.signum = getattr(interrupt, "signum", signal.SIGINT)
        raise stop from None
    document = report_document(plan, folders.name, held_out, reference, records, writer, trainer_folder,
                               folders.dataset_json)
    write_report(document, output, folder, command_line, lost_below)
    return document


@contextlib.contextmanager
def _sigterm_as_interrupt() -> Iterator[None]:
    """SIGTERM ends the benchmark like Ctrl-C (the running nnU-Net command is killed, finished runs stay)."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def interrupt(signum, _frame):
        stop = KeyboardInterrupt()
        stop.signum = signum
        raise stop

    previous = signal.signal(signal.SIGTERM, interrupt)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


def write_trainers(plan: BenchmarkPlan, locations: Mapping, folder: OwnedFolder, writer: str = WRITER) -> dict:
    """Write ``DIR/trainers/<variant>.py`` for every trainer of ``plan`` (recorded in the manifest); returns
    ``{trainer: (the file's source, the digest of the user's trainer file)}``."""
    sources = {}
    for name, location in locations.items():
        path = write_short_trainer(folder.path / "trainers", location, plan.variant(name), plan.schedule, writer)
        folder.record(f"trainers/{path.name}")
        sources[name] = (path.read_text(), location.source_digest())
    return sources


def write_trainers_only(plan: BenchmarkPlan, output: Path, environ: Mapping[str, str], writer: str = WRITER,
                        say: Callable[[str], None] = print) -> list[Path]:
    """Only the short-schedule trainers of ``plan`` in ``output/trainers``, and how to train them; returns the files."""
    folder = OwnedFolder(Path(output).absolute(), writer)
    folder.check()
    locations = {name: locate_trainer(name, environ) for name in plan.trainer_names}
    folder.claim()
    write_trainers(plan, locations, folder, writer)
    files = [folder.path / "trainers" / f"{plan.variant(name)}.py" for name in plan.trainer_names]
    say("wrote " + ", ".join(str(path) for path in files))
    say("nnU-Net finds them once their folder is listed in nnUNet_extTrainer:")
    say(f"  {ext_trainer_line(folder.path / 'trainers')}")
    say(f"train one, seeded: {SEED_ENV_VAR}={plan.first_seed} nnUNet_n_proc_DA=0 OMP_WAIT_POLICY=PASSIVE "
        f"nnUNetv2_train {plan.dataset} {plan.configuration} FOLD -tr {plan.variant(plan.trainer_names[0])} "
        f"-device {plan.device}")
    return files


def report_document(plan: BenchmarkPlan, dataset: str, held_out, reference: str, records: list[dict], writer: str,
                    trainer_folder: Path, dataset_json: Path) -> dict:
    """Everything the report is drawn from (``report.json``; ``--report-only`` redraws from it)."""
    from nnunet_lossplug.evaluation.result_io import load_label_names

    label_names = records[0]["label_names"] if records else load_label_names(dataset_json)  # regions: evaluate's
    for record in records:
        record["postprocessing_text"] = describe_steps([tuple(step) for step in record["postprocessing"]],
                                                       label_names)
    schedule = plan.schedule
    return {
        "written_by": writer, "dataset": dataset, "configuration": plan.configuration, "fold": plan.fold,
        "device": plan.device, "trainers": plan.trainer_names, "reference": reference,
        "schedule": {"epochs": schedule.epochs, "iterations_per_epoch": schedule.iterations_per_epoch,
                     "val_iterations_per_epoch": schedule.val_iterations_per_epoch, "adam_lr": schedule.adam_lr},
        "held_out": held_out.description, "held_out_kind": held_out.kind, "postprocessing_step": STEP_NAME,
        "label_names": label_names, "ext_trainer_line": ext_trainer_line(trainer_folder), "runs": records,
    }


def write_report(document: dict, output: Path, folder: OwnedFolder | None = None, command_line: str | None = None,
                 lost_below: float = 0.5) -> str:
    """Write report.md, report.png, report.json and commands.sh into ``output``; returns the Markdown."""
    text = markdown_report(document, lost_below)
    (output / "report.json").write_text(json.dumps(document, indent=1) + "\n")
    (output / "report.md").write_text(text)
    draw(document, output / "report.png")
    lines = ["#!/bin/sh", f"# The commands of {document['written_by']}, run by run (environment variables that differ "
             "from the caller's before each).", ""]
    if command_line:
        lines += ["# the benchmark itself:", f"# {command_line}", ""]
    lines += [document["ext_trainer_line"], ""]
    for run in document["runs"]:
        lines.append(f"# {run['trainer']}, seed {run['seed']}")
        lines += [CommandLog.shell_line(entry) for entry in run["commands"]] + [""]
    (output / "commands.sh").write_text("\n".join(lines))
    if folder is not None:
        folder.record(*REPORT_FILES)
    return text


def command_line_text(argv: list[str]) -> str:
    return shlex.join(argv)
