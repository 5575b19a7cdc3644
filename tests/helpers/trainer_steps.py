"""One training step of a real trainer, built as nnU-Net builds it, with its device synchronisations counted.

The trainer class is found by nnU-Net's ``recursive_find_trainer_class_by_name`` (the plugin's trainers through
its trainer folder), constructed from a preprocessed dataset's plans and ``dataset.json`` as nnU-Net's
``get_trainer_from_args`` does, then ``initialize()``, ``on_train_start()`` (nnU-Net's data loaders, the plugin's
precompute hook), ``on_epoch_start()``, ``on_train_epoch_start()`` and one ``train_step`` on a batch of its own
training data loader.

On a CPU nnU-Net has no GradScaler (it makes one for CUDA only); :func:`counted_train_step` gives the trainer
``torch.amp.GradScaler("cpu")`` so that ``train_step`` takes the branch it takes on a GPU (scale, unscale, the
found-inf check, update), and counts with :class:`~nnunet_lossplug.nnunet.trainer.host_syncs.HostSyncCounter`
in device emulation.
"""

from __future__ import annotations

import contextlib
import io
from collections.abc import Iterator
from pathlib import Path

import torch
from batchgenerators.utilities.file_and_folder_operations import load_json

from nnunet_lossplug.discovery import trainers_folder
from nnunet_lossplug.nnunet.trainer.host_syncs import HostSyncCounter
from nnunet_lossplug.trainer_sources import class_definitions


def shipped_trainer_names() -> list[str]:
    """Every trainer the plugin ships (classes named ``nnUNetTrainer*`` in its trainer folder)."""
    return sorted(name for name in class_definitions([trainers_folder()]) if name.startswith("nnUNetTrainer"))


def trainer_class(name: str) -> type:
    """The class ``nnUNetv2_train -tr name`` uses (nnU-Net's search; its progress lines are not shown)."""
    from nnunetv2.utilities.find_objects import recursive_find_trainer_class_by_name

    with contextlib.redirect_stdout(io.StringIO()):
        return recursive_find_trainer_class_by_name(name)


def setup_key(cls: type) -> tuple:
    """What decides a trainer's training step: loss, map, placement, deep supervision, network. Names that
    differ only in epochs or learning rate share a key."""
    spec = getattr(cls, "loss_spec", None)
    return (spec.describe() if spec is not None else cls.__name__, getattr(cls, "rw_map", None),
            getattr(cls, "map_placement", None), str(getattr(cls, "ds_weights", None)),
            getattr(cls, "network_builder", None))


def distinct_setups(names: list[str]) -> list[str]:
    """The first name of every distinct :func:`setup_key`."""
    seen, chosen = set(), []
    for name in names:
        key = setup_key(trainer_class(name))
        if key not in seen:
            seen.add(key)
            chosen.append(name)
    return chosen


@contextlib.contextmanager
def started_trainer(cls: type, preprocessed_folder: Path, configuration: str = "2d",
                    device: torch.device = torch.device("cpu")) -> Iterator:  # noqa: B008
    """A trainer of ``cls`` set up as ``nnUNetv2_train`` sets it up, up to its first training step."""
    plans = load_json(str(preprocessed_folder / "nnUNetPlans.json"))
    dataset_json = load_json(str(preprocessed_folder / "dataset.json"))
    with contextlib.redirect_stdout(io.StringIO()):
        trainer = cls(plans={**plans, "continue_training": False}, configuration=configuration, fold=0,
                      dataset_json=dataset_json, device=device)
    try:
        with contextlib.redirect_stdout(io.StringIO()):
            trainer.initialize()
            trainer.on_train_start()
            trainer.on_epoch_start()
            trainer.on_train_epoch_start()
        yield trainer
    finally:
        for loader in (getattr(trainer, "dataloader_train", None), getattr(trainer, "dataloader_val", None)):
            if hasattr(loader, "_finish"):
                loader._finish()


def counted_train_step(trainer, strict: bool = False) -> tuple[HostSyncCounter, dict]:
    """One ``train_step`` on the trainer's next batch, with nnU-Net's CUDA branch (GradScaler), counted."""
    if trainer.grad_scaler is None:
        trainer.grad_scaler = torch.amp.GradScaler("cpu")
    batch = next(trainer.dataloader_train)
    with HostSyncCounter(trainer.device, [trainer.network, trainer.loss], [trainer.optimizer],
                         strict=strict) as counter:
        result = trainer.train_step(batch)
    return counter, result
