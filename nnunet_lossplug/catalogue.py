"""The plugin's trainers as Python classes: listed (``nnunet-lossplug trainers``) and importable for subclassing.

nnU-Net imports the files of a trainer folder as anonymous top-level modules. To subclass one of our trainers
in your own trainer file, get the class from here::

    from nnunet_lossplug.catalogue import trainer_class

    class nnUNetTrainerRRW_50epochs(trainer_class("nnUNetTrainerRRW")):
        epochs = 50
"""

from __future__ import annotations

import importlib.util
import inspect
import sys
from dataclasses import dataclass
from functools import cache
from types import ModuleType

from nnunet_lossplug.discovery import trainers_folder

MODULE_PREFIX = "nnunet_lossplug_trainers"


@dataclass(frozen=True)
class TrainerEntry:
    name: str
    module: str
    summary: str
    reference: str
    settings: str
    cls: type


@cache
def trainer_modules() -> dict[str, ModuleType]:
    """The modules of the trainer folder, loaded once under stable names ``nnunet_lossplug_trainers.<file>``."""
    modules = {}
    for path in sorted(trainers_folder().glob("*.py")):
        name = f"{MODULE_PREFIX}.{path.stem}"
        spec = importlib.util.spec_from_file_location(name, path)
        assert spec is not None and spec.loader is not None
        module = importlib.util.module_from_spec(spec)
        sys.modules[name] = module
        spec.loader.exec_module(module)
        modules[path.stem] = module
    return modules


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


def list_trainers() -> list[TrainerEntry]:
    """Every ``nnUNetTrainer*`` class defined in the trainer folder, in file order."""
    from nnunet_lossplug.nnunet import LossPlugTrainer

    entries = []
    for stem, module in trainer_modules().items():
        for name, cls in vars(module).items():
            if (inspect.isclass(cls) and name.startswith("nnUNetTrainer") and issubclass(cls, LossPlugTrainer)
                    and cls.__module__ == module.__name__):
                summary = (inspect.getdoc(cls) or "").splitlines()[0]
                entries.append(TrainerEntry(name, stem, summary, cls.reference, _settings(cls), cls))
    return entries
