"""Every precompute cache under ``$nnUNet_preprocessed``, whether today's plans still use it, and removing stale ones.

A cache folder (``<dataset>/lossplug_cache/<plans>__<configuration>__<kind>__<hash>``, :mod:`.cache`) is *valid*
when its ``cache_key.json`` matches the key today's plans, dataset.json and configuration give (the map kind's
own part of the key aside: a trainer may use a kind with other parameters), and *stale* when the plans file or
the configuration is gone or the key differs (a new spacing, other labels, a renamed dataset). A folder is
*the plugin's* only when its ``cache_key.json`` is a key the plugin writes and every entry in it is a regular
file with a name the plugin gives (:func:`~.cache.is_cache_file_name`); anything else is listed and never removed.

:func:`remove_cache` removes only a stale folder of the plugin's, file by file (never ``rmtree``), under the
cache's build lock taken without waiting, and never through a symbolic link: caches reached through a link
(a ``lossplug_cache`` on a scratch disk) are listed but not removed.
"""

from __future__ import annotations

import json
import os
import stat
from dataclasses import dataclass
from pathlib import Path

from batchgenerators.utilities.file_and_folder_operations import load_json

from nnunet_lossplug.nnunet.map_cache.atomic import check_replaceable, file_lock, read_bytes
from nnunet_lossplug.nnunet.map_cache.cache import CACHE_DIRNAME, CaseCache, is_cache_file_name
from nnunet_lossplug.nnunet.map_cache.source import PreprocessedSource

#: the fields of every cache_key.json the plugin writes
KEY_FIELDS = frozenset({"dataset", "plans_identifier", "configuration", "data_identifier", "plans_fingerprint",
                        "num_classes", "codec"})

VALID, STALE, FOREIGN = "valid", "stale", "not the plugin's"


@dataclass(frozen=True)
class CacheFolder:
    """One folder under a ``lossplug_cache``: what it holds and whether today's plans use it."""

    folder: Path
    dataset: str
    plans: str
    configuration: str
    kind: str
    size_bytes: int
    state: str  # VALID, STALE or FOREIGN
    reason: str  # why stale or not the plugin's ("" when valid)
    via_link: bool  # reached through a symbolic link (listed, never removed)

    @property
    def lock_path(self) -> Path:
        return self.folder.parent / f".{self.folder.name}.lock"

    @property
    def removable(self) -> bool:
        return self.state == STALE and not self.via_link


def _entries(folder: Path) -> tuple[int, str]:
    """``(bytes, problem)`` of a cache folder's entries; ``problem`` names the first entry the plugin did not make."""
    size = 0
    for entry in os.scandir(folder):
        info = entry.stat(follow_symlinks=False)
        if not stat.S_ISREG(info.st_mode):
            return size, f"{entry.name} is not a regular file"
        if not is_cache_file_name(entry.name):
            return size, f"it holds {entry.name}, a file the plugin does not write"
        size += info.st_size
    return size, ""


def _expected_key(dataset_folder: Path, key: dict) -> tuple[dict | None, str]:
    """The key today's plans give the cache ``key`` describes (its codec kept), or ``(None, why it is stale)``."""
    plans_file = dataset_folder / f"{key['plans_identifier']}.json"
    if not plans_file.is_file():
        return None, f"the plans {plans_file.name} are gone"
    plans = load_json(str(plans_file))
    if key["configuration"] not in plans.get("configurations", {}):
        return None, f"the configuration {key['configuration']} is no longer in {plans_file.name}"
    source = PreprocessedSource(plans.get("dataset_name", dataset_folder.name), key["plans_identifier"],
                                key["configuration"], dataset_folder, plans,
                                load_json(str(dataset_folder / "dataset.json")))
    return {**CaseCache(source, None).key, "codec": key["codec"]}, ""


def describe(folder: Path, via_link: bool) -> CacheFolder:
    """A :class:`CacheFolder` for one entry of a ``lossplug_cache``."""
    parts = folder.name.rsplit("__", 2)
    kind = parts[1] if len(parts) == 3 else "?"
    head = parts[0].split("__") if len(parts) == 3 else ["?", "?"]
    plans, configuration = "__".join(head[:-1]) or "?", head[-1]
    dataset = folder.parent.parent.name

    def entry(state: str, reason: str, size: int = 0, **names: str) -> CacheFolder:
        return CacheFolder(folder, names.get("dataset", dataset), names.get("plans", plans),
                           names.get("configuration", configuration), kind, size, state, reason, via_link)

    if folder.is_symlink() or not folder.is_dir():
        return entry(FOREIGN, "a symbolic link or not a folder")
    size, problem = _entries(folder)
    if problem:
        return entry(FOREIGN, problem, size)
    try:
        key = json.loads(read_bytes(folder / "cache_key.json"))
    except (OSError, ValueError, RuntimeError):
        return entry(FOREIGN, "no readable cache_key.json", size)
    if not isinstance(key, dict) or set(key) != KEY_FIELDS:
        return entry(FOREIGN, "cache_key.json is not a key the plugin writes", size)
    names = {"dataset": str(key["dataset"]), "plans": str(key["plans_identifier"]),
             "configuration": str(key["configuration"])}
    try:
        expected, why = _expected_key(folder.parent.parent, key)
    except Exception as err:  # noqa: BLE001 - unreadable plans, an unsupported label set-up: judged by hand
        return entry(FOREIGN, f"today's plans cannot be read ({type(err).__name__}: {err})", size, **names)
    if expected is None:
        return entry(STALE, why, size, **names)
    if expected != key:
        changed = sorted(field for field in KEY_FIELDS if expected.get(field) != key.get(field))
        return entry(STALE, f"made for other plans: {', '.join(changed)} changed", size, **names)
    return entry(VALID, "", size, **names)


def find_caches(preprocessed: Path, dataset: str | None = None) -> list[CacheFolder]:
    """Every folder under ``preprocessed/*/lossplug_cache`` (only ``dataset``'s with a name), sorted."""
    found = []
    for dataset_folder in sorted(preprocessed.iterdir()):
        if dataset is not None and dataset_folder.name != dataset:
            continue
        base = dataset_folder / CACHE_DIRNAME
        if not base.is_dir():
            continue
        via_link = dataset_folder.is_symlink() or base.is_symlink()
        for folder in sorted(base.iterdir()):
            if not folder.name.startswith("."):  # the build locks
                found.append(describe(folder, via_link))
    return found


def remove_cache(cache: CacheFolder) -> int:
    """Remove a stale cache of the plugin's file by file, then its folder and lock; returns the bytes freed.

    Raises :class:`BlockingIOError` when a build holds its lock, and :class:`ValueError` when the folder is not
    (or no longer) a stale cache of the plugin's reached without a link.
    """
    if not cache.removable:
        raise ValueError(f"{cache.folder} is not a stale cache of the plugin's ({cache.state}: {cache.reason})")
    with file_lock(cache.lock_path, wait=False):
        current = describe(cache.folder, cache.via_link)  # checked again under the lock
        if not current.removable:
            raise ValueError(f"{cache.folder} changed: {current.state} ({current.reason})")
        freed = 0
        for entry in list(cache.folder.iterdir()):
            check_replaceable(entry)
            freed += os.lstat(entry).st_size
            entry.unlink()
        cache.folder.rmdir()
        check_replaceable(cache.lock_path)
        cache.lock_path.unlink(missing_ok=True)
    return freed
