"""Atomic file writes and an inter-process lock for the precompute cache.

A reader never sees a half-written file: every file is written under a temporary name in the same folder
and moved into place with :func:`os.replace`, which is atomic on POSIX and Windows file systems.
"""

from __future__ import annotations

import contextlib
import errno
import json
import os
import secrets
import socket
import sys
import time
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


#: the errors of a write that found no room: disk full, file-size limit (``ulimit -f``), disk quota
NO_ROOM = {errno.ENOSPC: "no space left on device", errno.EFBIG: "file too large (a file-size limit, ulimit -f)",
           errno.EDQUOT: "disk quota exceeded"}


class NoRoomError(OSError):
    """A write that found no room; ``filename`` is the file being written, ``strerror`` what ran out."""


@contextlib.contextmanager
def _temporary_path(target: Path) -> Iterator[Path]:
    """Yield a temporary sibling of ``target``, moved onto it when the block ends; removed if the block fails.

    A write that runs out of room raises :class:`NoRoomError` naming ``target`` (the partial file is removed).
    """
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = _create_temporary_sibling(target)
    try:
        yield tmp
        os.replace(tmp, target)
    except OSError as err:
        if err.errno in NO_ROOM:
            raise NoRoomError(err.errno, NO_ROOM[err.errno], str(target)) from err
        raise
    finally:
        if tmp.exists():
            tmp.unlink()


def write_json_atomic(path: Path, payload: Any) -> None:
    """Write ``payload`` as JSON to ``path`` atomically."""
    with _temporary_path(path) as tmp:
        tmp.write_text(json.dumps(payload, indent=1, sort_keys=True))


def write_npy_atomic(path: Path, array: np.ndarray) -> int:
    """Write ``array`` as ``.npy`` to ``path`` atomically; returns the file size in bytes."""
    array = np.ascontiguousarray(array)
    with _temporary_path(path) as tmp:
        with open(tmp, "wb") as handle:
            # np.save's own write reports a short write without its cause ("32768 requested and 32704 written");
            # the same bytes written by Python's file object raise OSError with errno ENOSPC / EFBIG
            np.lib.format.write_array_header_1_0(handle, np.lib.format.header_data_from_array_1_0(array))
            handle.write(memoryview(array.reshape(-1).view(np.uint8)))
        size = tmp.stat().st_size
    return size


@contextlib.contextmanager
def file_lock(path: Path) -> Iterator[None]:
    """Hold an exclusive lock on ``path`` (created if needed) while the block runs.

    Two trainings that start at once on the same dataset serialise their cache builds: the second waits,
    then finds the cache valid. The lock is a POSIX record lock (``fcntl.lockf``), which belongs to this
    process alone: forked workers do not inherit it (a ``flock`` lock would be held by every process that
    inherited the file), and the system releases it the moment the process ends, however it ends, so a
    waiting process never waits on a holder that is gone. The holder writes its PID, host and start time
    into the file; a process that has to wait says so once on stderr, naming them. Where ``fcntl`` is
    unavailable (Windows) the block runs unlocked.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        import fcntl
    except ImportError:  # pragma: no cover - Windows
        yield
        return
    fd = os.open(path, os.O_RDWR | os.O_CREAT | getattr(os, "O_CLOEXEC", 0), 0o666)
    try:
        try:
            fcntl.lockf(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as err:
            if err.errno not in (errno.EACCES, errno.EAGAIN):
                raise
            print(f"[nnunet-lossplug] waiting for the cache lock {path}, {_holder(fd)}; it is released when that "
                  f"build ends, or at once if that process ends", file=sys.stderr, flush=True)
            fcntl.lockf(fd, fcntl.LOCK_EX)
        os.ftruncate(fd, 0)
        os.pwrite(fd, json.dumps({"pid": os.getpid(), "host": socket.gethostname(),
                                  "since": time.strftime("%Y-%m-%d %H:%M:%S")}).encode(), 0)
        try:
            yield
        finally:
            fcntl.lockf(fd, fcntl.LOCK_UN)
    finally:
        os.close(fd)


def _holder(fd: int) -> str:
    """``held by PID 123 on host since 2025-01-01 12:00:00``, from the record the holder wrote into the file."""
    for attempt in range(3):  # the holder may be between truncating the file and writing its record
        try:
            record = json.loads(os.pread(fd, 4096, 0) or b"null")
        except (OSError, ValueError):
            record = None
        if isinstance(record, dict):
            return f"held by PID {record.get('pid')} on {record.get('host')} since {record.get('since')}"
        time.sleep(0.2 * (attempt + 1))
    return "held by another process (one of an older version of the plugin, which records no PID)"
