"""Faults of the map cache and of the ``nnunet-lossplug`` CLI, with real files and processes.

Each test damages a real cache built from the session's dataset preprocessed by nnU-Net, or runs the real
console script, and checks what a user sees: the damage is found and repaired, or the command stops with one
line naming the problem and the fix. Expected maps come from the map functions, never from the cache code.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import time
from pathlib import Path

import numpy as np
import pytest
from helpers.fault_data import (
    as_nobody,
    can_run_as_nobody,
    console_script,
    copy_dataset,
    enlarge_segmentations,
    live_processes,
)
from helpers.nnunet_runs import DATASET_ID, NnunetFolders

from nnunet_lossplug.nnunet import CaseCache, MapCacheError, PreprocessedSource
from nnunet_lossplug.nnunet.codecs.softmax import codec_for

pytestmark = pytest.mark.integration

NUM_CLASSES = 4


def _rrw(configuration: str = "2d") -> CaseCache:
    return CaseCache(PreprocessedSource.from_names(DATASET_ID, configuration), codec_for("rrw", NUM_CLASSES))


def _message_lines(stderr: str) -> list[str]:
    """stderr without tqdm's progress-bar updates (``\\r``-separated, which text mode reads as lines)."""
    return [line for line in stderr.strip().splitlines() if line.strip() and not line.startswith("lossplug ")]


def _data_offset(path: Path) -> int:
    """Bytes of the .npy header (magic, version, header length, header), read with numpy's format module."""
    with open(path, "rb") as handle:
        version = np.lib.format.read_magic(handle)
        if version == (1, 0):
            np.lib.format.read_array_header_1_0(handle)
        else:
            np.lib.format.read_array_header_2_0(handle)
        return handle.tell()


# ---------------------------------------------------------------------------------------------- content
def test_random_bytes_after_the_header_are_found_and_recomputed(fresh_cache):
    cache = _rrw()
    ids = cache.source.identifiers()
    cache.ensure(num_processes=1, progress=False)
    path = cache.map_path(ids[0])
    good = path.read_bytes()
    offset = _data_offset(path)
    damaged = good[:offset] + np.random.default_rng(0).bytes(len(good) - offset)
    path.write_bytes(damaged)
    assert path.stat().st_size == len(good)  # same size: the old size check cannot see it

    assert cache.invalid_cases(ids) == [ids[0]]
    assert cache.ensure(num_processes=1, progress=False).cases_computed == 1
    assert path.read_bytes() == good


def test_a_map_swapped_with_another_cases_map_is_found(fresh_cache):
    cache = _rrw()
    ids = cache.source.identifiers()
    cache.ensure(num_processes=1, progress=False)
    a, b = cache.map_path(ids[1]), cache.map_path(ids[2])
    assert np.load(a).shape == np.load(b).shape and a.read_bytes() != b.read_bytes()
    good = b.read_bytes()
    shutil.copyfile(a, b)

    assert cache.invalid_cases(ids) == [ids[2]]
    assert cache.ensure(num_processes=1, progress=False).cases_computed == 1
    assert b.read_bytes() == good


def test_the_cli_repairs_a_corrupted_map(fresh_cache, preprocessed_dataset):
    env = preprocessed_dataset.folders.environ()
    argv = [console_script("nnunet-lossplug"), "precompute", "-d", str(DATASET_ID), "-c", "2d", "--maps", "rrw"]
    assert subprocess.run(argv, env=env, capture_output=True, text=True, timeout=300).returncode == 0
    cache = _rrw()
    ids = cache.source.identifiers()
    path = cache.map_path(ids[3])
    path.write_bytes(np.random.default_rng(1).bytes(path.stat().st_size))  # random bytes, header included
    result = subprocess.run(argv, env=env, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr
    assert "nnUNetPlans__2d__rrw__" in result.stdout and f"1/{len(ids)} cases computed" in result.stdout
    assert cache.invalid_cases(ids) == []


def test_a_map_that_fails_at_load_names_the_case_and_the_fix_never_numpys_text(fresh_cache):
    from nnunet_lossplug.nnunet.map_cache.integrity import load_checked_map

    cache = _rrw()
    ids = cache.source.identifiers()
    cache.ensure(num_processes=1, progress=False)
    shape = tuple(np.load(cache.map_path(ids[0])).shape[1:])
    fix = "nnunet-lossplug precompute -d Dataset991_LossPlugTest -c 2d -p nnUNetPlans --maps rrw"

    checked = load_checked_map(cache, ids[0], shape)
    np.testing.assert_array_equal(checked, np.load(cache.map_path(ids[0])))

    def refused(identifier: str, spatial_shape=shape) -> str:
        with pytest.raises(MapCacheError) as raised:
            load_checked_map(cache, identifier, spatial_shape)
        message = str(raised.value)
        assert identifier in message and fix in message and "\n" not in message
        assert "allow_pickle" not in message and "pickled" not in message
        return message

    random_file = cache.map_path(ids[1])
    random_file.write_bytes(np.random.default_rng(2).bytes(random_file.stat().st_size))
    assert "cannot be read" in refused(ids[1])

    assert "shape" in refused(ids[0], (shape[0] + 1, *shape[1:]))

    for identifier, value in ((ids[2], np.nan), (ids[3], np.inf), (ids[4], -0.5), (ids[5], 7.0)):
        stored = np.load(cache.map_path(identifier)).copy()
        stored[0, 0, 0, 0] = value
        np.save(cache.map_path(identifier), stored)
        message = refused(identifier)
        assert ("finite" in message) if not np.isfinite(value) else ("range" in message), message


# ---------------------------------------------------------------------------------------------- killed worker
@pytest.mark.skipif(not Path("/proc/self/stat").is_file(), reason="finds worker processes through /proc")
def test_a_killed_worker_ends_the_build_with_a_named_error_and_the_next_run_completes(preprocessed_dataset):
    copy = copy_dataset(preprocessed_dataset.preprocessed_folder, 994, "KilledWorker")
    try:
        enlarge_segmentations(copy.folder / "nnUNetPlans_2d", (64, 256, 256))
        env = copy.environ()
        argv = [console_script("nnunet-lossplug"), "precompute", "-d", "994", "-c", "2d", "--maps", "rrw", "-np", "2"]
        statistics = subprocess.run(argv[:-3] + ["none"], env=env, capture_output=True, text=True, timeout=300)
        assert statistics.returncode == 0, statistics.stderr  # built first: every worker below computes maps
        process = subprocess.Popen(argv, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                                   start_new_session=True)
        killed = None
        try:
            deadline = time.monotonic() + 300  # start-up (imports) on a loaded machine, not the hang being tested
            while killed is None and time.monotonic() < deadline and process.poll() is None:
                workers = live_processes("ppid", process.pid)
                if workers:
                    time.sleep(0.3)  # let it start on a case
                    os.kill(workers[0], signal.SIGKILL)
                    killed = workers[0]
                time.sleep(0.02)
            out, err = process.communicate(timeout=30)  # before the fix the build waited here forever
        finally:
            if process.poll() is None:
                os.killpg(process.pid, signal.SIGKILL)
                process.wait()
        assert killed is not None, "no worker process was seen: the build finished too fast to test"
        assert process.returncode == 2, (out, err)
        lines = _message_lines(err)
        assert len(lines) <= 3 and lines[-1].startswith("nnunet-lossplug precompute: error: "), err
        assert "died" in err and "signal 9" in err and "SIGKILL" in err, err
        assert "nnunet-lossplug precompute -d Dataset994_KilledWorker -c 2d" in err, err
        assert "case" in err

        # the lock was released: a second run does not wait, and it computes exactly what is missing
        second = subprocess.run(argv, env=env, capture_output=True, text=True, timeout=120)
        assert second.returncode == 0, second.stderr
        summary = [line for line in second.stdout.splitlines() if "__rrw__" in line][0]
        computed = int(summary.split(": ", 1)[1].split("/")[0])
        assert 1 <= computed <= 8, summary
        third = subprocess.run(argv, env=env, capture_output=True, text=True, timeout=120)
        assert "up to date (8 cases)" in third.stdout, third.stdout
    finally:
        copy.remove()


# ---------------------------------------------------------------------------------------------- read-only data
def test_read_only_incomplete_cache_names_the_missing_cases_and_who_can_fix_it(preprocessed_dataset):
    if os.geteuid() == 0 and not can_run_as_nobody():
        pytest.skip("running as root, which ignores permission bits, and an unprivileged user (setpriv to uid 65534) "
                    "cannot run this Python installation")
    copy = copy_dataset(preprocessed_dataset.preprocessed_folder, 995, "ReadOnly")
    try:
        env = copy.environ()
        argv = [console_script("nnunet-lossplug"), "precompute", "-d", "995", "-c", "2d", "--maps", "rrw"]
        built = subprocess.run(argv, env=env, capture_output=True, text=True, timeout=300)
        assert built.returncode == 0, built.stderr
        cache_folder = next((copy.folder / "lossplug_cache").glob("nnUNetPlans__2d__rrw__*"))
        missing = sorted(p.stem for p in cache_folder.glob("*.npy"))[2]
        (cache_folder / f"{missing}.json").rename(copy.root / "saved_sidecar.json")
        root = os.geteuid() == 0
        if not root:  # an ordinary user: take the write permission away
            for path in [copy.folder, *copy.folder.rglob("*")]:
                path.chmod(path.stat().st_mode & ~0o222)

        def read_only(cmd: list[str]) -> list[str]:
            # root ignores permission bits: run as uid 65534, for whom the root-owned 0644/0755 files are read-only
            return as_nobody(cmd) if root else cmd

        result = subprocess.run(read_only(argv), env=env, capture_output=True, text=True, timeout=300)
        assert result.returncode == 2, (result.stdout, result.stderr)
        lines = _message_lines(result.stderr)
        assert len(lines) <= 3 and "Traceback" not in result.stderr, result.stderr
        assert lines[-1].startswith("nnunet-lossplug precompute: error: "), result.stderr
        assert missing in result.stderr and "1 of 8" in result.stderr, result.stderr
        assert "write access" in result.stderr
        assert "nnunet-lossplug precompute -d Dataset995_ReadOnly -c 2d -p nnUNetPlans --maps rrw" in result.stderr

        # a complete cache keeps working read-only
        if not root:
            cache_folder.chmod(0o755)
        (copy.root / "saved_sidecar.json").rename(cache_folder / f"{missing}.json")
        if not root:
            cache_folder.chmod(0o555)
        complete = subprocess.run(read_only(argv), env=env, capture_output=True, text=True, timeout=300)
        assert complete.returncode == 0, complete.stderr
        assert "up to date (8 cases)" in complete.stdout
    finally:
        for path in [copy.root, *copy.root.rglob("*")]:
            if path.is_dir() and not path.is_symlink():
                path.chmod(0o755)
        copy.remove()


# ---------------------------------------------------------------------------------------------- CLI errors
def _one_line_error(argv: list[str], env: dict[str, str]) -> str:
    result = subprocess.run([console_script("nnunet-lossplug"), *argv], env=env, capture_output=True, text=True,
                            timeout=300)
    lines = _message_lines(result.stderr)
    assert result.returncode == 2, (argv, result.stdout[-2000:], result.stderr[-3000:])
    assert 1 <= len(lines) <= 3 and "Traceback" not in result.stderr, (argv, result.stderr[-3000:])
    assert "np.int64" not in result.stderr and "np.float" not in result.stderr, result.stderr
    return result.stderr


@pytest.mark.parametrize(("argv", "expected"), [
    (["precompute", "-d", "999", "-c", "2d"], "999"),
    (["precompute", "-d", str(DATASET_ID), "-c", "2d", "--maps", "nosuchkind"], "nosuchkind"),
    (["precompute", "-d", str(DATASET_ID), "-c", "3d_lowres"], "3d_lowres"),
    (["precompute", "-d", str(DATASET_ID), "-c", "2d", "-p", "NoSuchPlans"], "NoSuchPlans"),
    (["trainers", "--no-such-option"], "--no-such-option"),
])
def test_cli_user_errors_are_one_line_with_exit_status_2(preprocessed_dataset, argv, expected):
    assert expected in _one_line_error(argv, preprocessed_dataset.folders.environ())


def test_cli_errors_of_an_unpreprocessed_configuration_and_of_undeclared_labels(preprocessed_dataset):
    copy = copy_dataset(preprocessed_dataset.preprocessed_folder, 996, "BadData")
    try:
        plans = json.loads((copy.folder / "nnUNetPlans.json").read_text())
        plans["configurations"]["2d"]["data_identifier"] = "nnUNetPlans_2d_never_preprocessed"
        (copy.folder / "nnUNetPlans.json").write_text(json.dumps(plans))
        error = _one_line_error(["precompute", "-d", "996", "-c", "2d"], copy.environ())
        assert "nnUNetv2_plan_and_preprocess" in error

        dataset_json = json.loads((copy.folder / "dataset.json").read_text())
        del dataset_json["labels"]["LV"]  # label 3 is in the data but no longer declared
        (copy.folder / "dataset.json").write_text(json.dumps(dataset_json))
        error = _one_line_error(["precompute", "-d", "996", "-c", "3d_fullres"], copy.environ())
        assert "label 3" in error and "[0, 1, 2]" in error
    finally:
        copy.remove()


def test_cli_debug_flag_and_variable_show_the_traceback(preprocessed_dataset):
    env = preprocessed_dataset.folders.environ()
    for argv, extra in ((["--debug", "precompute", "-d", "999", "-c", "2d"], {}),
                        (["precompute", "-d", "999", "-c", "2d"], {"NNUNET_LOSSPLUG_DEBUG": "1"})):
        result = subprocess.run([console_script("nnunet-lossplug"), *argv], env={**env, **extra},
                                capture_output=True, text=True, timeout=300)
        assert result.returncode != 0 and "Traceback" in result.stderr, result.stderr[-2000:]


def test_trainers_lists_the_users_own_trainers(tmp_path):
    folder = tmp_path / "my_trainers"
    folder.mkdir()
    (folder / "my_rrw.py").write_text(
        "from nnunet_lossplug.trainers import nnUNetTrainerRRW\n\n\n"
        "class nnUNetTrainerMyRRW(nnUNetTrainerRRW):\n"
        "    \"\"\"My RRW variant.\"\"\"\n\n    epochs = 5\n"
    )
    (folder / "not_a_trainer.py").write_text("X = 1\n")
    env = NnunetFolders(tmp_path, tmp_path, tmp_path).environ(nnUNet_extTrainer=str(folder))
    result = subprocess.run([console_script("nnunet-lossplug"), "trainers"], env=env, capture_output=True, text=True,
                            timeout=300)
    assert result.returncode == 0, result.stderr
    line = [line for line in result.stdout.splitlines() if "nnUNetTrainerMyRRW" in line]
    assert len(line) == 1 and "My RRW variant." in line[0]
    assert str(folder) in result.stdout and "yours" in result.stdout
    assert "nnUNetTrainerRRW " in result.stdout  # the plugin's own trainers are still listed
