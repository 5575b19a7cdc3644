"""Integrity of the stored maps: a content hash and a stamp per map file, and the one checked reader of a map.

A map file can be damaged without changing its size (a bad disk block, a copy of another case's map over
it, random bytes from a failed transfer). The sidecar of each case records :func:`file_digest` of its map
file (BLAKE2b, 128 bit, over the whole ``.npy`` file, header included); the precompute hook and the trainer's
start-up recompute it for every case and rebuild a case whose file no longer matches.

:func:`load_checked_map` is the one reader of a map file (:meth:`CaseCache.load` calls it for the data loader
and show-maps): it returns the memory-mapped
channels after checking that the file is a readable ``.npy`` of float16, that its shape is ``(C, *spatial)``
of the preprocessed case, and that its values are finite and inside the codec's range
(:meth:`MapCodec.check_encoded`). Anything else stops with :class:`MapCacheError`, one line naming the case
and the command that rebuilds the cache, never numpy's own message. The value check reads the whole case
once per file version and process; later calls for an unchanged file only re-open it.
"""

from __future__ import annotations

import hashlib
import os
from pathlib import Path
from typing import Protocol

import numpy as np

from nnunet_lossplug.nnunet.codecs.softmax import MapCodec
from nnunet_lossplug.nnunet.errors import MapCacheError
from nnunet_lossplug.nnunet.map_cache.atomic import open_regular

CHUNK_BYTES = 1 << 20
STORED_DTYPE = np.float16

#: (path, inode, mtime_ns, size) of the map files whose values were checked in this process
_checked_files: set[tuple[str, int, int, int]] = set()


class StoredMaps(Protocol):
    """What the check needs of a cache (:class:`~nnunet_lossplug.nnunet.map_cache.cache.CaseCache`)."""

    kind_name: str
    codec: MapCodec | None

    def map_path(self, identifier: str) -> Path: ...

    def rebuild_command(self, force: bool = True) -> str: ...


def file_digest(path: Path) -> str:
    """BLAKE2b-128 hex digest of the bytes of ``path`` (read in 1 MiB chunks)."""
    digest = hashlib.blake2b(digest_size=16)
    with os.fdopen(open_regular(path), "rb") as handle:
        while chunk := handle.read(CHUNK_BYTES):
            digest.update(chunk)
    return digest.hexdigest()


def file_stamp(path: Path) -> tuple[int, int, int]:
    """``(inode, mtime_ns, size)`` of a file: a new version (rewritten, replaced, resized) gets a new stamp.

    ``(-1, -1, -1)`` when the file cannot be stat'ed (opening it then names the problem and the fix).
    """
    try:
        st = os.lstat(path)
    except OSError:
        return (-1, -1, -1)
    return (st.st_ino, st.st_mtime_ns, st.st_size)


def _refuse(cache: StoredMaps, identifier: str, problem: str) -> MapCacheError:
    return MapCacheError(
        f"The precomputed '{cache.kind_name}' map of case {identifier} {problem} ({cache.map_path(identifier)}). "
        f"Rebuild the cache with: {cache.rebuild_command()}"
    )


def _open(cache: StoredMaps, identifier: str) -> np.ndarray:
    path = cache.map_path(identifier)
    try:
        return _memory_map(path)
    except FileNotFoundError:
        raise _refuse(cache, identifier, "is missing") from None
    except (OSError, ValueError, EOFError):
        # numpy's own text (e.g. about allow_pickle for random bytes) would point the wrong way
        raise _refuse(cache, identifier, "cannot be read: it is not a complete .npy file of float16 channels") \
            from None


def _memory_map(path: Path) -> np.memmap:
    """``np.load(path, mmap_mode="r")`` of a ``.npy`` without objects, opened by :func:`open_regular`.

    numpy's own memory map takes a path, which it would open through a link; here the header is read from the
    file opened without following one, and the map made from that same file.
    """
    with os.fdopen(open_regular(path), "rb") as handle:
        version = np.lib.format.read_magic(handle)
        read_header = np.lib.format.read_array_header_1_0 if version == (1, 0) else \
            np.lib.format.read_array_header_2_0
        shape, fortran_order, dtype = read_header(handle)
        if dtype.hasobject:
            raise ValueError("a .npy of Python objects")
        return np.memmap(handle, dtype=dtype, mode="r", shape=shape, order="F" if fortran_order else "C",
                         offset=handle.tell())


def load_checked_map(cache: StoredMaps, identifier: str,
                     spatial_shape: tuple[int, ...] | None = None) -> np.ndarray:
    """The memory-mapped encoded channels ``(C, *spatial_shape)`` of one case, checked; else MapCacheError.

    Checks: readable ``.npy`` (no pickle), dtype float16, shape ``(codec.channels(), *spatial_shape)``
    (``spatial_shape=None``: only the channel count), and (once per file version in this process)
    ``codec.check_encoded``: finite values in the codec's range.
    """
    assert cache.codec is not None
    encoded = _open(cache, identifier)
    channels = cache.codec.channels()
    expected = (channels, *(int(s) for s in (spatial_shape if spatial_shape is not None else encoded.shape[1:])))
    if encoded.dtype != STORED_DTYPE:
        raise _refuse(cache, identifier, f"has dtype {encoded.dtype}, not {np.dtype(STORED_DTYPE)}")
    if tuple(encoded.shape) != expected:
        raise _refuse(cache, identifier, f"has shape {tuple(encoded.shape)}, but the preprocessed case needs "
                                         f"{expected}: the cache is stale")
    stamp = (str(cache.map_path(identifier)), *file_stamp(cache.map_path(identifier)))
    if stamp not in _checked_files:
        problem = cache.codec.check_encoded(encoded)
        if problem is not None:
            raise _refuse(cache, identifier, f"holds {problem}")
        _checked_files.add(stamp)
    return encoded
