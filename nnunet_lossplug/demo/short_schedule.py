"""Trainer files that run an existing trainer on a short, CPU-sized schedule (the demo and ``bench_quality``).

nnU-Net's own trainers run 1000 epochs of 250 iterations, the papers' trainers 300: far beyond a CPU. A short
schedule keeps everything of the trainer it names (loss, maps, deep supervision, optimiser, poly learning-rate
rule) and changes only the number of epochs and iterations and, for trainers that declare Adam, the initial
learning rate: the papers' Adam rate (1e-4) is meant for hundreds of epochs. nnU-Net's SGD trainers keep their
rate (1e-2). nnU-Net's own trainers get the :class:`~nnunet_lossplug.nnunet.trainer.seeding.SeededTraining`
mixin so that ``NNUNET_LOSSPLUG_SEED`` seeds them like the plugin's.

The file written is a trainer declaration like any user's: nnU-Net finds the class through ``nnUNet_extTrainer``.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

#: validation iterations per epoch on a short schedule (nnU-Net: 50); only nnU-Net's pseudo-Dice uses them
SHORT_VALIDATION_ITERATIONS = 4


@dataclass(frozen=True)
class ShortSchedule:
    """Epochs, iterations per epoch and the initial learning rate for Adam trainers (None: the trainer's own)."""

    epochs: int
    iterations_per_epoch: int
    adam_lr: float | None = None


_PLUGIN_TEMPLATE = '''"""{base} on a short schedule (written by {writer}): {epochs} epochs x {iterations} iterations.

{note}
"""

from nnunet_lossplug.demo.short_schedule import short_optimizer
from nnunet_lossplug.trainers import {base}


class {name}({base}):
    epochs = {epochs}
    iterations_per_epoch = {iterations}
    val_iterations_per_epoch = {val_iterations}
    optimizer_spec = short_optimizer({base}, {adam_lr!r})
'''

_NNUNET_TEMPLATE = '''"""nnU-Net's {base} on a short schedule (written by {writer}): {epochs} x {iterations} iterations.

{note}
"""

import torch
from {module} import {base}

from nnunet_lossplug.nnunet.trainer.seeding import SeededTraining


class {name}(SeededTraining, {base}):  # seeded by NNUNET_LOSSPLUG_SEED
    def __init__(self, plans, configuration, fold, dataset_json, device=torch.device("cuda")):
        super().__init__(plans, configuration, fold, dataset_json, device)
        self.num_epochs = {epochs}
        self.num_iterations_per_epoch = {iterations}
        self.num_val_iterations_per_epoch = {val_iterations}
'''


def short_optimizer(base: type, adam_lr: float | None):
    """``base``'s optimiser spec, with initial rate ``adam_lr`` when it is Adam (SGD and None stay as declared)."""
    from dataclasses import replace

    import torch

    spec = base.optimizer_spec
    if spec is None or adam_lr is None or spec.factory is not torch.optim.Adam:
        return spec
    return replace(spec, lr=adam_lr)


def is_plugin_trainer(base: str) -> bool:
    """True for a trainer of :mod:`nnunet_lossplug.trainers`, False for one of nnU-Net's own."""
    from nnunet_lossplug import trainers

    return base.startswith("nnUNetTrainer") and base in trainers.__all__


def nnunet_trainer_module(base: str) -> str:
    """The module of nnU-Net's own trainer ``base`` (found with nnU-Net's lookup); KeyError if none."""
    from os.path import join

    import nnunetv2
    from nnunetv2.utilities.find_class_by_name import recursive_find_python_class

    cls = recursive_find_python_class(join(nnunetv2.__path__[0], "training", "nnUNetTrainer"), base,
                                      "nnunetv2.training.nnUNetTrainer")
    if cls is None:
        raise KeyError(f"No trainer named {base!r} in nnunet_lossplug.trainers or in nnU-Net's.")
    return cls.__module__


def short_schedule_source(base: str, name: str, schedule: ShortSchedule, writer: str, note: str = "") -> str:
    """The source of a trainer file declaring ``name``: ``base`` on ``schedule``."""
    values = dict(base=base, name=name, epochs=schedule.epochs, iterations=schedule.iterations_per_epoch,
                  val_iterations=SHORT_VALIDATION_ITERATIONS, writer=writer,
                  note=note or "Everything else is the named trainer's.")
    if is_plugin_trainer(base):
        return _PLUGIN_TEMPLATE.format(adam_lr=schedule.adam_lr, **values)
    return _NNUNET_TEMPLATE.format(module=nnunet_trainer_module(base), **values)


def write_short_schedule_trainer(folder: Path, base: str, name: str, schedule: ShortSchedule, writer: str,
                                 note: str = "") -> Path:
    """Write ``folder/<name>.py`` declaring ``name`` (``base`` on ``schedule``); returns the file."""
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{name}.py"
    path.write_text(short_schedule_source(base, name, schedule, writer, note))
    return path
