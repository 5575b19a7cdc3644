"""Faults of the precompute processes: signals, the build lock, a full disk, a dangling symlink.

Each test runs the real ``nnunet-lossplug precompute`` console script on a copy of the session's dataset
preprocessed by nnU-Net, and sends it real signals (SIGTERM, SIGKILL, SIGINT as Ctrl-C does), gives it a real
file-size limit (``RLIMIT_FSIZE``, what ``ulimit -f`` sets) or a real dangling symlink, then checks what a user
sees and that no process, lock or partial file is left behind.
"""

from __future__ import annotations

import os
import resource
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
from helpers.fault_data import (
    DatasetCopy,
    alive,
    console_script,
    copy_dataset,
    enlarge_segmentations,
    kill_session,
    live_processes,
)

pytestmark = [pytest.mark.integration,
              pytest.mark.skipif(not Path("/proc/self/stat").is_file(), reason="finds processes through /proc")]


def _message_lines(stderr: str) -> list[str]:
    """stderr without tqdm's progress-bar updates (``\\r``-separated, which text mode reads as lines)."""
    return [line for line in stderr.strip().splitlines() if line.strip() and not line.startswith("lossplug ")]


@pytest.fixture
def slow_copy(preprocessed_dataset):
    """A copy whose cases are large enough (64 x 256 x 256) that a signal arrives while workers compute maps."""
    copy = copy_dataset(preprocessed_dataset.preprocessed_folder, 981, "Signals")
    try:
        enlarge_segmentations(copy.folder / "nnUNetPlans_2d", (64, 256, 256))
        statistics = subprocess.run(_argv(copy, "none"), env=copy.environ(), capture_output=True, text=True,
                                    timeout=300)
        assert statistics.returncode == 0, statistics.stderr  # built first: every worker below computes maps
        yield copy
    finally:
        copy.remove()


def _argv(copy: DatasetCopy, maps: str = "rrw", processes: int = 2) -> list[str]:
    return [console_script("nnunet-lossplug"), "precompute", "-d", str(copy.dataset_id), "-c", "2d",
            "--maps", maps, "-np", str(processes)]


def _as_in_a_terminal() -> None:
    """SIGINT at its default, as for a command typed in a terminal. A shell without job control starts
    ``pytest &`` (and all it runs) with SIGINT ignored, and Python then installs no KeyboardInterrupt handler."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)


def _start_with_workers(copy: DatasetCopy) -> tuple[subprocess.Popen, list[int]]:
    """Start a build and stop (SIGSTOP) its two workers as soon as they exist, so that a signal sent next surely
    arrives mid-build however fast the machine is (8 cases take about a second on 2 quiet cores); the caller
    continues them (SIGCONT) after sending its signal."""
    process = subprocess.Popen(_argv(copy), env=copy.environ(), stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                               text=True, start_new_session=True, preexec_fn=_as_in_a_terminal)
    deadline = time.monotonic() + 300  # start-up (imports) on a loaded machine
    while time.monotonic() < deadline and process.poll() is None:
        workers = live_processes("ppid", process.pid)
        if len(workers) == 2:
            _signal_all(workers, signal.SIGSTOP)
            return process, workers
        time.sleep(0.01)
    raise AssertionError(f"no 2 worker processes were seen: {process.communicate()}")


def _signal_all(pids: list[int], signum: int) -> None:
    for pid in pids:
        try:
            os.kill(pid, signum)
        except ProcessLookupError:
            pass


def _gone_within(pids: list[int], seconds: float) -> list[int]:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline and any(alive(p) for p in pids):
        time.sleep(0.05)
    return [p for p in pids if alive(p)]


def _completes(copy: DatasetCopy, timeout: float = 120) -> subprocess.CompletedProcess:
    """The next run: it must not wait on a lock of a process that is gone, and it completes the cache."""
    process = subprocess.Popen(_argv(copy), env=copy.environ(), stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                               text=True, start_new_session=True)
    try:
        out, err = process.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        kill_session(process.pid)
        out, err = process.communicate()
        raise AssertionError(f"the next precompute waited {timeout} s (stderr: {err!r})") from None
    assert process.returncode == 0, err
    return subprocess.CompletedProcess(process.args, process.returncode, out, err)


# ---------------------------------------------------------------------------------------------- signals
@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGKILL])
def test_workers_die_with_their_parent_and_the_next_run_does_not_wait(slow_copy, signum):
    process, workers = _start_with_workers(slow_copy)
    try:
        os.kill(process.pid, signum)  # `kill PID`, subprocess.terminate(), a job scheduler; or kill -9
        _signal_all(workers, signal.SIGCONT)
        process.wait(timeout=30)  # not communicate(): orphaned workers would hold its pipes open
        assert process.returncode in (-signum, 128 + signum), process.returncode
        left = _gone_within(workers, 10)
        assert not left, f"workers {left} outlived their parent (killed by {signal.Signals(signum).name})"
        second = _completes(slow_copy)
        assert "cases computed" in second.stdout
        assert "up to date (8 cases)" in _completes(slow_copy).stdout
    finally:
        kill_session(process.pid)


def test_ctrl_c_is_one_line_naming_what_was_kept_and_how_to_resume(slow_copy):
    process, workers = _start_with_workers(slow_copy)
    try:
        os.killpg(process.pid, signal.SIGINT)  # what Ctrl-C in a terminal does: the whole foreground group
        _signal_all(workers, signal.SIGCONT)
        process.wait(timeout=60)
        assert not _gone_within(workers, 10), "a worker outlived the interrupted run"
        out, err = process.communicate(timeout=10)
        assert process.returncode == 130, (out, err)
        lines = _message_lines(err)
        assert len(lines) == 1 and "Traceback" not in err and "KeyboardInterrupt" not in err, err
        assert lines[0].startswith("nnunet-lossplug precompute: interrupted"), err
        assert "kept" in lines[0] and "nnunet-lossplug precompute -d Dataset981_Signals -c 2d" in lines[0], err
        assert not live_processes("session", process.pid)
        rest = [line for line in _completes(slow_copy).stdout.splitlines() if "__rrw__" in line]
        assert rest and "up to date" not in rest[0], rest  # the lock was released; the rest is computed
    finally:
        kill_session(process.pid)


# ---------------------------------------------------------------------------------------------- the lock
_HOLD_LOCK = """
import os, sys, time
from nnunet_lossplug.nnunet.codecs.chooser import source_codec
from nnunet_lossplug.nnunet.map_cache.atomic import file_lock
from nnunet_lossplug.nnunet.map_cache.cache import CACHE_DIRNAME, CaseCache
from nnunet_lossplug.nnunet.map_cache.source import PreprocessedSource
source = PreprocessedSource.from_names(sys.argv[1], "2d")
cache = CaseCache(source, source_codec("rrw", source))
with file_lock(source.preprocessed_base / CACHE_DIRNAME / f".{cache.folder.name}.lock"):
    if os.fork() == 0:  # a child that inherits every open file and outlives its parent, as an orphaned worker
        time.sleep(600)  # ended by the test
        os._exit(0)
    print("locked", flush=True)
    time.sleep(600)
"""


def test_a_waiting_run_says_so_once_and_never_waits_on_a_holder_that_is_gone(preprocessed_dataset):
    copy = copy_dataset(preprocessed_dataset.preprocessed_folder, 982, "Lock")
    holder = subprocess.Popen([sys.executable, "-c", _HOLD_LOCK, str(copy.dataset_id)], env=copy.environ(),
                              stdout=subprocess.PIPE, text=True, start_new_session=True)
    waiting = None
    try:
        assert holder.stdout.readline().strip() == "locked"
        waiting = subprocess.Popen(_argv(copy), env=copy.environ(), stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                   text=True, start_new_session=True)
        stderr_lines: list[str] = []
        reader = threading.Thread(target=lambda: stderr_lines.extend(waiting.stderr), daemon=True)
        reader.start()
        deadline = time.monotonic() + 120  # start-up (imports) on a loaded machine, then the wait
        while time.monotonic() < deadline and not any("lock" in line for line in stderr_lines):
            assert waiting.poll() is None, stderr_lines
            time.sleep(0.1)
        assert waiting.poll() is None, stderr_lines
        os.kill(holder.pid, signal.SIGKILL)  # its forked child lives on, holding every file the holder had open
        holder.wait()
        assert live_processes("session", holder.pid), "the holder's child should still run"
        try:
            waiting.wait(timeout=120)
        except subprocess.TimeoutExpired:
            kill_session(waiting.pid)
            raise AssertionError(f"the run kept waiting after the lock's holder was gone: {stderr_lines}") from None
        reader.join(timeout=10)
        err = "".join(stderr_lines)
        assert waiting.returncode == 0, err
        said = [line for line in _message_lines(err) if "lock" in line]
        assert len(said) == 1, err
        assert ".lock" in said[0] and f"PID {holder.pid}" in said[0] and "since" in said[0], said
    finally:
        kill_session(holder.pid)
        if waiting is not None:
            kill_session(waiting.pid)
        copy.remove()


# ---------------------------------------------------------------------------------------------- disk and links
def test_a_file_size_limit_names_the_case_the_file_and_keeps_nothing_partial(preprocessed_dataset):
    copy = copy_dataset(preprocessed_dataset.preprocessed_folder, 983, "FileSize")
    try:
        enlarge_segmentations(copy.folder / "nnUNetPlans_2d", (8, 64, 64))  # maps of 8*64*64*2 = 64 KiB
        limit = 40 * 1024

        def limited() -> None:  # what `ulimit -f 40` does, in the child only
            resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit))

        result = subprocess.run(_argv(copy, processes=2), env=copy.environ(), capture_output=True, text=True,
                                timeout=300, preexec_fn=limited)
        assert result.returncode == 2, (result.stdout, result.stderr)
        lines = _message_lines(result.stderr)
        assert len(lines) == 1 and "Traceback" not in result.stderr, result.stderr
        assert "file too large" in lines[0] and "case" in lines[0] and ".npy" in lines[0], lines[0]
        assert "requested and" not in lines[0]
        cache_folder = next((copy.folder / "lossplug_cache").glob("nnUNetPlans__2d__rrw__*"))
        assert not list(cache_folder.glob(".*.tmp")) and not list(cache_folder.glob("*.npy")), \
            sorted(p.name for p in cache_folder.iterdir())
        assert _completes(copy).returncode == 0  # without the limit, the same command completes
    finally:
        copy.remove()


def test_a_dangling_cache_symlink_names_the_missing_target(preprocessed_dataset):
    copy = copy_dataset(preprocessed_dataset.preprocessed_folder, 984, "Dangling")
    try:
        target = copy.root / "scratch" / "lossplug_cache_of_984"
        (copy.folder / "lossplug_cache").symlink_to(target)
        result = subprocess.run(_argv(copy, "none"), env=copy.environ(), capture_output=True, text=True, timeout=300)
        assert result.returncode == 2, (result.stdout, result.stderr)
        lines = _message_lines(result.stderr)
        assert len(lines) == 1 and "Traceback" not in result.stderr, result.stderr
        assert str(target) in lines[0] and "symbolic link" in lines[0] and "does not exist" in lines[0], lines[0]
        assert "write access" not in lines[0]
    finally:
        copy.remove()
