"""Trainer files that run any existing trainer on a short, seeded schedule (the benchmark's and the demo's).

nnU-Net's own trainers run 1000 epochs of 250 iterations, the papers' trainers 300: far beyond a CPU, and never
the same budget for two trainers. A short-schedule trainer keeps everything of the trainer it names (loss, maps,
deep supervision, optimiser, poly learning-rate rule) and changes only the number of epochs and iterations and,
for trainers that declare Adam, the initial learning rate (the papers' Adam rate, 1e-4, is meant for hundreds of
epochs; SGD trainers keep theirs). A trainer that is not seeded yet (nnU-Net's own, a user's plain subclass of
``nnUNetTrainer``) gets the :class:`~nnunet_lossplug.nnunet.trainer.seeding.SeededTraining` mixin, so that
``NNUNET_LOSSPLUG_SEED`` seeds every trainer of a comparison alike.

The named trainer may be the plugin's (:mod:`nnunet_lossplug.trainers`), nnU-Net's own, or a user's from a folder
of ``nnUNet_extTrainer``; it is looked up in nnU-Net's order (:func:`locate_trainer`). The file written is a
trainer declaration like any user's: nnU-Net finds its class once its folder is listed in ``nnUNet_extTrainer``.
"""

from __future__ import annotations

import hashlib
import importlib.util
import sys
from collections.abc import Mapping
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Literal

#: validation iterations per epoch on a short schedule (nnU-Net: 50); only nnU-Net's logged pseudo-Dice uses them
SHORT_VALIDATION_ITERATIONS = 4
USER_MODULE_PREFIX = "nnunet_lossplug_short_trainer_base"


@dataclass(frozen=True)
class ShortSchedule:
    """Epochs, iterations per epoch, the initial rate of Adam trainers (None: the trainer's own), validation
    iterations per epoch."""

    epochs: int
    iterations_per_epoch: int
    adam_lr: float | None = None
    val_iterations_per_epoch: int = SHORT_VALIDATION_ITERATIONS


@dataclass(frozen=True)
class TrainerLocation:
    """Where nnU-Net finds trainer ``name``: the plugin's package, nnU-Net's own folder, or a user's file."""

    name: str
    kind: Literal["plugin", "nnunet", "user"]
    module: str  # the dotted module (plugin, nnU-Net) or the file's path (user)

    def source_digest(self) -> str:
        """SHA-256 of the user's file (so a benchmark notices an edited trainer); empty for installed code."""
        return hashlib.sha256(Path(self.module).read_bytes()).hexdigest() if self.kind == "user" else ""


def locate_trainer(name: str, environ: Mapping[str, str] | None = None) -> TrainerLocation:
    """Find ``name`` as ``nnUNetv2_train -tr`` would: nnU-Net's folder, then each ``nnUNet_extTrainer`` folder
    (of ``environ``, default this process's environment).

    Raises:
        LookupError: one line naming the trainer and where it was looked for.
    """
    from nnunet_lossplug.trainer_sources import class_definitions, nnunet_trainer_folder, trainer_search_folders

    folders = trainer_search_folders(environ=None if environ is None else dict(environ))
    found = class_definitions(folders).get(name)
    if not found:
        raise LookupError(
            f"no trainer named {name!r} in nnU-Net's trainers, the plugin's or the nnUNet_extTrainer folders "
            f"({', '.join(str(f) for f in folders[1:]) or 'none listed'}); check the spelling "
            f"(nnunet-lossplug trainers lists the plugin's and yours).")
    path = found[0].path.resolve()
    plugin_package = Path(__file__).resolve().parents[1] / "trainers"
    nnunet_folder = nnunet_trainer_folder()
    if path.is_relative_to(plugin_package):
        return TrainerLocation(name, "plugin", "nnunet_lossplug.trainers")
    if nnunet_folder is not None and path.is_relative_to(nnunet_folder.resolve()):
        package_root = nnunet_folder.resolve().parents[1]  # .../site-packages/nnunetv2
        dotted = ".".join(("nnunetv2", *path.relative_to(package_root).with_suffix("").parts))
        return TrainerLocation(name, "nnunet", dotted)
    return TrainerLocation(name, "user", str(path))


def load_trainer_class(path: str, name: str) -> type:
    """Class ``name`` of the user's trainer file ``path``, imported as nnU-Net would (its folder on ``sys.path``)."""
    file = Path(path)
    module_name = f"{USER_MODULE_PREFIX}_{hashlib.blake2b(str(file).encode(), digest_size=4).hexdigest()}"
    if module_name in sys.modules:
        return getattr(sys.modules[module_name], name)
    spec = importlib.util.spec_from_file_location(module_name, file)
    if spec is None or spec.loader is None:
        raise ImportError(f"{file} cannot be imported as a Python module.")
    module = importlib.util.module_from_spec(spec)
    folder = str(file.parent)
    added = folder not in sys.path
    if added:
        sys.path.insert(0, folder)
    sys.modules[module_name] = module
    try:
        spec.loader.exec_module(module)
    except BaseException:
        del sys.modules[module_name]
        raise
    finally:
        if added and folder in sys.path:
            sys.path.remove(folder)
    return getattr(module, name)


def trainer_class(location: TrainerLocation) -> type:
    """Import the class of ``location``; it must be a subclass of nnU-Net's ``nnUNetTrainer``.

    Raises:
        ValueError: one line, when the user's file fails to import or the class is not a trainer.
    """
    from nnunetv2.training.nnUNetTrainer.nnUNetTrainer import nnUNetTrainer

    if location.kind == "user":
        try:
            found = load_trainer_class(location.module, location.name)
        except Exception as error:  # noqa: BLE001 - a user's file: say which and why, nnUNetv2_train would fail too
            raise ValueError(f"{location.module}: importing it for {location.name} failed ({type(error).__name__}: "
                             f"{' '.join(str(error).split())}); fix the file (nnUNetv2_train would fail the same "
                             f"way).") from None
    else:
        found = getattr(importlib.import_module(location.module), location.name)
    if not (isinstance(found, type) and issubclass(found, nnUNetTrainer)):
        raise ValueError(f"{location.name} in {location.module} is not a subclass of nnU-Net's nnUNetTrainer; name a "
                         f"trainer class.")
    return found


def short_optimizer(base: type, adam_lr: float | None):
    """``base``'s optimiser spec, with initial rate ``adam_lr`` when it is Adam (SGD and None stay as declared)."""
    import torch

    spec = base.optimizer_spec
    if spec is None or adam_lr is None or spec.factory is not torch.optim.Adam:
        return spec
    return replace(spec, lr=adam_lr)


_HEADER = '''"""{base} on a short schedule (written by {writer}): {epochs} epochs x {iterations} iterations.

{note}
"""
'''

_IMPORT = {
    "plugin": "from nnunet_lossplug.trainers import {base} as _Base\n",
    "nnunet": "from {module} import {base} as _Base\n",
    "user": ("from nnunet_lossplug.benchmark.short_trainers import load_trainer_class\n\n"
             "_Base = load_trainer_class({module!r}, {base!r})  # your trainer file\n"),
}

_DECLARED_SCHEDULE = '''from nnunet_lossplug.benchmark.short_trainers import short_optimizer


class {name}(_Base):
    epochs = {epochs}
    iterations_per_epoch = {iterations}
    val_iterations_per_epoch = {val_iterations}
    optimizer_spec = short_optimizer(_Base, {adam_lr!r})
'''

_CONSTRUCTOR_SCHEDULE = '''import torch
{seed_import}

class {name}({mixin}_Base):{seed_comment}
    def __init__(self, plans, configuration, fold, dataset_json, device=torch.device("cuda")):
        super().__init__(plans, configuration, fold, dataset_json, device)
        self.num_epochs = {epochs}
        self.num_iterations_per_epoch = {iterations}
        self.num_val_iterations_per_epoch = {val_iterations}
'''


def short_trainer_source(location: TrainerLocation, name: str, schedule: ShortSchedule, writer: str,
                         note: str = "") -> str:
    """The source of a trainer file declaring ``name``: the trainer at ``location`` on ``schedule``.

    A :class:`~nnunet_lossplug.nnunet.LossPlugTrainer` subclass gets the schedule as declarations (and Adam's rate
    through :func:`short_optimizer`); any other ``nnUNetTrainer`` subclass gets it in its constructor, and the
    :class:`~nnunet_lossplug.nnunet.trainer.seeding.SeededTraining` mixin unless it has it already.
    """
    from nnunet_lossplug.nnunet import LossPlugTrainer
    from nnunet_lossplug.nnunet.trainer.seeding import SeededTraining

    base = trainer_class(location)
    values = dict(base=location.name, name=name, module=location.module, epochs=schedule.epochs,
                  iterations=schedule.iterations_per_epoch, val_iterations=schedule.val_iterations_per_epoch,
                  writer=writer, adam_lr=schedule.adam_lr, note=note or "Everything else is the named trainer's.")
    source = _HEADER.format(**values) + "\n" + _IMPORT[location.kind].format(**values)
    if issubclass(base, LossPlugTrainer):
        return source + _DECLARED_SCHEDULE.format(**values)
    seeded = issubclass(base, SeededTraining)
    return source + _CONSTRUCTOR_SCHEDULE.format(
        seed_import="" if seeded else "\nfrom nnunet_lossplug.nnunet.trainer.seeding import SeededTraining\n",
        mixin="" if seeded else "SeededTraining, ",
        seed_comment="" if seeded else "  # seeded by NNUNET_LOSSPLUG_SEED", **values)


def write_short_trainer(folder: Path, location: TrainerLocation, name: str, schedule: ShortSchedule, writer: str,
                        note: str = "") -> Path:
    """Write ``folder/<name>.py`` declaring ``name`` (the trainer at ``location`` on ``schedule``); returns it."""
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{name}.py"
    if path.is_symlink():
        raise FileExistsError(f"{path} is a symbolic link; the trainer file is not written through it.")
    path.write_text(short_trainer_source(location, name, schedule, writer, note))
    return path
