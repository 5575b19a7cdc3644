"""The dataset preprocessing hook: RW maps and class statistics computed once, beside nnU-Net's data.

``nnunet-lossplug precompute -d DATASET -c CONFIGURATION`` (or a trainer that needs maps, on its first
start) reads every preprocessed case of the configuration, computes the requested RW maps on the **whole
3D case** with the case's preprocessed spacing (Valverde & Tohka 2022 Sec. 4: maps on the 3D images, 2D models on
slices) and the class voxel counts, and writes them to a sibling folder of nnU-Net's data::

    nnUNet_preprocessed/DatasetXXX/lossplug_cache/<plans>__<configuration>__<kind>__<hash>/
        cache_key.json        what produced the folder (dataset, plans, configuration, map kind and code)
        <case>.npy            encoded map channels, float16 (see nnunet/codecs/)
        <case>.json           the case's fingerprint (segmentation hash and file stats), class voxel counts

The hash in the folder name covers everything that determines the stored values, so a different plan,
configuration, map kind or map parameter never reads another's files; ``cache_key.json`` is checked too.
Per case, the sidecar records the segmentation it was computed from: a case whose segmentation changed
(re-preprocessing with other data) is recomputed, a case with no sidecar or a truncated map file (a crash
mid-write cannot leave one, writes are atomic, but a disk can) is recomputed, and nothing is used unchecked:
the sidecar records a content hash of the map file (:mod:`.integrity`), verified for every case each time the
hook runs (``precompute`` and every training start), so a map damaged at unchanged size, or another
case's map copied over it, is recomputed too. Builds hold a file lock, so two trainings starting at once
compute each case once. A worker process that dies (a signal, the out-of-memory killer) ends the build with
:class:`WorkerDiedError` naming the case; finished cases are kept and the next run computes the rest. An
incomplete cache in a folder this user cannot write gives :class:`CacheNotWritableError`, naming the missing
cases and the command for someone with write access; a dangling symbolic link on the way to the cache folder
is named with its missing target. Ctrl-C or SIGTERM ends a build with :class:`BuildInterrupted` (finished cases
kept, the command that resumes); a full disk or a file-size limit with :class:`MapCacheError` naming the case and
the file, whose partial write is removed.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from tqdm import tqdm

from nnunet_lossplug.maps.regions import region_masks
from nnunet_lossplug.nnunet.codecs.softmax import MapCodec
from nnunet_lossplug.nnunet.errors import BuildInterrupted, CacheNotWritableError, MapCacheError, WorkerDiedError
from nnunet_lossplug.nnunet.map_cache.atomic import (
    DiskFullError,
    check_replaceable,
    file_lock,
    foreign_file,
    is_regular_file,
    read_bytes,
    write_json_atomic,
    write_npy_atomic,
)
from nnunet_lossplug.nnunet.map_cache.integrity import file_digest, load_checked_map
from nnunet_lossplug.nnunet.map_cache.source import PreprocessedSource
from nnunet_lossplug.nnunet.map_cache.worker_pool import PoolWorkerDied, describe_exit, imap_unordered

CACHE_DIRNAME = "lossplug_cache"
STATISTICS_NAME = "statistics"





def is_cache_file_name(name: str) -> bool:
    """Whether ``name`` is one the plugin gives a file of a cache folder (``cache_key.json``, ``<case>.npy`` /
    ``.json``, ``.<name>.<hex>.tmp`` of an interrupted write)."""
    return name.endswith((".npy", ".json")) or (name.startswith(".") and name.endswith(".tmp"))


def _fix_command(source: PreprocessedSource, kind: str, force: bool = True) -> str:
    """The CLI call that rebuilds one cache; ``kind`` is a map kind name or ``none`` (class statistics only)."""
    return (
        f"nnunet-lossplug precompute -d {source.dataset_name} -c {source.configuration} "
        f"-p {source.plans_identifier} --maps {kind}" + (" --force" if force else "")
    )


def _short_hash(payload: dict) -> str:
    return hashlib.blake2b(json.dumps(payload, sort_keys=True).encode(), digest_size=6).hexdigest()


def segmentation_hash(seg: np.ndarray) -> str:
    """Content hash of a segmentation array (shape, dtype and bytes)."""
    digest = hashlib.blake2b(digest_size=16)
    digest.update(str((seg.shape, str(seg.dtype))).encode())
    digest.update(np.ascontiguousarray(seg).tobytes())
    return digest.hexdigest()


@dataclass(frozen=True)
class BuildSummary:
    """What one run of the hook did."""

    folder: Path
    cases_total: int
    cases_computed: int
    seconds: float
    bytes_written: int

    def line(self) -> str:
        """``name: up to date (12 cases) -> folder`` when nothing was computed, else what was computed, how fast."""
        if self.cases_computed == 0:
            return f"[nnunet-lossplug] {self.folder.name}: up to date ({self.cases_total} cases) -> {self.folder}"
        return (
            f"[nnunet-lossplug] {self.folder.name}: {self.cases_computed}/{self.cases_total} cases computed "
            f"in {self.seconds:.1f} s, {self.bytes_written / 2**20:.1f} MiB written -> {self.folder}"
        )


class CaseCache:
    """Per-case precomputed maps of one codec (or only the class statistics when ``codec`` is None)."""

    def __init__(self, source: PreprocessedSource, codec: MapCodec | None):
        self.source = source
        self.codec = codec
        self.kind_name = codec.name if codec is not None else STATISTICS_NAME
        self.key = {
            "dataset": source.dataset_name,
            "plans_identifier": source.plans_identifier,
            "configuration": source.configuration,
            "data_identifier": source.data_identifier,
            "plans_fingerprint": source.plans_fingerprint,
            "num_classes": source.num_classes,
            "codec": codec.identity() if codec is not None else STATISTICS_NAME,
        }
        name = f"{source.plans_identifier}__{source.configuration}__{self.kind_name}__{_short_hash(self.key)}"
        self.folder = source.preprocessed_base / CACHE_DIRNAME / name
        self._finished = 0  # cases the running build has finished (for the message of an interrupted build)

    # ---------------------------------------------------------------- paths
    def map_path(self, identifier: str) -> Path:
        return self.folder / f"{identifier}.npy"

    def sidecar_path(self, identifier: str) -> Path:
        return self.folder / f"{identifier}.json"

    def rebuild_command(self, force: bool = True) -> str:
        """The ``nnunet-lossplug precompute`` call that rebuilds this cache (``--maps none`` for statistics).

        ``force=False`` gives the call that completes it (missing, stale or damaged cases only).
        """
        return _fix_command(self.source, self.codec.name if self.codec is not None else "none", force)

    @property
    def stores_maps(self) -> bool:
        return self.codec is not None and self.codec.channels() > 0

    # ---------------------------------------------------------------- validity
    def _key_matches(self) -> bool:
        try:
            return json.loads(read_bytes(self.folder / "cache_key.json")) == self.key
        except (OSError, ValueError):  # missing or unreadable; a link or a device raises ForeignFileError
            return False

    def _read_sidecar(self, identifier: str) -> dict | None:
        try:
            return json.loads(read_bytes(self.sidecar_path(identifier)))
        except (OSError, ValueError):
            return None

    def case_is_valid(self, identifier: str) -> bool:
        """Sidecar present, segmentation unchanged, map file complete and of the recorded content hash."""
        sidecar = self._read_sidecar(identifier)
        if sidecar is None:
            return False
        if self.stores_maps:
            path = self.map_path(identifier)
            check_replaceable(path)  # a link or a device there is refused, never read
            if not is_regular_file(path) or os.lstat(path).st_size != sidecar.get("map_bytes"):
                return False
        if sidecar.get("seg_files") != self.source.segmentation_file_stats(identifier) and \
                sidecar.get("seg_hash") != segmentation_hash(self.source.load_segmentation(identifier)):
            return False  # files rewritten (re-preprocessing, unpacking) and the content differs too
        if self.stores_maps:
            try:
                return sidecar.get("map_hash") == file_digest(self.map_path(identifier))
            except OSError:
                return False
        return True

    def invalid_cases(self, identifiers: Iterable[str]) -> list[str]:
        if not self._key_matches():
            return list(identifiers)
        return [i for i in identifiers if not self.case_is_valid(i)]

    # ---------------------------------------------------------------- building
    def ensure(
        self, identifiers: Sequence[str] | None = None, num_processes: int = 2, force: bool = False,
        progress: bool = True,
    ) -> BuildSummary:
        """Compute every case that is missing, stale or (with ``force``) all of them; returns a summary.

        A valid cache is used without taking the lock, so a dataset folder that trainings may only read (a
        shared, precomputed ``nnUNet_preprocessed``) works; the check is repeated under the lock before building.
        Files of a folder whose ``cache_key.json`` does not match are deleted before anything is written, so an
        interrupted rebuild never leaves them beside the new key, where they would look valid.
        """
        identifiers = list(self.source.identifiers() if identifiers is None else identifiers)
        start = time.perf_counter()
        self._check_links()
        todo = list(identifiers) if force else self.invalid_cases(identifiers)
        if not todo:
            return BuildSummary(self.folder, len(identifiers), 0, time.perf_counter() - start, 0)
        self._finished = 0
        try:
            written, todo = self._build_locked(identifiers, todo, num_processes, force, progress)
        except KeyboardInterrupt as interrupt:
            raise BuildInterrupted(
                f"the '{self.kind_name}' cache of {self.source.dataset_name} / {self.source.configuration} was "
                f"interrupted after {self._finished} of {len(todo)} cases; the finished cases are kept in "
                f"{self.folder} (nothing half-written), and this command computes the rest: "
                f"{self.rebuild_command(force=False)}", getattr(interrupt, "signum", 2)) from None
        return BuildSummary(self.folder, len(identifiers), len(todo), time.perf_counter() - start, written)

    def _check_links(self) -> None:
        """Stop with the missing target of a dangling symbolic link ``lossplug_cache``; refuse a cache folder that
        is a link or not a folder (the plugin makes each one itself; ``lossplug_cache`` may link to a scratch disk).
        """
        base = self.source.preprocessed_base / CACHE_DIRNAME
        if base.is_symlink() and not base.exists():
            raise MapCacheError(
                f"{base} is a symbolic link to {os.path.realpath(base)}, which does not exist (a scratch disk "
                f"not mounted, a folder removed?). Create it (mkdir -p {os.path.realpath(base)}) or remove "
                f"the link, then run: {self.rebuild_command(force=False)}"
            )
        if self.folder.is_symlink() or (os.path.lexists(self.folder) and not self.folder.is_dir()):
            raise foreign_file(self.folder)

    def _build_locked(self, identifiers: list[str], todo: list[str], num_processes: int, force: bool,
                      progress: bool) -> tuple[int, list[str]]:
        """Take the build lock and compute what is still missing; returns (bytes written, cases computed)."""
        with contextlib.ExitStack() as stack:
            try:
                stack.enter_context(file_lock(self.source.preprocessed_base / CACHE_DIRNAME
                                              / f".{self.folder.name}.lock"))
            except OSError as err:
                raise self._not_writable(todo, len(identifiers), err) from err
            # another process may have built them while this one waited for the lock
            todo = list(identifiers) if force else self.invalid_cases(todo)
            written = 0
            if todo:
                if not self._key_matches():
                    self._remove_files()
                self.folder.mkdir(parents=True, exist_ok=True)
                self._check_links()  # made meanwhile by someone else?
                self._remove_partial_writes()  # of a build killed mid-write: no one else builds now
                write_json_atomic(self.folder / "cache_key.json", self.key)
                try:
                    written = self._compute(todo, num_processes, progress)
                finally:  # a worker stopped mid-write when another failed leaves its temporary file
                    self._remove_partial_writes()
        return written, todo

    def _remove_partial_writes(self) -> None:
        """Remove the ``.<name>.<hex>.tmp`` files of interrupted writes (called with the build lock held)."""
        for stale in self.folder.glob(".*.tmp"):
            check_replaceable(stale)
            stale.unlink(missing_ok=True)

    def _not_writable(self, todo: list[str], total: int, err: OSError) -> CacheNotWritableError:
        shown = ", ".join(todo[:5]) + (f" and {len(todo) - 5} more" if len(todo) > 5 else "")
        return CacheNotWritableError(
            f"The '{self.kind_name}' cache of {self.source.dataset_name} / {self.source.configuration} is "
            f"incomplete ({len(todo)} of {total} cases missing, stale or damaged: {shown}) and cannot be written "
            f"here ({err.strerror or err}: {err.filename or self.folder}). Someone with write access to "
            f"{self.source.preprocessed_base} must run: {self.rebuild_command(force=False)}"
        )

    def _remove_files(self) -> None:
        """Remove the files of another key: the plugin's own names only, each a regular file (else refused)."""
        if self.folder.is_dir():
            for path in self.folder.iterdir():
                if is_cache_file_name(path.name):
                    check_replaceable(path)
                    path.unlink()

    def _compute(self, identifiers: list[str], num_processes: int, progress: bool) -> int:
        bar = tqdm(total=len(identifiers), desc=f"lossplug {self.kind_name}", unit="case", disable=not progress)
        written = 0
        try:
            if num_processes <= 1 or len(identifiers) == 1 or os.name != "posix":
                for identifier in identifiers:
                    written += self.compute_case(identifier)
                    self._finished += 1
                    bar.update()
            else:
                # forked workers inherit this cache object, so users' map functions defined in trainer files
                # (which nnU-Net imports from a folder it then removes from sys.path) need no pickling
                try:
                    for nbytes in imap_unordered(self.compute_case, identifiers, num_processes):
                        written += nbytes
                        self._finished += 1
                        bar.update()
                except PoolWorkerDied as died:
                    raise WorkerDiedError(
                        f"A worker process of the precompute hook died while computing the '{self.kind_name}' "
                        f"map of case {died.task} ({describe_exit(died.exitcode)}; the out-of-memory killer "
                        f"sends SIGKILL: use fewer processes, -np 1 or nnUNet_def_n_proc=1, if memory is short). "
                        f"Finished cases are kept; complete the cache with: {self.rebuild_command(force=False)}"
                    ) from None
        finally:
            bar.close()
        return written

    def compute_case(self, identifier: str) -> int:
        """Compute and write one case; returns the bytes written."""
        try:
            return self._compute_case(identifier)
        except DiskFullError as err:
            raise MapCacheError(
                f"Writing case {identifier} of the '{self.kind_name}' cache failed: {err.strerror} ({err.filename}); "
                f"its partial file was removed and the finished cases are kept. Free space or raise the limit, "
                f"then run: {self.rebuild_command(force=False)}"
            ) from None

    def _compute_case(self, identifier: str) -> int:
        seg = self.source.load_segmentation(identifier)
        labels = self.source.labels_for_maps(seg, identifier)
        counts = np.bincount(labels.ravel(), minlength=self.source.num_classes)[: self.source.num_classes]
        sidecar = {
            "seg_hash": segmentation_hash(seg),
            "seg_files": self.source.segmentation_file_stats(identifier),
            "class_voxel_counts": [int(c) for c in counts],
            **_region_statistics(labels, self.source),
            "shape": list(labels.shape),
            "spacing": list(self.source.case_spacing(identifier)),
            "map_bytes": None,
        }
        written = 0
        if self.stores_maps:
            assert self.codec is not None
            encoded = self.codec.encode(labels, self.source.case_spacing(identifier))
            problem = self.codec.check_encoded(encoded)
            if problem is not None:
                raise MapCacheError(
                    f"The '{self.kind_name}' map function gives {problem} for case {identifier}; such a map would "
                    f"make the loss non-finite. Fix the map function (or the case's segmentation)."
                )
            sidecar["map_bytes"] = write_npy_atomic(self.map_path(identifier), encoded)
            sidecar["map_hash"] = file_digest(self.map_path(identifier))
            written += sidecar["map_bytes"]
        write_json_atomic(self.sidecar_path(identifier), sidecar)
        return written + os.lstat(self.sidecar_path(identifier)).st_size

    # ---------------------------------------------------------------- reading
    def load(self, identifier: str, spatial_shape: tuple[int, ...] | None = None) -> np.ndarray | None:
        """Memory-mapped encoded channels of one case, checked (:func:`~.integrity.load_checked_map`).

        None for a codec that stores nothing; a missing, unreadable, stale or out-of-range file stops with
        :class:`MapCacheError` naming the case and the command that rebuilds the cache.
        """
        if not self.stores_maps:
            return None
        try:
            return load_checked_map(self, identifier, spatial_shape)
        except MapCacheError:
            self.source.check_case_exists(identifier)  # a case the split lists but preprocessing no longer has
            raise

    def class_voxel_counts(self, identifiers: Iterable[str], key: str = "class_voxel_counts") -> np.ndarray:
        """Sum of the class voxel counts of ``identifiers`` (background = label 0 and nnU-Net's -1).

        Ignored voxels are not counted. ``key="region_voxel_counts"``: the voxel counts of nnU-Net's regions
        (region-based datasets); ``key="annotated_voxels"``: the number of annotated voxels.
        """
        total = None
        for identifier in identifiers:
            self.source.check_case_exists(identifier)  # listed by the split, deleted since: precompute cannot help
            sidecar = self._read_sidecar(identifier)
            if sidecar is None or key not in sidecar:
                raise MapCacheError(
                    f"No class statistics ({key}) for case {identifier} in {self.folder}. "
                    f"Run: {self.rebuild_command()}"
                )
            counts = np.atleast_1d(np.asarray(sidecar[key], dtype=np.int64))
            total = counts if total is None else total + counts
        if total is None:
            size = len(self.source.regions or ()) if key == "region_voxel_counts" else self.source.num_classes
            return np.zeros(1 if key == "annotated_voxels" else size, dtype=np.int64)
        return total


def _region_statistics(labels: np.ndarray, source: PreprocessedSource) -> dict:
    """Annotated voxels and, for region-based datasets, the voxel count of each region (docs/conventions.md#regions)."""
    annotated = labels != source.ignore_label if source.ignore_label is not None else np.ones(labels.shape, bool)
    statistics: dict = {"annotated_voxels": int(annotated.sum())}
    if source.regions is not None:
        masks = region_masks(labels, source.regions) & annotated
        statistics["region_voxel_counts"] = [int(m.sum()) for m in masks]
    return statistics
def precompute_caches(
    source: PreprocessedSource, codecs: Sequence[MapCodec | None], num_processes: int = 2, force: bool = False,
    progress: bool = True,
) -> list[BuildSummary]:
    """Run the hook for several map kinds (``None`` = class statistics only) and print one summary line each."""
    summaries = []
    for codec in codecs:
        summary = CaseCache(source, codec).ensure(num_processes=num_processes, force=force, progress=progress)
        print(summary.line(), flush=True)
        summaries.append(summary)
    return summaries
