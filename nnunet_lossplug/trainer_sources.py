"""Trainer classes found by reading the source of nnU-Net's trainer folders (``ast``; nothing is imported).

nnU-Net resolves ``-tr NAME`` to the first class called NAME it finds: in its own trainer folder, then in each
folder of ``nnUNet_extTrainer`` in the order listed (in a folder, its ``.py`` files by file name, then its
sub-packages). A second class of the same name is silently never used. :func:`trainer_search_folders`,
:func:`class_definitions` and :func:`duplicate_trainer_names` find such names for ``nnunet-lossplug new-trainer``,
``nnunet-lossplug trainers`` and a trainer's start.

A file's classes are those it defines and those it re-exports with ``from package.module import *`` (followed
to the module's source, honouring a literal ``__all__``): the plugin's trainer folder holds only such
re-exports of :mod:`nnunet_lossplug.trainers`. A class is reported at the file that defines it, so two files
re-exporting the same module are one definition, not two. This module imports neither nnunetv2 nor the
trainers, so nnU-Net glue that runs at a trainer's start may import it.
"""

from __future__ import annotations

import ast
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


def module_source(dotted: str) -> Path | None:
    """The ``.py`` file of module ``dotted`` (``a.b.c``), found without importing it or its packages."""
    top, *rest = dotted.split(".")
    try:
        spec = importlib.util.find_spec(top)  # a top-level name: nothing is imported
    except (ImportError, ValueError):
        return None
    if spec is None:
        return None
    if not rest:
        origin = Path(spec.origin) if spec.origin else None
        return origin if origin is not None and origin.suffix == ".py" and origin.is_file() else None
    locations = [Path(p) for p in (spec.submodule_search_locations or [])]
    for position, part in enumerate(rest):
        last = position == len(rest) - 1
        found = None
        for location in locations:
            if last and (location / f"{part}.py").is_file():
                return location / f"{part}.py"
            if (location / part).is_dir():
                found = location / part
                break
        if found is None:
            return None
        if last:
            init = found / "__init__.py"
            return init if init.is_file() else None
        locations = [found]
    return None


def _parse(path: Path) -> ast.Module | None:
    try:
        return ast.parse(path.read_bytes(), filename=str(path))
    except (OSError, SyntaxError, ValueError):  # unreadable: nnU-Net's import fails on it too, loudly
        return None


def _exported_names(tree: ast.Module) -> set[str] | None:
    """A literal ``__all__`` of the module, or None (then ``import *`` takes every name without ``_``)."""
    for node in tree.body:
        if isinstance(node, ast.Assign) and any(isinstance(t, ast.Name) and t.id == "__all__" for t in node.targets):
            try:
                value = ast.literal_eval(node.value)
            except (ValueError, TypeError, SyntaxError):  # computed, e.g. from other modules' __all__
                return None
            return {name for name in value if isinstance(name, str)} if isinstance(value, (list, tuple)) else None
    return None


def _top_level_classes(path: Path, seen: frozenset[Path] = frozenset()) -> list[ClassDefinition]:
    """Classes ``path`` defines at top level, and those its ``from module import *`` lines bring in."""
    tree = _parse(path)
    if tree is None:
        return []
    seen = seen | {path.resolve()}
    found = []
    for node in tree.body:
        if isinstance(node, ast.ClassDef):
            found.append(ClassDefinition(node.name, path, node.lineno, tuple(ast.unparse(b) for b in node.bases)))
        elif (isinstance(node, ast.ImportFrom) and node.level == 0 and node.module
              and [alias.name for alias in node.names] == ["*"]):
            source = module_source(node.module)
            source_tree = None if source is None or source.resolve() in seen else _parse(source)
            if source_tree is None:
                continue
            exported = _exported_names(source_tree)
            found += [d for d in _top_level_classes(source, seen)
                      if (d.name in exported if exported is not None else not d.name.startswith("_"))]
    return found


def class_definitions(folders: Sequence[Path]) -> dict[str, list[ClassDefinition]]:
    """Every top-level class of the files of ``folders`` (re-exports followed), by name, in nnU-Net's search order.

    A class re-exported by several files is listed once, at the file that defines it.
    """
    definitions: dict[str, list[ClassDefinition]] = {}
    for folder in folders:
        for path in _module_files(Path(folder)):
            for definition in _top_level_classes(path):
                listed = definitions.setdefault(definition.name, [])
                if definition not in listed:
                    listed.append(definition)
    return definitions


def duplicate_trainer_names(folders: Sequence[Path] | None = None) -> dict[str, list[ClassDefinition]]:
    """Trainer names defined in more than one file of ``folders`` (default :func:`trainer_search_folders`).

    A class counts as a trainer when its name or one of its bases mentions ``Trainer``. Each value lists the
    definitions in nnU-Net's search order: ``-tr NAME`` gets the first, the others are never used.
    """
    folders = trainer_search_folders() if folders is None else folders
    return {name: found for name, found in class_definitions(folders).items()
            if len({d.path.resolve() for d in found}) > 1 and any(d.looks_like_trainer for d in found)}
