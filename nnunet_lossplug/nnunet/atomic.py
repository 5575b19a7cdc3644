"""Atomic file writes and an inter-process lock for the precompute cache.

A reader never sees a half-written file: every file is written under a temporary name in the same folder
and moved into place with :func:`os.replace`, which is atomic on POSIX and Windows file systems.
"""

from __future__ import annotations

import contextlib
import json
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np


@contextlib.contextmanager
def _temporary_path(target: Path) -> Iterator[Path]:
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, name = tempfile.mkstemp(dir=target.parent, prefix=f".{target.name}.", suffix=".tmp")
    os.close(fd)
    tmp = Path(name)
    try:
        yield tmp
        os.replace(tmp, target)
    finally:
        if tmp.exists():
            tmp.unlink()


def write_json_atomic(path: Path, payload: Any) -> None:
    """Write ``payload`` as JSON to ``path`` atomically."""
    with _temporary_path(path) as tmp:
        tmp.write_text(json.dumps(payload, indent=1, sort_keys=True))


def write_npy_atomic(path: Path, array: np.ndarray) -> int:
    """Write ``array`` as ``.npy`` to ``path`` atomically; returns the file size in bytes."""
    with _temporary_path(path) as tmp:
        with open(tmp, "wb") as handle:
            np.save(handle, np.ascontiguousarray(array), allow_pickle=False)
        size = tmp.stat().st_size
    return size


@contextlib.contextmanager
def file_lock(path: Path) -> Iterator[None]:
    """Hold an exclusive advisory lock on ``path`` (created if needed) while the block runs.

    Two trainings that start at once on the same dataset serialise their cache builds: the second waits,
    then finds the cache valid. Where ``fcntl`` is unavailable (Windows) the block runs unlocked.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        import fcntl
    except ImportError:  # pragma: no cover - Windows
        yield
        return
    with open(path, "a") as handle:
        fcntl.flock(handle.fileno(), fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle.fileno(), fcntl.LOCK_UN)
