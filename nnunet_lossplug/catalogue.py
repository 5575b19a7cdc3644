"""The plugin's trainers, listed from the trainer folder nnU-Net discovers (``nnunet-lossplug trainers``)."""

from __future__ import annotations

import importlib.util
import inspect
from dataclasses import dataclass
from pathlib import Path

from nnunet_lossplug.discovery import trainers_folder


@dataclass(frozen=True)
class TrainerEntry:
    name: str
    module: str
    summary: str
    reference: str
    settings: str
    cls: type


def _load(path: Path):
    spec = importlib.util.spec_from_file_location(f"nnunet_lossplug_catalogue_{path.stem}", path)
    module = importlib.util.module_from_spec(spec)
    assert spec.loader is not None
    spec.loader.exec_module(module)
    return module


def _settings(cls) -> str:
    parts = [cls.loss_spec.describe() if cls.loss_spec is not None else "?"]
    if cls.rw_map is not None:
        kind = cls.rw_map if isinstance(cls.rw_map, str) else cls.rw_map.name
        parts.append(f"maps={kind} ({cls.map_placement})")
    parts.append(f"ds={cls.ds_weights}")
    parts.append(cls.optimizer_spec.describe() if cls.optimizer_spec is not None else "SGD(lr=0.01) [nnU-Net]")
    parts.append(f"clip={cls.grad_clip:g}")
    parts.append(f"epochs={cls.epochs or 1000}")
    if cls.network_builder is not None:
        parts.append(f"network={getattr(cls.network_builder, '__qualname__', cls.network_builder)}")
    return ", ".join(parts)


def list_trainers(folder: Path | None = None) -> list[TrainerEntry]:
    """Every ``nnUNetTrainer*`` class defined in the trainer folder, in file order."""
    from nnunet_lossplug.nnunet import LossPlugTrainer

    entries = []
    for path in sorted((folder or trainers_folder()).glob("*.py")):
        module = _load(path)
        for name, cls in vars(module).items():
            if (inspect.isclass(cls) and name.startswith("nnUNetTrainer") and issubclass(cls, LossPlugTrainer)
                    and cls.__module__ == module.__name__):
                summary = (inspect.getdoc(cls) or "").splitlines()[0]
                entries.append(TrainerEntry(name, path.stem, summary, cls.reference, _settings(cls), cls))
    return entries
