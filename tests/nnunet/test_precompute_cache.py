"""The precompute hook's cache: validity, invalidation, atomic writes, concurrency, statistics, CLI.

Every test runs on the session's tiny dataset preprocessed by nnU-Net (``preprocessed_dataset``) and starts
from an empty cache (``fresh_cache``). Expected values are computed here independently of the cache code:
maps with :func:`nnunet_lossplug.maps.rw_map` on segmentations read with ``blosc2`` directly, class counts
with ``np.bincount``, spacings from the synthetic dataset's specification.
"""

from __future__ import annotations

import copy
import dataclasses
import importlib
import json
import multiprocessing
import os
import shutil
import stat
import subprocess
import sys
import time
from pathlib import Path

import blosc2
import numpy as np
import pytest
from helpers.nnunet_runs import DATASET_ID, TINY_SPEC, run_cli

from nnunet_lossplug.maps import get_map_kind, rw_map
from nnunet_lossplug.nnunet import CaseCache, MapCacheError, PreprocessedSource
from nnunet_lossplug.nnunet.codecs.softmax import codec_for
from nnunet_lossplug.nnunet.map_cache.atomic import write_json_atomic, write_npy_atomic

pytestmark = pytest.mark.integration

NUM_CLASSES = 4  # background, RV, MYO, LV (nnunet_lossplug.demo.synthetic.LABELS)
# float16 storage of q = 1 - d/max d in [0, 1): absolute rounding error at most 2^-12
FLOAT16_ATOL = 2.0**-11


def _source(configuration: str = "2d") -> PreprocessedSource:
    return PreprocessedSource.from_names(DATASET_ID, configuration)


def _rrw_cache(source: PreprocessedSource) -> CaseCache:
    return CaseCache(source, codec_for("rrw", NUM_CLASSES))


def _labels_from_disk(source: PreprocessedSource, identifier: str) -> np.ndarray:
    """The preprocessed segmentation read with blosc2 itself, -1 (outside nnU-Net's crop) as background."""
    seg = np.asarray(blosc2.open(str(source.data_folder / f"{identifier}_seg.b2nd"), mode="r")[:])
    labels = seg[0].astype(np.int64)
    labels[labels < 0] = 0
    return labels


def _file_identity(path: Path) -> tuple[int, int]:
    """(inode, mtime_ns): every atomic rewrite (``os.replace`` of a new file) changes the inode."""
    st = path.stat()
    return st.st_ino, st.st_mtime_ns


@pytest.fixture
def source_2d(fresh_cache) -> PreprocessedSource:
    return _source("2d")


# ---------------------------------------------------------------------------------------------- validity
@pytest.mark.parametrize("configuration", ["2d", "3d_fullres"])
def test_built_cache_is_valid_and_holds_rrw_of_the_whole_case(fresh_cache, configuration):
    source = _source(configuration)
    cache = _rrw_cache(source)
    ids = source.identifiers()
    assert len(ids) == TINY_SPEC.num_training
    assert cache.invalid_cases(ids) == ids  # nothing built yet

    summary = cache.ensure(num_processes=1, progress=False)
    assert (summary.cases_total, summary.cases_computed) == (len(ids), len(ids))
    assert summary.bytes_written > 0
    assert cache.folder.parent == fresh_cache
    assert cache.folder.name.startswith(f"nnUNetPlans__{configuration}__rrw__")
    assert json.loads((cache.folder / "cache_key.json").read_text()) == cache.key
    assert cache.invalid_cases(ids) == []
    assert cache.ensure(num_processes=1, progress=False).cases_computed == 0

    for identifier in ids[:3]:
        labels = _labels_from_disk(source, identifier)
        sidecar = json.loads(cache.sidecar_path(identifier).read_text())
        # the synthetic data already has nnU-Net's target spacing: maps use (10, 1.5, 1.5) mm in both configurations
        assert sidecar["spacing"] == pytest.approx(list(TINY_SPEC.spacing))
        assert sidecar["shape"] == list(labels.shape)
        stored = cache.load(identifier)
        assert stored.dtype == np.float16 and stored.shape == (1, *labels.shape)
        z = rw_map(labels, NUM_CLASSES, "rrw", spacing=TINY_SPEC.spacing)
        own = np.take_along_axis(z, labels[None], axis=0)[0]  # -d/max d of each voxel's own class
        np.testing.assert_allclose(stored[0].astype(np.float64), 1.0 + own, rtol=0, atol=FLOAT16_ATOL)
        assert float(stored.min()) == 0.0  # the deepest voxel of every class: q = 1 - d/max d = 0 exactly


def test_map_kind_and_parameters_each_get_their_own_folder(source_2d):
    ids = source_2d.identifiers()
    rrw = _rrw_cache(source_2d)
    boundary = CaseCache(source_2d, codec_for("boundary", NUM_CLASSES))
    emphasis = get_map_kind("rrw").with_params(class_values=(1.0, 2.0, 2.0, 2.0))
    emphasised = CaseCache(source_2d, codec_for(emphasis, NUM_CLASSES))
    stats = CaseCache(source_2d, None)
    folders = {c.folder for c in (rrw, boundary, emphasised, stats)}
    assert len(folders) == 4
    assert boundary.folder.name.startswith("nnUNetPlans__2d__boundary__")
    assert stats.folder.name.startswith("nnUNetPlans__2d__statistics__")

    rrw.ensure(num_processes=1, progress=False)
    assert boundary.invalid_cases(ids) == ids and emphasised.invalid_cases(ids) == ids
    assert boundary.ensure(num_processes=1, progress=False).cases_computed == len(ids)
    assert rrw.invalid_cases(ids) == [] and boundary.invalid_cases(ids) == []
    # RW-Boundary stores K unsigned distance channels (float16 of exact distances in mm)
    labels = _labels_from_disk(source_2d, ids[0])
    expected = np.abs(rw_map(labels, NUM_CLASSES, "boundary", spacing=TINY_SPEC.spacing))
    np.testing.assert_allclose(boundary.load(ids[0]).astype(np.float64), expected, rtol=2.0**-10, atol=1e-6)


# ---------------------------------------------------------------------------------------------- invalidation
def test_edited_or_corrupt_cache_key_invalidates_every_case(source_2d):
    cache = _rrw_cache(source_2d)
    ids = source_2d.identifiers()
    cache.ensure(num_processes=1, progress=False)
    key_file = cache.folder / "cache_key.json"

    edited = dict(cache.key, plans_fingerprint="0123456789abcdef")
    key_file.write_text(json.dumps(edited))
    assert cache.invalid_cases(ids) == ids
    assert cache.ensure(num_processes=1, progress=False).cases_computed == len(ids)
    assert json.loads(key_file.read_text()) == cache.key and cache.invalid_cases(ids) == []

    key_file.write_text(key_file.read_text()[:20])  # truncated JSON
    assert cache.invalid_cases(ids) == ids
    key_file.unlink()
    assert cache.invalid_cases(ids) == ids


def test_other_plans_give_another_folder_and_refuse_a_copied_cache(source_2d, monkeypatch):
    cache = _rrw_cache(source_2d)
    ids = source_2d.identifiers()
    cache.ensure(num_processes=1, progress=False)

    plans = copy.deepcopy(source_2d.plans)
    plans["configurations"]["2d"]["spacing"] = [1.0, 1.0]  # a re-plan with another target spacing
    other_source = dataclasses.replace(source_2d, plans=plans)
    assert other_source.plans_fingerprint != source_2d.plans_fingerprint
    other = _rrw_cache(other_source)
    assert other.folder != cache.folder
    assert other.invalid_cases(ids) == ids

    # even a cache copied under the other key's folder name is not trusted: cache_key.json is compared
    shutil.copytree(cache.folder, other.folder)
    assert other.invalid_cases(ids) == ids
    assert cache.invalid_cases(ids) == []

    # and a rebuild interrupted after two cases leaves none of the copied files looking valid beside the new key
    original = CaseCache.compute_case

    def crash_on_third(self, identifier):
        if identifier == ids[2]:
            raise KeyboardInterrupt("killed")
        return original(self, identifier)

    monkeypatch.setattr(CaseCache, "compute_case", crash_on_third)
    with pytest.raises(KeyboardInterrupt):
        other.ensure(num_processes=1, progress=False)
    monkeypatch.undo()
    assert json.loads((other.folder / "cache_key.json").read_text()) == other.key
    assert other.invalid_cases(ids) == ids[2:]
    assert sorted(p.name for p in other.folder.glob("*.json")) == sorted(
        ["cache_key.json", f"{ids[0]}.json", f"{ids[1]}.json"])


def test_a_valid_cache_is_used_without_the_lock(source_2d, monkeypatch):
    """Trainings on a shared, read-only nnUNet_preprocessed must not need write access when nothing is stale."""
    # the package exports a function of the same name, so fetch the module itself
    precompute_module = importlib.import_module("nnunet_lossplug.nnunet.map_cache.cache")
    cache = _rrw_cache(source_2d)
    ids = source_2d.identifiers()
    cache.ensure(num_processes=1, progress=False)

    def no_write_access(path):
        raise PermissionError(f"[Errno 13] Permission denied: '{path}'")

    monkeypatch.setattr(precompute_module, "file_lock", no_write_access)
    assert cache.ensure(num_processes=1, progress=False).cases_computed == 0
    cache.sidecar_path(ids[0]).unlink()
    with pytest.raises(PermissionError):
        cache.ensure(num_processes=1, progress=False)  # something to build: the lock is needed


def test_changed_segmentation_recomputes_that_case_only(source_2d, tmp_path):
    from nnunetv2.training.dataloading.nnunet_dataset import infer_dataset_class

    cache = _rrw_cache(source_2d)
    stats = CaseCache(source_2d, None)
    ids = source_2d.identifiers()
    changed = ids[2]
    for c in (cache, stats):
        c.ensure(num_processes=1, progress=False)
    before = {i: _file_identity(cache.sidecar_path(i)) for i in ids}
    map_before = {i: _file_identity(cache.map_path(i)) for i in ids}

    dataset_class = infer_dataset_class(str(source_2d.data_folder))
    truncated = source_2d.data_folder / changed
    backup = tmp_path
    case_files = [Path(f"{truncated}.b2nd"), Path(f"{truncated}_seg.b2nd"), Path(f"{truncated}.pkl")]
    for path in case_files:
        shutil.copy2(path, backup / path.name)
    try:
        data, seg, _, properties = dataset_class(str(source_2d.data_folder), [changed]).load_case(changed)
        new_seg = np.asarray(seg[:]).copy()
        myo, lv = new_seg == 2, new_seg == 3
        new_seg[myo], new_seg[lv] = 3, 2  # swap MYO and LV: same shape, other labels and counts
        data_array = np.asarray(data[:])
        chunks, blocks, seg_chunks, seg_blocks = data.chunks, data.blocks, seg.chunks, seg.blocks
        del data, seg
        for path in case_files[:2]:
            path.unlink()  # blosc2 refuses to overwrite
        dataset_class.save_case(data_array, new_seg, properties, str(truncated), chunks=chunks, blocks=blocks,
                                chunks_seg=seg_chunks, blocks_seg=seg_blocks)

        assert cache.invalid_cases(ids) == [changed]
        assert stats.invalid_cases(ids) == [changed]
        assert cache.ensure(num_processes=1, progress=False).cases_computed == 1
        assert stats.ensure(num_processes=1, progress=False).cases_computed == 1
        for identifier in ids:
            unchanged = identifier != changed
            assert (_file_identity(cache.sidecar_path(identifier)) == before[identifier]) == unchanged
            assert (_file_identity(cache.map_path(identifier)) == map_before[identifier]) == unchanged

        labels = _labels_from_disk(source_2d, changed)
        assert np.array_equal(labels == 3, myo[0])
        counts = json.loads(stats.sidecar_path(changed).read_text())["class_voxel_counts"]
        assert counts == np.bincount(labels.ravel(), minlength=NUM_CLASSES).tolist()
        z = rw_map(labels, NUM_CLASSES, "rrw", spacing=TINY_SPEC.spacing)
        own = np.take_along_axis(z, labels[None], axis=0)[0]
        np.testing.assert_allclose(cache.load(changed)[0].astype(np.float64), 1.0 + own, atol=FLOAT16_ATOL, rtol=0)
    finally:
        for path in case_files:
            path.unlink(missing_ok=True)
            shutil.copy2(backup / path.name, path)
    # the original segmentation is back: that case is stale again, the others stay valid
    assert cache.invalid_cases(ids) == [changed]


def test_truncated_or_missing_files_are_invalid_and_load_names_the_fix(source_2d):
    cache = _rrw_cache(source_2d)
    ids = source_2d.identifiers()
    cache.ensure(num_processes=1, progress=False)
    truncated, no_sidecar, no_map = ids[0], ids[1], ids[2]

    path = cache.map_path(truncated)
    content = path.read_bytes()
    path.write_bytes(content[: len(content) // 2])  # header intact, data cut (a full disk, a copy interrupted)
    cache.sidecar_path(no_sidecar).unlink()
    cache.map_path(no_map).unlink()
    assert cache.invalid_cases(ids) == [truncated, no_sidecar, no_map]

    for identifier in (truncated, no_map):
        with pytest.raises(MapCacheError) as raised:
            cache.load(identifier)
        message = str(raised.value)
        assert identifier in message
        assert f"nnunet-lossplug precompute -d {source_2d.dataset_name} -c 2d -p nnUNetPlans --maps rrw --force" \
            in message

    cache.sidecar_path(ids[3]).write_text('{"seg_hash": ')  # corrupt sidecar
    assert cache.invalid_cases(ids) == [truncated, no_sidecar, no_map, ids[3]]
    assert cache.ensure(num_processes=1, progress=False).cases_computed == 4
    assert cache.invalid_cases(ids) == []
    assert path.read_bytes() == content


# ---------------------------------------------------------------------------------------------- atomic writes
def test_leftover_temporary_files_are_ignored(source_2d):
    cache = _rrw_cache(source_2d)
    ids = source_2d.identifiers()
    cache.ensure(num_processes=1, progress=False)
    good = cache.load(ids[0]).copy()
    # what a crash between writing and renaming leaves: hidden temporary siblings with garbage
    (cache.folder / f".{ids[0]}.npy.k3j4l5.tmp").write_bytes(b"\x93NUMPY garbage")
    (cache.folder / f".{ids[0]}.json.a1b2c3.tmp").write_text('{"seg_hash": "x"')
    (cache.folder / ".cache_key.json.zz.tmp").write_text("{")
    assert cache.invalid_cases(ids) == []
    assert cache.ensure(num_processes=1, progress=False).cases_computed == 0
    np.testing.assert_array_equal(cache.load(ids[0]), good)


_WRITE_OVER_THE_LIMIT = """
import sys
import numpy as np
from pathlib import Path
from nnunet_lossplug.nnunet.map_cache.atomic import DiskFullError, write_npy_atomic
try:
    write_npy_atomic(Path(sys.argv[1]), np.zeros(64 * 1024, dtype=np.float16))  # 128 KiB
except DiskFullError as err:
    print(err.strerror, "|", err.filename)
"""


@pytest.mark.skipif(not hasattr(os, "fork"), reason="sets a file-size limit in a child process (POSIX)")
def test_interrupted_write_keeps_the_old_file_and_leaves_no_temporary(tmp_path):
    """A real file-size limit (what ``ulimit -f`` sets) stops a write midway, as a full disk does."""
    import resource

    target = tmp_path / "case.npy"
    write_npy_atomic(target, np.arange(6, dtype=np.float16))
    old = target.read_bytes()

    def limited() -> None:
        resource.setrlimit(resource.RLIMIT_FSIZE, (32 * 1024, 32 * 1024))

    result = subprocess.run([sys.executable, "-c", _WRITE_OVER_THE_LIMIT, str(target)], capture_output=True,
                            text=True, timeout=120, preexec_fn=limited)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip().startswith("file too large") and str(target) in result.stdout, result.stdout
    assert target.read_bytes() == old
    assert sorted(p.name for p in tmp_path.iterdir()) == ["case.npy"]

    size = write_npy_atomic(target, np.ones((2, 3), dtype=np.float16))
    assert size == target.stat().st_size
    np.testing.assert_array_equal(np.load(target), np.ones((2, 3), dtype=np.float16))


def test_atomic_files_get_ordinary_permissions(tmp_path):
    """A shared nnUNet_preprocessed folder: the cache must be readable like files written with open()."""
    plain = tmp_path / "plain.txt"
    plain.write_text("x")
    write_json_atomic(tmp_path / "a.json", {"a": 1})
    write_npy_atomic(tmp_path / "a.npy", np.zeros(2))
    expected = stat.S_IMODE(plain.stat().st_mode)
    assert stat.S_IMODE((tmp_path / "a.json").stat().st_mode) == expected
    assert stat.S_IMODE((tmp_path / "a.npy").stat().st_mode) == expected


def test_crash_mid_build_keeps_finished_cases_and_rebuilds_the_rest(source_2d, monkeypatch):
    cache = _rrw_cache(source_2d)
    ids = source_2d.identifiers()
    failing = ids[4]
    original = CaseCache.compute_case

    def crash_on_one(self, identifier):
        if identifier == failing:
            raise KeyboardInterrupt("training killed")
        return original(self, identifier)

    monkeypatch.setattr(CaseCache, "compute_case", crash_on_one)
    with pytest.raises(KeyboardInterrupt):
        cache.ensure(num_processes=1, progress=False)
    monkeypatch.undo()
    assert cache.invalid_cases(ids) == ids[4:]  # computed in order; the rest never started
    assert cache.ensure(num_processes=1, progress=False).cases_computed == len(ids) - 4
    assert cache.invalid_cases(ids) == []


# ---------------------------------------------------------------------------------------------- concurrency
def _ensure_in_child(configuration: str, log_file: str, barrier, results) -> None:
    """Child process: log every case computed (O_APPEND lines), slow each one down, build after the barrier."""
    original = CaseCache.compute_case

    def logged(self, identifier):
        with open(log_file, "a") as handle:
            handle.write(f"{os.getpid()} {identifier}\n")
        time.sleep(0.05)
        return original(self, identifier)

    CaseCache.compute_case = logged
    cache = _rrw_cache(_source(configuration))
    barrier.wait(timeout=60)
    summary = cache.ensure(num_processes=1, progress=False)
    results.put(summary.cases_computed)


def test_two_processes_building_at_once_compute_each_case_once(source_2d, tmp_path):
    ctx = multiprocessing.get_context("fork")
    barrier, results = ctx.Barrier(2), ctx.Queue()
    log_file = tmp_path / "computed.log"
    children = [ctx.Process(target=_ensure_in_child, args=("2d", str(log_file), barrier, results))
                for _ in range(2)]
    for child in children:
        child.start()
    for child in children:
        child.join(timeout=120)
    assert [child.exitcode for child in children] == [0, 0]
    computed = sorted(results.get(timeout=5) for _ in children)
    ids = source_2d.identifiers()
    assert computed == [0, len(ids)]  # the second waited on the lock, then found the cache valid
    lines = log_file.read_text().split()
    assert sorted(lines[1::2]) == ids  # every case written exactly once
    assert _rrw_cache(source_2d).invalid_cases(ids) == []


def test_two_worker_processes_write_the_same_bytes_as_one(source_2d):
    cache = _rrw_cache(source_2d)
    ids = source_2d.identifiers()
    cache.ensure(num_processes=1, progress=False)
    serial = {p.name: p.read_bytes() for p in sorted(cache.folder.iterdir())}
    summary = cache.ensure(num_processes=2, force=True, progress=False)
    assert summary.cases_computed == len(ids)
    parallel = {p.name: p.read_bytes() for p in sorted(cache.folder.iterdir())}
    assert sorted(serial) == sorted(parallel) == sorted(
        ["cache_key.json"] + [f"{i}.npy" for i in ids] + [f"{i}.json" for i in ids])
    for name in serial:
        assert parallel[name] == serial[name], name


# ---------------------------------------------------------------------------------------------- statistics
def test_class_voxel_counts_equal_bincount_of_the_preprocessed_segmentations(source_2d):
    stats = CaseCache(source_2d, None)
    ids = source_2d.identifiers()
    with pytest.raises(MapCacheError) as raised:
        stats.class_voxel_counts(ids)  # nothing built: an explicit error, not zeros
    # the named command must be one the CLI accepts: statistics alone are '--maps none'
    assert f"nnunet-lossplug precompute -d {source_2d.dataset_name} -c 2d -p nnUNetPlans --maps none --force" \
        in str(raised.value)
    stats.ensure(num_processes=2, progress=False)
    assert not stats.stores_maps and stats.load(ids[0]) is None
    assert sorted(p.name for p in stats.folder.glob("*.npy")) == []

    per_case = {i: np.bincount(_labels_from_disk(source_2d, i).ravel(), minlength=NUM_CLASSES) for i in ids}
    for identifier, counts in per_case.items():
        assert len(counts) == NUM_CLASSES and (counts[1:] > 0).all()
        assert stats.class_voxel_counts([identifier]).tolist() == counts.tolist()
    subset = ids[::2]
    assert stats.class_voxel_counts(subset).tolist() == np.sum([per_case[i] for i in subset], axis=0).tolist()
    total = stats.class_voxel_counts(ids)
    assert total.sum() == len(ids) * int(np.prod(TINY_SPEC.shape))


# ---------------------------------------------------------------------------------------------- CLI
def test_cli_precompute_prints_one_summary_line_per_kind(preprocessed_dataset, fresh_cache):
    result = run_cli(["nnunet-lossplug", "precompute", "-d", str(DATASET_ID), "-c", "2d", "--maps", "rrw,boundary"],
                     preprocessed_dataset.folders.environ())
    lines = [line for line in result.stdout.splitlines() if line.startswith("[nnunet-lossplug]")]
    assert len(lines) == 3, result.stdout
    for line, kind in zip(lines, ("statistics", "rrw", "boundary")):
        assert f"nnUNetPlans__2d__{kind}__" in line
        assert f"{TINY_SPEC.num_training}/{TINY_SPEC.num_training} cases computed" in line
        assert "MiB written" in line and str(fresh_cache) in line
    # the console script and this process agree on every cache key: nothing left to compute here
    source = _source("2d")
    for codec in (None, codec_for("rrw", NUM_CLASSES), codec_for("boundary", NUM_CLASSES)):
        assert CaseCache(source, codec).ensure(num_processes=1, progress=False).cases_computed == 0
