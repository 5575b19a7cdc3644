"""An output folder that the demo or the benchmark made, and the list of what they made in it.

Users keep years of results in folders like these, so a command that writes to ``-o DIR`` must never delete a
file it did not make. The rule: a command writes into ``DIR`` only if ``DIR`` does not exist, is empty, or holds
the manifest ``.nnunet-lossplug.json`` that the same command wrote there; anything else is refused in one line
naming the folder and the way out. Inside its folder a command deletes only the entries its manifest lists (its
own trainer files, predictions, results), never what a user added beside them, and never through a symbolic link.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import shutil
from collections.abc import Iterator
from pathlib import Path

MANIFEST_NAME = ".nnunet-lossplug.json"
LOCK_NAME = ".nnunet-lossplug.lock"


class FolderNotOursError(ValueError):
    """``-o DIR`` holds files this command did not make."""


class FolderBusyError(ValueError):
    """Another process of the same command is writing the folder now."""


class OwnedFolder:
    """A folder made by ``command`` (e.g. ``"nnunet-lossplug demo"``) and the entries it recorded there."""

    def __init__(self, path: Path, command: str):
        self.path = Path(path).absolute()
        self.command = command

    @property
    def manifest(self) -> Path:
        return self.path / MANIFEST_NAME

    def _read(self) -> dict | None:
        if self.manifest.is_symlink() or not self.manifest.is_file():
            return None
        try:
            content = json.loads(self.manifest.read_text())
        except (OSError, ValueError):
            return None
        return content if isinstance(content, dict) and isinstance(content.get("entries"), list) else None

    def check(self, option: str = "-o") -> None:
        """Refuse, in one line, a folder this command may not write into; changes nothing.

        Raises:
            FolderNotOursError: the folder holds files and no manifest of ``command``, or is a link or a file.
        """
        content = self._read()
        if content is not None and content.get("made_by") == self.command:
            return
        if self.path.is_symlink() or (self.path.exists() and not self.path.is_dir()):
            raise FolderNotOursError(f"{option} {self.path} is not a folder this command made (it is a "
                                     f"{'symbolic link' if self.path.is_symlink() else 'file'}); give another "
                                     f"{option} folder.")
        if self.path.is_dir() and any(self.path.iterdir()):
            made_by = f" (made by {content['made_by']})" if content and content.get("made_by") else ""
            raise FolderNotOursError(
                f"{option} {self.path} is not empty and was not made by {self.command}{made_by}; nothing there is "
                f"deleted or overwritten: give another {option} folder (a new or empty one), or empty it yourself.")

    def claim(self, option: str = "-o") -> None:
        """Make the folder ours (create it, or adopt it when empty), or refuse as :meth:`check` does."""
        self.check(option)
        if self._read() is None:
            self.path.mkdir(parents=True, exist_ok=True)
            self._write({"made_by": self.command, "entries": []})

    @contextlib.contextmanager
    def exclusive(self, option: str = "-o") -> Iterator[None]:
        """Hold the folder's lock (``flock``; released when the process ends, however it ends) for the block.

        Raises:
            FolderBusyError: another process holds it (two benchmarks in one folder would delete each other's runs).
        """
        self.path.mkdir(parents=True, exist_ok=True)
        lock_file = self.path / LOCK_NAME
        if lock_file.is_symlink():
            raise FolderNotOursError(f"{lock_file} is a symbolic link; give another {option} folder.")
        with open(lock_file, "a+") as handle:
            try:
                fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                handle.seek(0)
                holder = handle.read().strip() or "?"
                raise FolderBusyError(f"{option} {self.path} is being written by another {self.command} (process "
                                      f"{holder}); wait for it to finish or stop it, or give another {option} "
                                      f"folder.") from None
            handle.seek(0)
            handle.truncate()
            handle.write(str(os.getpid()))
            handle.flush()
            yield

    def _write(self, content: dict) -> None:
        temporary = self.manifest.with_name(MANIFEST_NAME + ".tmp")
        temporary.write_text(json.dumps(content, indent=1) + "\n")
        os.replace(temporary, self.manifest)

    def entries(self) -> list[str]:
        content = self._read()
        return list(content["entries"]) if content else []

    def record(self, *relative: str) -> None:
        """Add entries (paths relative to the folder) that this command made and may delete later."""
        for entry in relative:
            if Path(entry).is_absolute() or ".." in Path(entry).parts:
                raise ValueError(f"{entry}: record a path inside {self.path}, relative to it.")
        content = self._read() or {"made_by": self.command, "entries": []}
        for entry in relative:
            if entry not in content["entries"]:
                content["entries"].append(entry)
        self._write(content)

    def remove_recorded(self, keep: tuple[str, ...] = ()) -> list[str]:
        """Delete every recorded entry except those starting with one of ``keep``; returns what was deleted.

        A folder is removed with its content (made by this command). An entry that is now a symbolic link, or lies
        behind one, is left alone (someone else put the link there). Entries that no longer exist are dropped.
        """
        removed, kept = [], []
        for entry in self.entries():
            target = self.path / entry
            if entry.startswith(keep) or target.is_symlink() or not self.reachable_without_links(entry):
                kept.append(entry)
                continue
            if target.is_file():
                target.unlink()
                removed.append(entry)
            elif target.is_dir():
                shutil.rmtree(target)
                removed.append(entry)
        content = self._read() or {"made_by": self.command, "entries": []}
        content["entries"] = kept
        self._write(content)
        return removed

    def reachable_without_links(self, entry: str) -> bool:
        """Whether no folder between this folder and ``entry`` is a symbolic link (deleting it stays inside)."""
        if Path(entry).is_absolute() or ".." in Path(entry).parts:
            return False
        current = self.path
        for part in Path(entry).parts[:-1]:
            current = current / part
            if current.is_symlink():
                return False
        return True
