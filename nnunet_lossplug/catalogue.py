"""The plugin's trainers as Python classes: listed (``nnunet-lossplug trainers``) and importable for subclassing.

nnU-Net imports the files of a trainer folder as anonymous top-level modules. To subclass one of our trainers
in your own trainer file, get the class from here::

    from nnunet_lossplug.catalogue import trainer_class

    class nnUNetTrainerRRW_50epochs(trainer_class("nnUNetTrainerRRW")):
        epochs = 50

nnU-Net resolves ``-tr NAME`` to the first class called NAME it finds: in its own trainer folder, then in
each folder of ``nnUNet_extTrainer`` in the order listed (in a folder, its ``.py`` files by file name, then its
sub-packages). A second class of the same name is silently never used. :func:`trainer_search_folders`,
:func:`class_definitions` and :func:`duplicate_trainer_names` find such names by reading the files' source
(``ast``; nothing is imported), for ``nnunet-lossplug new-trainer``, ``nnunet-lossplug trainers`` and a
trainer's start.
"""

from __future__ import annotations

import hashlib
import importlib.util
import inspect
import os
import sys
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from types import ModuleType
from typing import NamedTuple

from nnunet_lossplug.discovery import ENV_VAR, trainers_folder

MODULE_PREFIX = "nnunet_lossplug_trainers"
USER_MODULE_PREFIX = "nnunet_lossplug_user_trainers"


@dataclass(frozen=True)
class TrainerEntry:
    name: str
    module: str
    summary: str
    reference: str
    settings: str
    cls: type


def _load_module(name: str, path: Path) -> ModuleType:
    spec = importlib.util.spec_from_file_location(name, path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    try:
        spec.loader.exec_module(module)
    except BaseException:
        del sys.modules[name]
        raise
    return module


@cache
def trainer_modules() -> dict[str, ModuleType]:
    """The modules of the trainer folder, loaded once under stable names ``nnunet_lossplug_trainers.<file>``."""
    return {path.stem: _load_module(f"{MODULE_PREFIX}.{path.stem}", path)
            for path in sorted(trainers_folder().glob("*.py"))}


def user_trainer_folders() -> list[Path]:
    """The folders of ``nnUNet_extTrainer`` other than the plugin's own (where users keep trainer files)."""
    ours = trainers_folder().resolve()
    folders = [Path(p) for p in os.environ.get(ENV_VAR, "").split(os.pathsep) if p]
    return [f for f in folders if f.is_dir() and f.resolve() != ours]


def trainer_class(name: str) -> type:
    """One of the plugin's trainer classes by name, e.g. ``trainer_class("nnUNetTrainerRRW")``."""
    for module in trainer_modules().values():
        cls = getattr(module, name, None)
        if inspect.isclass(cls):
            return cls
    known = ", ".join(entry.name for entry in list_trainers())
    raise KeyError(f"No trainer named {name!r} in {trainers_folder()}. Known trainers: {known}")


def _settings(cls) -> str:
    parts = [cls.loss_spec.describe() if cls.loss_spec is not None else "?"]
    if cls.rw_map is not None:
        kind = cls.rw_map if isinstance(cls.rw_map, str) else cls.rw_map.name
        parts.append(f"maps={kind} ({cls.map_placement})")
    parts.append(f"ds={cls.ds_weights}")
    parts.append(cls.optimizer_spec.describe() if cls.optimizer_spec is not None else "SGD(lr=0.01) [nnU-Net]")
    if cls.lr_schedule.describe() != "poly":
        parts.append(f"lr schedule: {cls.lr_schedule.describe()}")
    parts.append(f"clip={cls.grad_clip:g}")
    parts.append(f"epochs={cls.epochs or 1000}")
    if cls.network_builder is not None:
        parts.append(f"network={getattr(cls.network_builder, '__qualname__', cls.network_builder)}")
    return ", ".join(parts)


def _entries(module: ModuleType, label: str, prefix: str = "nnUNetTrainer") -> list[TrainerEntry]:
    from nnunet_lossplug.nnunet import LossPlugTrainer

    entries = []
    for name, cls in vars(module).items():
        if (inspect.isclass(cls) and name.startswith(prefix) and issubclass(cls, LossPlugTrainer)
                and cls is not LossPlugTrainer and cls.__module__ == module.__name__):
            summary = ((inspect.getdoc(cls) or "").splitlines() or [""])[0]
            entries.append(TrainerEntry(name, label, summary, cls.reference, _settings(cls), cls))
    return entries


def list_trainers() -> list[TrainerEntry]:
    """Every ``nnUNetTrainer*`` class defined in the trainer folder, in file order."""
    return [entry for stem, module in trainer_modules().items() for entry in _entries(module, stem)]


def list_user_trainers() -> tuple[list[TrainerEntry], list[str]]:
    """``LossPlugTrainer`` subclasses in the user's ``nnUNet_extTrainer`` folders, and files that failed to import.

    nnU-Net searches those folders recursively and imports every file, so this does too; an entry's module is
    ``"<path> (yours)"``. A file that raises on import is reported (second list), not fatal.
    """
    entries, failures = [], []
    for folder in user_trainer_folders():
        for path in sorted(folder.rglob("*.py")):
            tag = hashlib.blake2b(str(path.resolve()).encode(), digest_size=4).hexdigest()
            try:
                module = _load_module(f"{USER_MODULE_PREFIX}.m{tag}_{path.stem}", path)
            except Exception as err:  # noqa: BLE001 - a user's file: report it, list the others
                failures.append(f"{path}: {type(err).__name__}: {' '.join(str(err).split())}")
                continue
            entries += _entries(module, f"{path} (yours)", prefix="")
    return entries, failures


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
