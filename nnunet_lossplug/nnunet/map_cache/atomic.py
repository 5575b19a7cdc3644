"""Atomic file writes, reads that never follow a link, and an inter-process lock for the precompute cache.

A reader never sees a half-written file: every file is written under a temporary name in the same folder
and moved into place with :func:`os.replace`, which is atomic on POSIX and Windows file systems.

No file of the cache is ever opened through a symbolic link (``O_NOFOLLOW``), and an entry where the cache keeps
a file that is not a regular file (a link someone placed in a group-writable ``nnUNet_preprocessed``, a device,
a folder) is never opened, written through, replaced or removed: :func:`open_regular` and :func:`check_replaceable`
refuse it with :class:`~nnunet_lossplug.nnunet.errors.ForeignFileError`, one line naming it.
"""

from __future__ import annotations

import contextlib
import errno
import json
import os
import secrets
import socket
import stat
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np

from nnunet_lossplug.nnunet.errors import ForeignFileError

#: flags every open of a cache file adds: never through a link, never blocking on a FIFO, not inherited by exec
_SAFE_FLAGS = getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_CLOEXEC", 0) \
    | getattr(os, "O_BINARY", 0)


def _entry_kind(mode: int) -> str:
    """``a symbolic link``, ``a folder``, ... for the ``st_mode`` of an entry that is not a regular file."""
    if stat.S_ISLNK(mode):
        return "a symbolic link"
    if stat.S_ISDIR(mode):
        return "a folder"
    if stat.S_ISFIFO(mode):
        return "a named pipe"
    if stat.S_ISSOCK(mode):
        return "a socket"
    return "a device file" if stat.S_ISCHR(mode) or stat.S_ISBLK(mode) else "not a regular file"


def foreign_file(path: Path, kind: str | None = None) -> ForeignFileError:
    """The one-line refusal of ``path``, an entry of the cache that is not a regular file the plugin made."""
    if kind is None:
        try:
            kind = _entry_kind(os.lstat(path).st_mode)
        except OSError:
            kind = "not a regular file"
    where = f" (to {os.readlink(path)})" if os.path.islink(path) else ""
    return ForeignFileError(
        f"{path} is {kind}{where}, where the plugin keeps a file of its cache; it never opens, writes through, "
        f"replaces or removes an entry it did not make. Check who placed it there, remove it (rm {path}) and run "
        f"the command again."
    )


def open_regular(path: Path, flags: int = os.O_RDONLY, mode: int = 0o666) -> int:
    """``os.open`` that never follows a link at ``path`` and refuses anything but a regular file; returns the fd.

    A missing file raises :class:`FileNotFoundError` (unless ``flags`` create it); a link, a folder, a FIFO or a
    device :class:`ForeignFileError`.
    """
    try:
        fd = os.open(path, flags | _SAFE_FLAGS, mode)
    except OSError as err:
        if err.errno == errno.ELOOP or (err.errno in (errno.EISDIR, errno.ENXIO) and os.path.lexists(path)):
            raise foreign_file(path) from None
        raise
    info = os.fstat(fd)
    if not stat.S_ISREG(info.st_mode):
        os.close(fd)
        raise foreign_file(path, _entry_kind(info.st_mode))
    return fd


def read_bytes(path: Path) -> bytes:
    """The bytes of the regular file ``path``, never read through a link (:func:`open_regular`)."""
    with os.fdopen(open_regular(path), "rb") as handle:
        return handle.read()


def is_regular_file(path: Path) -> bool:
    """True for a regular file at ``path`` itself (a link to one is not)."""
    try:
        return stat.S_ISREG(os.lstat(path).st_mode)
    except OSError:
        return False


def check_replaceable(path: Path) -> None:
    """Refuse to replace or remove ``path`` unless it is missing or a regular file."""
    try:
        mode = os.lstat(path).st_mode
    except FileNotFoundError:
        return
    if not stat.S_ISREG(mode):
        raise foreign_file(path, _entry_kind(mode))


def _no_follow_opener(path: str, flags: int) -> int:
    return open_regular(Path(path), flags)


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


#: the errors of a write that found the disk full: disk full, file-size limit (``ulimit -f``), disk quota
NO_ROOM = {errno.ENOSPC: "no space left on device", errno.EFBIG: "file too large (a file-size limit, ulimit -f)",
           errno.EDQUOT: "disk quota exceeded"}


class DiskFullError(OSError):
    """A write that found the disk full; ``filename`` is the file being written, ``strerror`` what ran out."""


@contextlib.contextmanager
def _temporary_path(target: Path) -> Iterator[Path]:
    """Yield a temporary sibling of ``target``, moved onto it when the block ends; removed if the block fails.

    A write that runs out of space raises :class:`DiskFullError` naming ``target`` (the partial file is removed).
    """
    target.parent.mkdir(parents=True, exist_ok=True)
    check_replaceable(target)
    tmp = _create_temporary_sibling(target)
    try:
        yield tmp
        check_replaceable(target)  # os.replace would remove a link placed there meanwhile (never its target)
        os.replace(tmp, target)
    except OSError as err:
        if err.errno in NO_ROOM:
            raise DiskFullError(err.errno, NO_ROOM[err.errno], str(target)) from err
        raise
    finally:
        if is_regular_file(tmp):
            tmp.unlink()


def write_json_atomic(path: Path, payload: Any) -> None:
    """Write ``payload`` as JSON to ``path`` atomically."""
    with _temporary_path(path) as tmp:
        with open(tmp, "w", opener=_no_follow_opener) as handle:
            handle.write(json.dumps(payload, indent=1, sort_keys=True))


def write_npy_atomic(path: Path, array: np.ndarray) -> int:
    """Write ``array`` as ``.npy`` to ``path`` atomically; returns the file size in bytes."""
    array = np.ascontiguousarray(array)
    with _temporary_path(path) as tmp:
        with open(tmp, "wb", opener=_no_follow_opener) as handle:
            # np.save's own write reports a short write without its cause ("32768 requested and 32704 written");
            # the same bytes written by Python's file object raise OSError with errno ENOSPC / EFBIG
            np.lib.format.write_array_header_1_0(handle, np.lib.format.header_data_from_array_1_0(array))
            handle.write(memoryview(array.reshape(-1).view(np.uint8)))
        size = os.lstat(tmp).st_size
    return size


@contextlib.contextmanager
def file_lock(path: Path, wait: bool = True) -> Iterator[None]:
    """Hold an exclusive lock on ``path`` (created if needed) while the block runs.

    Two trainings that start at once on the same dataset serialise their cache builds: the second waits,
    then finds the cache valid. The lock is a POSIX record lock (``fcntl.lockf``), which belongs to this
    process alone: forked workers do not inherit it (a ``flock`` lock would be held by every process that
    inherited the file), and the system releases it the moment the process ends, however it ends, so a
    waiting process never waits on a holder that is gone. The holder writes its PID, host and start time
    into the file; a process that has to wait says so once on stderr, naming them. Where ``fcntl`` is
    unavailable (Windows) the block runs unlocked. A link, folder or device at ``path`` is refused
    (:func:`open_regular`): the lock file is opened without following links and must be a regular file.
    ``wait=False`` raises :class:`BlockingIOError` at once when another process holds the lock.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        import fcntl
    except ImportError:  # pragma: no cover - Windows
        yield
        return
    fd = open_regular(path, os.O_RDWR | os.O_CREAT, 0o666)
    try:
        try:
            fcntl.lockf(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as err:
            if err.errno not in (errno.EACCES, errno.EAGAIN):
                raise
            if not wait:
                raise BlockingIOError(err.errno, f"held by another build, {_holder(fd)}", str(path)) from None
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
