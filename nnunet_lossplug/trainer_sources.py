"""Trainer classes found by reading the source of nnU-Net's trainer folders (``ast``; nothing is imported).

nnU-Net resolves ``-tr NAME`` to the first class called NAME it finds: in its own trainer folder, then in each
folder of ``nnUNet_extTrainer`` in the order listed (in a folder, its ``.py`` files by file name, then its
sub-packages). A second class of the same name is silently never used. :func:`trainer_search_folders`,
:func:`class_definitions` and :func:`duplicate_trainer_names` find such names for ``nnunet-lossplug new-trainer``,
``nnunet-lossplug trainers`` and a trainer's start. This module imports neither nnunetv2 nor the trainers, so
the trainer room may import it.
"""

from __future__ import annotations

import importlib.util
import os
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import NamedTuple

from nnunet_lossplug.discovery import ENV_VAR, trainers_folder


class ClassDefinition(NamedTuple):
    """A top-level ``class NAME(...)`` statement: where it is and the source text of its bases."""

    name: str
    path: Path
    line: int
    bases: tuple[str, ...]

    @property
    def looks_like_trainer(self) -> bool:
        """Whether the name or a base mentions ``Trainer`` (helper classes such as losses do not)."""
        return "Trainer" in self.name or any("Trainer" in base for base in self.bases)

    def __str__(self) -> str:
        return f"{self.path}:{self.line}"


def nnunet_trainer_folder() -> Path | None:
    """nnU-Net's own trainer folder (``nnunetv2/training/nnUNetTrainer``), found without importing nnunetv2."""
    spec = importlib.util.find_spec("nnunetv2")
    if spec is None or not spec.submodule_search_locations:
        return None
    folder = Path(list(spec.submodule_search_locations)[0]) / "training" / "nnUNetTrainer"
    return folder if folder.is_dir() else None


def trainer_search_folders(extra: Iterable[str | Path] = (), environ: dict[str, str] | None = None) -> list[Path]:
    """The folders nnU-Net searches for ``-tr NAME``, in its order, then the plugin's and ``extra`` folders.

    Order: nnU-Net's own trainer folder, each existing folder of ``nnUNet_extTrainer`` as listed, the plugin's
    trainer folder (listed at start-up by the ``.pth`` hook; appended here when it is not), then ``extra``
    (e.g. the folder ``new-trainer`` writes to). Each folder appears once.
    """
    env = os.environ if environ is None else environ
    listed = [Path(p) for p in env.get(ENV_VAR, "").split(os.pathsep) if p.strip()]
    candidates = [nnunet_trainer_folder(), *listed, trainers_folder(), *(Path(p) for p in extra)]
    folders, seen = [], set()
    for folder in candidates:
        if folder is None or not folder.is_dir() or folder.resolve() in seen:
            continue
        seen.add(folder.resolve())
        folders.append(folder)
    return folders


def _module_files(folder: Path) -> list[Path]:
    """The ``.py`` files nnU-Net imports from ``folder``, in its search order (``pkgutil.iter_modules``)."""
    try:
        entries = sorted(os.listdir(folder))
    except OSError:
        return []
    files = [folder / name for name in entries
             if name.endswith(".py") and name[:-3].isidentifier() and name != "__init__.py"
             and (folder / name).is_file()]
    packages = [folder / name for name in entries
                if name.isidentifier() and (folder / name / "__init__.py").is_file()]
    return files + [path for package in packages for path in _module_files(package)]


def _top_level_classes(path: Path) -> list[ClassDefinition]:
    import ast

    try:
        tree = ast.parse(path.read_bytes(), filename=str(path))
    except (OSError, SyntaxError, ValueError):  # unreadable: nnU-Net's import fails on it too, loudly
        return []
    return [ClassDefinition(node.name, path, node.lineno, tuple(ast.unparse(base) for base in node.bases))
            for node in tree.body if isinstance(node, ast.ClassDef)]


def class_definitions(folders: Sequence[Path]) -> dict[str, list[ClassDefinition]]:
    """Every top-level class of the files of ``folders``, by name, in nnU-Net's search order."""
    definitions: dict[str, list[ClassDefinition]] = {}
    for folder in folders:
        for path in _module_files(Path(folder)):
            for definition in _top_level_classes(path):
                definitions.setdefault(definition.name, []).append(definition)
    return definitions


def duplicate_trainer_names(folders: Sequence[Path] | None = None) -> dict[str, list[ClassDefinition]]:
    """Trainer names defined in more than one file of ``folders`` (default :func:`trainer_search_folders`).

    A class counts as a trainer when its name or one of its bases mentions ``Trainer``. Each value lists the
    definitions in nnU-Net's search order: ``-tr NAME`` gets the first, the others are never used.
    """
    folders = trainer_search_folders() if folders is None else folders
    return {name: found for name, found in class_definitions(folders).items()
            if len({d.path.resolve() for d in found}) > 1 and any(d.looks_like_trainer for d in found)}
