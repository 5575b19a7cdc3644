"""What ``nnunet-lossplug trainers`` lists: the plugin's trainers and the user's, one entry per class.

The plugin's trainers are the ``nnUNetTrainer*`` classes of :mod:`nnunet_lossplug.trainers`, grouped by the
module that defines them. The user's are the ``LossPlugTrainer`` subclasses defined in the files of the other
folders of ``nnUNet_extTrainer``; those files are imported under private module names here, as nnU-Net would
import them, so a file that fails to import is reported instead of stopping the listing.
"""

from __future__ import annotations

import hashlib
import importlib.util
import inspect
import os
import sys
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType

from nnunet_lossplug.discovery import ENV_VAR, trainers_folder

USER_MODULE_PREFIX = "nnunet_lossplug_user_trainers"


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

    entries = []
    for name, cls in vars(module).items():
        if (inspect.isclass(cls) and name.startswith(prefix) and issubclass(cls, LossPlugTrainer)
                and cls is not LossPlugTrainer and cls.__module__ == module.__name__):
            summary = ((inspect.getdoc(cls) or "").splitlines() or [""])[0]
            entries.append(TrainerEntry(name, label, summary, cls.reference, settings_summary(cls), cls))
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


def user_trainers() -> tuple[list[TrainerEntry], list[str]]:
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
