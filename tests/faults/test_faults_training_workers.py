"""The augmentation workers' tie to the trainer (``graceful_stop.workers_end_with_this_process``), in real processes.

A small parent forks a ``multiprocessing`` worker inside the block, as nnU-Net's ``NonDetMultiThreadedAugmenter``
does inside ``get_dataloaders``; the test signals the real processes and watches ``/proc``. The full training
path is in ``test_faults_training_processes.py``.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

import pytest
from helpers.fault_data import alive

pytestmark = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="prctl and sigwaitinfo are Linux's")

PARENT = """
import multiprocessing, sys, time
from nnunet_lossplug.nnunet.trainer.graceful_stop import workers_end_with_this_process

def work():
    while True:
        time.sleep(0.05)

if __name__ == "__main__":
    with workers_end_with_this_process():
        worker = multiprocessing.get_context("fork").Process(target=work, daemon=True)
        worker.start()
    print(worker.pid, flush=True)
    if sys.argv[1] == "terminate":
        time.sleep(1)
        worker.terminate()  # what nnU-Net's _finish and multiprocessing's exit handler send
        worker.join(10)
        print(worker.exitcode, flush=True)
    time.sleep(600)
"""


def _gone_within(pid: int, seconds: float) -> bool:
    deadline = time.monotonic() + seconds
    while alive(pid) and time.monotonic() < deadline:
        time.sleep(0.05)
    return not alive(pid)


def _start(mode: str) -> tuple[subprocess.Popen, int]:
    parent = subprocess.Popen([sys.executable, "-c", PARENT, mode], stdout=subprocess.PIPE, text=True,
                              env={**os.environ, "OMP_NUM_THREADS": "1"}, start_new_session=True)
    return parent, int(parent.stdout.readline())


def test_a_worker_dies_with_a_killed_trainer_and_ignores_a_sigterm_from_anyone_else():
    parent, worker = _start("wait")
    try:
        os.kill(worker, signal.SIGTERM)  # a scheduler signalling every process of the job
        time.sleep(1)
        assert alive(worker), "a SIGTERM not sent by the trainer ended the worker"
        os.kill(parent.pid, signal.SIGKILL)  # the scheduler's kill after its grace period
        parent.wait(timeout=10)
        assert _gone_within(worker, 10), "the worker outlived its killed trainer"
    finally:
        if alive(parent.pid):
            os.killpg(parent.pid, signal.SIGKILL)
        if alive(worker):
            os.kill(worker, signal.SIGKILL)


def test_the_trainers_own_sigterm_ends_the_worker_at_once():
    parent, worker = _start("terminate")
    try:
        assert int(parent.stdout.readline()) == 128 + signal.SIGTERM
        assert not alive(worker)
    finally:
        parent.kill()
        parent.wait(timeout=10)
        if alive(worker):
            os.kill(worker, signal.SIGKILL)
