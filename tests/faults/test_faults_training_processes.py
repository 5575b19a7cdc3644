"""Faults of a training process under nnU-Net's own ``nnUNetv2_train``: SIGTERM, and the plugin's refusals.

Each test runs the real ``nnUNetv2_train`` on the session's tiny dataset with a short subclass of a plugin trainer
in a folder of ``nnUNet_extTrainer``, sends real signals to the real process (or its whole process group, as a
cluster scheduler does) and checks what a user sees: the exit status, stderr, the files in the fold's folder,
the augmentation workers left, and that ``--c`` resumes.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import threading
import time
from pathlib import Path

import pytest
import torch
from helpers.fault_data import alive, console_script, kill_session, live_processes
from helpers.nnunet_runs import DATASET_ID

from nnunet_lossplug import discovery

pytestmark = [pytest.mark.integration,
              pytest.mark.skipif(not Path("/proc/self/stat").is_file(), reason="finds processes through /proc")]

STOPPABLE = '''
import os

from nnunet_lossplug.trainers import nnUNetTrainerRRW


class nnUNetTrainerRRW_Stoppable(nnUNetTrainerRRW):
    """RRW with as many iterations as the test asks (a long first epoch that a signal interrupts)."""

    epochs = 1
    iterations_per_epoch = int(os.environ.get("LOSSPLUG_TEST_ITERATIONS", "2"))
    val_iterations_per_epoch = 1
'''

TRAINER = "nnUNetTrainerRRW_Stoppable"


def _environ(dataset, folder: Path, **extra: str) -> dict[str, str]:
    return dataset.folders.environ(**{discovery.ENV_VAR: discovery.ext_trainer_value(str(folder)),
                                      "nnUNet_def_n_proc": "1", **extra})


def _argv(trainer: str = TRAINER, *more: str) -> list[str]:
    return [console_script("nnUNetv2_train"), str(DATASET_ID), "2d", "0", "-tr", trainer, "-device", "cpu", *more]


def _fold(dataset, trainer: str = TRAINER) -> Path:
    return dataset.folders.results / dataset.name / f"{trainer}__nnUNetPlans__2d" / "fold_0"


def _error_lines(stderr: str) -> list[str]:
    """stderr without the warnings libraries print on import (``...Warning: ...`` and the source line after it)
    and the precompute hook's progress bar (``lossplug rrw: ...``)."""
    lines = [line for line in stderr.splitlines() if line.strip() and not line.startswith("lossplug ")]
    kept, skip_next = [], False
    for line in lines:
        if skip_next:
            skip_next = False
            continue
        if "Warning:" in line:
            skip_next = line.lstrip().startswith("/")
            continue
        kept.append(line)
    return kept


@pytest.fixture
def trainer_folder(tmp_path):
    folder = tmp_path / "my_trainers"
    folder.mkdir()
    (folder / "stoppable.py").write_text(STOPPABLE)
    return folder


# ---------------------------------------------------------------------------------------------- SIGTERM
@pytest.mark.parametrize("sent_to", ["trainer", "process group"])
def test_sigterm_saves_a_checkpoint_at_the_next_iteration_ends_the_workers_and_c_resumes(
        preprocessed_dataset, fresh_cache, trainer_folder, sent_to):
    fold = _fold(preprocessed_dataset)
    shutil.rmtree(fold, ignore_errors=True)  # the other parametrisation's resumed run ends with checkpoint_final.pth
    env = _environ(preprocessed_dataset, trainer_folder, nnUNet_n_proc_DA="2", LOSSPLUG_TEST_ITERATIONS="100000")
    process = subprocess.Popen(_argv(), env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                               start_new_session=True)
    out: list[str] = []
    err: list[str] = []
    readers = [threading.Thread(target=lambda s=s, o=o: o.extend(s), daemon=True)
               for s, o in ((process.stdout, out), (process.stderr, err))]
    for reader in readers:
        reader.start()
    try:
        deadline = time.monotonic() + 300  # imports, the map cache, nnU-Net's start on 2 loaded cores
        while time.monotonic() < deadline and process.poll() is None and not any("Epoch 0" in line for line in out):
            time.sleep(0.2)
        assert process.poll() is None, "".join(out[-30:] + err[-30:])
        time.sleep(2)  # a few iterations into the epoch
        workers = live_processes("ppid", process.pid)
        assert len(workers) >= 3, workers  # 2 training and 1 validation augmentation workers
        sent = time.monotonic()
        if sent_to == "trainer":
            os.kill(process.pid, signal.SIGTERM)  # `kill PID`
        else:
            os.killpg(process.pid, signal.SIGTERM)  # a scheduler signalling every process of the job
        process.wait(timeout=120)
        took = time.monotonic() - sent
        for reader in readers:
            reader.join(timeout=10)
        stderr = "".join(err)
        assert process.returncode == 128 + signal.SIGTERM, stderr[-3000:]
        left = [pid for pid in workers if alive(pid)]
        deadline = time.monotonic() + 10
        while left and time.monotonic() < deadline:
            time.sleep(0.1)
            left = [pid for pid in left if alive(pid)]
        assert not left, f"augmentation workers {left} outlived the trainer"
        lines = _error_lines(stderr)
        assert len(lines) == 1 and "Traceback" not in stderr, stderr[-3000:]
        assert lines[0].startswith("nnUNetv2_train: stopped by SIGTERM at epoch 0, after iteration "), lines[0]
        assert f"saved {fold / 'checkpoint_latest.pth'}" in lines[0] and lines[0].rstrip().endswith(
            "(epoch 0 runs again from its start)"), lines[0]
        assert f"-tr {TRAINER} -device cpu --c" in lines[0], lines[0]
        print(f"SIGTERM ({sent_to}) to exit: {took:.1f} s; {lines[0]}")
        assert (fold / "checkpoint_latest.pth").is_file() and not (fold / "checkpoint_final.pth").exists()
        assert not list(fold.glob(".*.tmp"))
        log = next(fold.glob("training_log_*.txt")).read_text()
        assert "stopped by SIGTERM at epoch 0" in log
    finally:
        kill_session(process.pid)
    if sent_to != "trainer":
        return
    # the first-hour lines of the same log: the citation of a changed subclass, the sign, rounded weights
    assert ("derived from nnUNetTrainerRRW (Valverde & Tohka 2022, Tables 2-4 'RRW'); changed: epochs=1, "
            "iterations_per_epoch=100000, val_iterations_per_epoch=1") in log
    assert "negative by design for the RW loss" in log
    assert "deep-supervision weights: [0.6667, 0.3333, 0.0]" in log, log[-3000:]  # not 0.6666666666666666
    resumed = subprocess.run(_argv(TRAINER, "--c"), env=_environ(preprocessed_dataset, trainer_folder,
                                                                 nnUNet_n_proc_DA="0"),
                             capture_output=True, text=True, timeout=600)
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    assert (fold / "checkpoint_final.pth").is_file()
    assert "Epoch 0" in resumed.stdout and "Epoch 1" not in resumed.stdout  # epoch 0 again, then done


# ---------------------------------------------------------------------------------------------- refusals
NO_LOSS = '''
from nnunet_lossplug.nnunet import LossPlugTrainer


class nnUNetTrainerNoLoss(LossPlugTrainer):
    """Declares nothing (a refusal at construction)."""
'''

STRING_SEED = '''
from nnunet_lossplug.trainers import nnUNetTrainerDiceOnly


class nnUNetTrainerStringSeed(nnUNetTrainerDiceOnly):
    seed = "x"
'''


@pytest.mark.parametrize(("trainer", "seed", "expected"), [
    ("nnUNetTrainerDiceOnly", "abc", "SeedError: NNUNET_LOSSPLUG_SEED = 'abc' is not a seed"),
    ("nnUNetTrainerDiceOnly", "-1", "SeedError: NNUNET_LOSSPLUG_SEED = '-1' is not a seed"),
    ("nnUNetTrainerDiceOnly", str(2**70), f"SeedError: NNUNET_LOSSPLUG_SEED = '{2**70}' is not a seed"),
    ("nnUNetTrainerStringSeed", "", "SeedError: nnUNetTrainerStringSeed.seed = 'x' is not a seed"),
    ("nnUNetTrainerNoLoss", "", "TrainerDeclarationError: nnUNetTrainerNoLoss declares no loss_spec"),
])
def test_a_refusal_is_one_line_with_no_empty_log_left(preprocessed_dataset, tmp_path, trainer, seed, expected):
    folder = tmp_path / "my_trainers"
    folder.mkdir()
    (folder / "refused.py").write_text(NO_LOSS + STRING_SEED)
    env = _environ(preprocessed_dataset, folder, nnUNet_n_proc_DA="0", NNUNET_LOSSPLUG_SEED=seed)
    fold = _fold(preprocessed_dataset, trainer)
    before = set(fold.glob("training_log_*.txt")) if fold.is_dir() else set()
    result = subprocess.run(_argv(trainer), env=env, capture_output=True, text=True, timeout=600)
    assert result.returncode != 0
    lines = _error_lines(result.stderr)
    assert len(lines) == 1 and "Traceback" not in result.stderr, result.stderr[-3000:]
    assert lines[0].startswith(f"nnUNetv2_train: error: {expected}"), lines[0]
    assert "NNUNET_LOSSPLUG_DEBUG=1 shows the traceback" in lines[0]
    assert set(fold.glob("training_log_*.txt")) == before  # the log of nnU-Net's header alone is gone
    if trainer == "nnUNetTrainerNoLoss":  # and the traceback is there on request
        debug = subprocess.run(_argv(trainer), env={**env, "NNUNET_LOSSPLUG_DEBUG": "1"}, capture_output=True,
                               text=True, timeout=600)
        assert debug.returncode != 0 and "Traceback" in debug.stderr and expected.split(":")[0] in debug.stderr


@pytest.mark.skipif(torch.cuda.is_available(), reason="this machine has a CUDA device")
def test_nnunets_default_device_without_cuda_is_one_line_saying_device_cpu(preprocessed_dataset, tmp_path):
    """The README's ``nnUNetv2_train D 2d 0 -tr nnUNetTrainerRRW`` (no ``-device``) on a machine without CUDA."""
    argv = [console_script("nnUNetv2_train"), str(DATASET_ID), "2d", "0", "-tr", "nnUNetTrainerDiceOnly"]
    env = _environ(preprocessed_dataset, tmp_path, nnUNet_n_proc_DA="0")
    result = subprocess.run(argv, env=env, capture_output=True, text=True, timeout=600)
    assert result.returncode != 0
    lines = _error_lines(result.stderr)
    assert len(lines) == 1 and "Traceback" not in result.stderr, result.stderr[-3000:]
    assert lines[0].startswith("nnUNetv2_train: error: DeviceUnavailableError: nnUNetv2_train trains on -device "
                               "cuda unless told otherwise"), lines[0]
    assert "add -device cpu" in lines[0]


def test_a_log_this_run_did_not_create_is_kept(preprocessed_dataset, tmp_path):
    """A refusal never removes a training log it did not create, even one of nnU-Net's header only."""
    folder = tmp_path / "my_trainers"
    folder.mkdir()
    (folder / "refused.py").write_text(NO_LOSS)
    fold = _fold(preprocessed_dataset, "nnUNetTrainerNoLoss")
    fold.mkdir(parents=True, exist_ok=True)
    env = _environ(preprocessed_dataset, folder, nnUNet_n_proc_DA="0")
    names = [time.strftime(f"training_log_{t.tm_year}_{t.tm_mon}_{t.tm_mday}_%H_%M_%S.txt", t)
             for t in (time.localtime(time.time() + d) for d in range(0, 40))]
    for name in names:  # a user's files with every name this run's log may get in the next 40 s
        (fold / name).write_text("")
    try:
        result = subprocess.run(_argv("nnUNetTrainerNoLoss"), env=env, capture_output=True, text=True, timeout=600)
        assert result.returncode != 0 and "TrainerDeclarationError" in result.stderr
        assert all((fold / name).is_file() for name in names)
    finally:
        for name in names:
            (fold / name).unlink(missing_ok=True)
