"""Atomic file writes and an inter-process lock for the precompute cache.

A reader never sees a half-written file: every file is written under a temporary name in the same folder
and moved into place with :func:`os.replace`, which is atomic on POSIX and Windows file systems.
"""

from __future__ import annotations

import contextlib
import json
import os
import secrets
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np


def _create_temporary_sibling(target: Path) -> Path:
    """Create an empty, uniquely named hidden file beside ``target``.

    Unlike :func:`tempfile.mkstemp` (mode 0600), the file gets the mode ``open()`` would give it (0666 less the
    umask), so a cache in a shared ``nnUNet_preprocessed`` folder stays readable by the other users of the group.
    """
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_BINARY", 0)
    for _ in range(100):
        tmp = target.parent / f".{target.name}.{secrets.token_hex(4)}.tmp"
        try:
            os.close(os.open(tmp, flags, 0o666))
            return tmp
        except FileExistsError:
            continue
    raise FileExistsError(f"Could not create a temporary file beside {target}; remove stale .*.tmp files there.")


@contextlib.contextmanager
def _temporary_path(target: Path) -> Iterator[Path]:
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = _create_temporary_sibling(target)
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
