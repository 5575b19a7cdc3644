"""Writing an output file of ``nnunet-lossplug`` without ever destroying a file the program did not make.

Every ``-o`` of ``evaluate``, ``compare``, ``plot`` and ``show-maps`` goes through :func:`write_output`:

- a path that does not exist is created;
- an existing path is replaced only if it is recognisably an earlier output of the same kind
  (:class:`OutputKind`): a JSON carrying the kind's ``"format"`` marker (or, for results written before the
  marker existed, the kind's own set of keys), a CSV starting with the kind's own header line, an image whose
  metadata names the subcommand that drew it (PNG: the ``Software`` text chunk; PDF and SVG: the ``Creator``
  entry). Anything else (a ground-truth file, a user's table, a picture drawn by another program, an earlier
  picture without the marker) is refused, naming the file;
- a symbolic link is refused, never followed (the file it points to is not the program's to replace), and
  so is a directory;
- the new content goes to a temporary file in the same folder, which ``os.replace`` then renames over the
  path in one step: an interrupted run leaves the old file or the new one, never half of one.

:func:`check_replaceable` runs the same checks without writing, so that a command can refuse before it
spends minutes computing.
"""

from __future__ import annotations

import contextlib
import json
import os
import stat
import tempfile
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import BinaryIO

#: the ``"format"`` value of each JSON kind; the first key of the file, so that a reader sees it at once
EVALUATE_FORMAT = "nnunet-lossplug evaluate result"
COMPARE_FORMAT = "nnunet-lossplug compare result"
#: the producer recorded in an image's metadata: ``nnunet-lossplug plot`` or ``nnunet-lossplug show-maps``
IMAGE_PRODUCER = "nnunet-lossplug {command}"
#: a JSON file larger than this is not parsed to recognise it (no result of this program comes near)
_MAX_JSON_BYTES = 1 << 30
_PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


@dataclass(frozen=True)
class OutputKind:
    """One kind of file a subcommand writes, and how to recognise an earlier one.

    ``description``: what the file is, for messages. Exactly one recogniser is set: ``json_format`` (with
    ``legacy_keys``, the keys every such file had before the marker existed), ``csv_header`` (the exact first
    line) or ``image_command`` (the subcommand named in the image's metadata).
    """

    description: str
    json_format: str | None = None
    legacy_keys: frozenset[str] = field(default_factory=frozenset)
    csv_header: str | None = None
    image_command: str | None = None

    def recognises(self, path: Path) -> bool:
        """Whether the regular file ``path`` is an earlier output of this kind (read without following links)."""
        try:
            if self.json_format is not None:
                return _is_json_of_format(path, self.json_format, self.legacy_keys)
            if self.csv_header is not None:
                return _first_line(path) == self.csv_header
            if self.image_command is not None:
                return _image_producer(path) == IMAGE_PRODUCER.format(command=self.image_command)
        except (OSError, ValueError):
            return False
        return False


def image_kind(command: str) -> OutputKind:
    """The kind of image ``nnunet-lossplug COMMAND`` draws (``plot``, ``show-maps``)."""
    return OutputKind(f"image drawn by `nnunet-lossplug {command}`", image_command=command)


def image_metadata(command: str, suffix: str) -> dict[str, str]:
    """matplotlib ``savefig(metadata=...)`` that marks an image as drawn by ``nnunet-lossplug COMMAND``.

    PNG keeps it as the ``Software`` text chunk, PDF and SVG as ``Creator``; other formats carry none (an
    existing file in them is then never replaced).
    """
    producer = IMAGE_PRODUCER.format(command=command)
    suffix = suffix.lower()
    if suffix == ".png":
        return {"Software": producer}
    if suffix in (".pdf", ".svg"):
        return {"Creator": producer}
    return {}


def check_replaceable(path: str | Path, kind: OutputKind, option: str = "-o") -> Path:
    """Refuse ``path`` unless writing it destroys nothing the program did not make; return it as a Path.

    Raises:
        FileExistsError: ``path`` is a symbolic link, a directory or another special file, or an existing
            file that is not recognisably an earlier output of ``kind``; the message names it and the fix.
    """
    path = Path(path)
    try:
        info = os.lstat(path)
    except FileNotFoundError:
        return path
    fix = f"give {option} a new file name, or move that file away yourself"
    if stat.S_ISLNK(info.st_mode):
        raise FileExistsError(
            f"{option} {path} is a symbolic link (to {os.readlink(path)}); it is never written through or "
            f"replaced; {fix}.")
    if stat.S_ISDIR(info.st_mode):
        raise FileExistsError(f"{option} {path} is a directory; give a file name inside it, e.g. "
                              f"{path / _example_name(kind)}.")
    if not stat.S_ISREG(info.st_mode):
        raise FileExistsError(f"{option} {path} exists and is not a regular file; {fix}.")
    if not kind.recognises(path):
        raise FileExistsError(
            f"{option} {path} exists and is not an earlier {kind.description}; it is left untouched "
            f"(only the program's own output of that kind is replaced); {fix}.")
    return path


def write_output(path: str | Path, kind: OutputKind, write: Callable[[BinaryIO], None], option: str = "-o") -> Path:
    """Write ``path`` atomically with ``write(binary handle)``, after :func:`check_replaceable`.

    The temporary file lies in ``path``'s folder (created if missing) and gets the permissions a new file
    would get under the current umask. Returns ``path``.
    """
    path = check_replaceable(path, kind, option)
    path.parent.mkdir(parents=True, exist_ok=True)
    descriptor, temporary = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(descriptor, "wb") as handle:
            write(handle)
            handle.flush()
            os.fsync(handle.fileno())
        os.chmod(temporary, 0o666 & ~_current_umask())
        check_replaceable(path, kind, option)  # still true at the last moment (a link made meanwhile is refused)
        os.replace(temporary, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(temporary)
        raise
    return path


def write_text_output(path: str | Path, kind: OutputKind, text: str, option: str = "-o") -> Path:
    """:func:`write_output` of UTF-8 ``text``."""
    return write_output(path, kind, lambda handle: handle.write(text.encode("utf-8")), option)


def _current_umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def _example_name(kind: OutputKind) -> str:
    if kind.image_command is not None:
        return "plot.png" if kind.image_command == "plot" else "maps.png"
    return "result.csv" if kind.csv_header is not None else "result.json"


def _read_no_follow(path: Path, limit: int) -> bytes:
    """Up to ``limit`` bytes of ``path``, opened without following a symbolic link."""
    descriptor = os.open(path, os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0))
    with os.fdopen(descriptor, "rb") as handle:
        return handle.read(limit)


def _is_json_of_format(path: Path, json_format: str, legacy_keys: frozenset[str]) -> bool:
    head = _read_no_follow(path, 64)
    if not head.lstrip().startswith(b"{"):
        return False
    if os.lstat(path).st_size > _MAX_JSON_BYTES:
        return False
    data = json.loads(_read_no_follow(path, _MAX_JSON_BYTES).decode("utf-8"))
    if not isinstance(data, dict):
        return False
    if data.get("format") == json_format:
        return True
    return "format" not in data and bool(legacy_keys) and legacy_keys <= data.keys()


def _first_line(path: Path) -> str:
    return _read_no_follow(path, 4096).decode("utf-8").splitlines()[0] if os.lstat(path).st_size else ""


def _image_producer(path: Path) -> str | None:
    """The producer an image names in its metadata (PNG ``Software``; PDF, SVG ``Creator``), else None."""
    head = _read_no_follow(path, 8)
    if head == _PNG_SIGNATURE:
        from PIL import Image

        with open(os.open(path, os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0)), "rb") as handle:
            with Image.open(handle) as image:
                return image.info.get("Software")
    if head.startswith(b"%PDF") or head.lstrip().startswith(b"<?xml") or head.lstrip().startswith(b"<svg"):
        content = _read_no_follow(path, 64 << 20)
        for command in ("plot", "show-maps"):
            producer = IMAGE_PRODUCER.format(command=command)
            if producer.encode() in content:
                return producer
    return None
