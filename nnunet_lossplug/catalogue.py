"""The plugin's trainers as Python classes: listed (``nnunet-lossplug trainers``) and importable for subclassing.

nnU-Net imports the files of a trainer folder as anonymous top-level modules. To subclass one of our trainers
in your own trainer file, get the class from here::

    from nnunet_lossplug.catalogue import trainer_class

    class nnUNetTrainerRRW_50epochs(trainer_class("nnUNetTrainerRRW")):
        epochs = 50

nnU-Net resolves ``-tr NAME`` to the first class called NAME it finds: in its own trainer folder, then in
each folder of ``nnUNet_extTrainer`` in the order listed (in a folder, its ``.py`` files by file name, then its
sub-packages). A second class of the same name is silently never used; :mod:`nnunet_lossplug.trainer_sources`
finds such names by reading the files' source (re-exported here).
"""

from __future__ import annotations

import hashlib
import importlib.util
import inspect
import os
import sys
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from types import ModuleType

from nnunet_lossplug.discovery import ENV_VAR, trainers_folder
from nnunet_lossplug.trainer_sources import (  # noqa: F401 - re-exported
    ClassDefinition,
    class_definitions,
    duplicate_trainer_names,
    nnunet_trainer_folder,
    trainer_search_folders,
)

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
