"""What ``nnunet-lossplug trainers`` lists: the plugin's trainers and the user's, one entry per class.

The plugin's trainers are the ``nnUNetTrainer*`` classes of :mod:`nnunet_lossplug.trainers`, grouped by the
module that defines them. The user's are the ``LossPlugTrainer`` subclasses defined in the files of the other
folders of ``nnUNet_extTrainer``. Those files are imported exactly as nnU-Net's ``-tr`` search imports them
(:func:`import_like_nnunet`: the folder on ``sys.path``, each file as a top-level module, packages recursively,
nnU-Net's own helpers), so a file that fails here fails under ``nnUNetv2_train`` too; it is reported
(:class:`ImportFailure`) instead of stopping the listing. Each entry's citation is
:func:`~nnunet_lossplug.nnunet.trainer.start_notes.citation`'s: a subclass that changes the schedule is
"derived from" its parent, not the paper's experiment.
"""

from __future__ import annotations

import importlib
import inspect
import os
import pkgutil
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType

from nnunet_lossplug.discovery import ENV_VAR, trainers_folder


@dataclass(frozen=True)
class TrainerEntry:
    """One listed trainer: its name, where it comes from, the first docstring line and its declarations."""

    name: str
    module: str
    summary: str
    reference: str
    settings: str
    cls: type


def settings_summary(cls: type) -> str:
    """A trainer's declarations in one line: loss, maps, deep-supervision weights, optimiser, schedule, ..."""
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
    """The ``LossPlugTrainer`` subclasses ``module`` defines (not imports) whose name starts with ``prefix``."""
    from nnunet_lossplug.nnunet import LossPlugTrainer
    from nnunet_lossplug.nnunet.trainer.start_notes import citation

    entries = []
    for name, cls in vars(module).items():
        if (inspect.isclass(cls) and name.startswith(prefix) and issubclass(cls, LossPlugTrainer)
                and cls is not LossPlugTrainer and cls.__module__ == module.__name__):
            summary = ((inspect.getdoc(cls) or "").splitlines() or [""])[0]
            entries.append(TrainerEntry(name, label, summary, citation(cls), settings_summary(cls), cls))
    return entries


def plugin_trainers() -> list[TrainerEntry]:
    """Every ``nnUNetTrainer*`` class of :mod:`nnunet_lossplug.trainers`, by module, in definition order."""
    from nnunet_lossplug.trainers import TRAINER_MODULES

    return [entry for module in TRAINER_MODULES for entry in _entries(module, module.__name__)]


def user_trainer_folders() -> list[Path]:
    """The folders of ``nnUNet_extTrainer`` other than the plugin's own (where users keep trainer files)."""
    ours = trainers_folder().resolve()
    folders = [Path(p) for p in os.environ.get(ENV_VAR, "").split(os.pathsep) if p]
    return [f for f in folders if f.is_dir() and f.resolve() != ours]


@dataclass(frozen=True)
class ImportFailure:
    """A trainer file that raises when nnU-Net imports it: ``nnUNetv2_train -tr`` stops there."""

    path: Path
    folder: Path
    error: str

    def __str__(self) -> str:
        return f"{self.path}: {self.error}"


def _import_folder(folder: Path, package: str | None, modules: list[ModuleType],
                   failures: list[ImportFailure], root: Path) -> None:
    """nnU-Net's ``_recursive_find_python_class`` without the name: every module, then every package."""
    found = list(pkgutil.iter_modules([str(folder)]))
    for _, name, is_package in found:
        if is_package:
            continue
        dotted = name if package is None else f"{package}.{name}"
        try:
            modules.append(importlib.import_module(dotted))
        except ModuleNotFoundError as err:
            if err.name != dotted:  # nnU-Net skips only a module it cannot import as itself
                failures.append(ImportFailure(folder / f"{name}.py", root, f"{type(err).__name__}: {err}"))
        except (Exception, SystemExit) as err:  # noqa: BLE001 - a user's file: report it, import the others
            failures.append(ImportFailure(folder / f"{name}.py", root,
                                          f"{type(err).__name__}: {' '.join(str(err).split())}"))
    for _, name, is_package in found:
        if is_package:
            _import_folder(folder / name, name if package is None else f"{package}.{name}", modules, failures, root)


def import_like_nnunet(folder: Path) -> tuple[list[ModuleType], list[ImportFailure]]:
    """Import every module of ``folder`` as nnU-Net's search does; the modules that imported and the failures.

    The folder is on ``sys.path`` meanwhile and its modules leave ``sys.modules`` afterwards (nnU-Net's own
    context managers), so two folders may hold files of the same name.
    """
    from nnunetv2.utilities.find_class_by_name import (
        temporarily_cleanup_imports_from_path,
        temporarily_extend_syspath,
    )

    modules: list[ModuleType] = []
    failures: list[ImportFailure] = []
    with temporarily_extend_syspath(str(folder)), temporarily_cleanup_imports_from_path(str(folder)):
        _import_folder(Path(folder), None, modules, failures, Path(folder))
    return modules, failures


def user_trainers() -> tuple[list[TrainerEntry], list[ImportFailure]]:
    """``LossPlugTrainer`` subclasses in the user's ``nnUNet_extTrainer`` folders, and files that failed to import.

    An entry's module is ``"<path> (yours)"``. A file that raises on import is reported (second list), not fatal.
    """
    entries, failures = [], []
    for folder in user_trainer_folders():
        modules, failed = import_like_nnunet(folder)
        failures += failed
        for module in modules:
            entries += _entries(module, f"{module.__file__} (yours)", prefix="")
    return entries, failures
