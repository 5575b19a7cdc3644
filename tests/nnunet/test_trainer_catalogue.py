"""Every trainer of the plugin: discovered by nnU-Net, initialised, one training and one validation step.

The trainers run in this process on the shared preprocessed fixture with single-process data loading; a few
checks then cover what the declarations promise: the deep-supervision weights applied, the optimiser, the
epoch schedules after resume, and trainable weights saved and restored by a checkpoint.
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest
import torch
from batchgenerators.utilities.file_and_folder_operations import load_json
from nnunetv2.utilities.find_objects import recursive_find_trainer_class_by_name

from nnunet_lossplug import trainers
from nnunet_lossplug.losses import LossMixture, deep_supervision_weights
from nnunet_lossplug.trainer_listing import plugin_trainers

CATALOGUE = [entry.name for entry in plugin_trainers()]
FIFTY_EPOCHS = [name for name in CATALOGUE if name.endswith("_50epochs")]
STEPPED = [name for name in CATALOGUE if name not in FIFTY_EPOCHS]
REQUIRED = [
    "nnUNetTrainerRRW", "nnUNetTrainerRRW_BN", "nnUNetTrainerRRWOnline", "nnUNetTrainerRWBoundary",
    "nnUNetTrainerBoundaryDice", "nnUNetTrainerDiceOnly", "nnUNetTrainerFocal", "nnUNetTrainerCERRWWeighted",
    "nnUNetTrainerAC", "nnUNetTrainerHD", "nnUNetTrainerRRWDiceEqual", "nnUNetTrainerRRWDiceGradual",
    "nnUNetTrainerRRWCEEqual", "nnUNetTrainerRRWCEGradual", "nnUNetTrainerBoundaryCEEqual",
    "nnUNetTrainerBoundaryCEGradual", "nnUNetTrainerSADice", "nnUNetTrainerSADiceWMLA",
    "nnUNetTrainerSADiceWMLAUniform", "nnUNetTrainerSADiceWMLATrainable", "nnUNetTrainerSADiceWMLACE",
    "nnUNetTrainerPerImageDice", "nnUNetTrainerDiceSquared",
] + [f"nnUNetTrainerDice{w}{lr}" for w in ("Uniform", "Simple", "Square") for lr in ("", "_lr1e2")]


def test_catalogue_holds_every_trainer_the_papers_evaluate():
    assert set(REQUIRED) <= set(CATALOGUE)


@pytest.mark.parametrize("name", FIFTY_EPOCHS)
def test_fifty_epoch_variants_change_only_the_epochs(name):
    variant, base = getattr(trainers, name), getattr(trainers, name.removesuffix("_50epochs"))
    assert variant.__bases__ == (base,) and variant.epochs == 50
    assert {k for k in vars(variant) if not k.startswith("__")} == {"epochs"}


@pytest.fixture(autouse=True)
def _single_process_data_loading(monkeypatch):
    monkeypatch.setenv("nnUNet_n_proc_DA", "0")


def _make(name: str, dataset, configuration: str = "2d", resume: bool = False, **overrides):
    cls = getattr(trainers, name)
    if overrides:
        cls = type(name, (cls,), overrides)
    base = dataset.preprocessed_folder
    plans = load_json(str(base / "nnUNetPlans.json"))
    plans["continue_training"] = resume  # nnUNetv2_train sets this (nnU-Net >= 2.7)
    return cls(plans, configuration, 0, load_json(str(base / "dataset.json")), device=torch.device("cpu"))


def _finish(trainer) -> None:
    for loader in (trainer.dataloader_train, trainer.dataloader_val):
        if hasattr(loader, "_finish"):
            loader._finish()


@pytest.mark.integration
@pytest.mark.parametrize("name", STEPPED)
def test_trainer_is_discovered_initialises_and_steps(name, preprocessed_dataset):
    assert recursive_find_trainer_class_by_name(name) is getattr(trainers, name)  # nnU-Net's own discovery
    trainer = _make(name, preprocessed_dataset)
    trainer.on_train_start()  # initialise, precompute hook, data loaders
    try:
        trainer.on_epoch_start()
        trainer.on_train_epoch_start()
        train = trainer.train_step(next(trainer.dataloader_train))
        trainer.on_validation_epoch_start()
        with torch.no_grad():
            val = trainer.validation_step(next(trainer.dataloader_val))
    finally:
        _finish(trainer)
    assert np.isfinite(train["loss"]) and np.isfinite(val["loss"])
    # the deep-supervision weights the trainer declares are the ones applied
    criterion = trainer.loss.criterion
    levels = len(trainer._get_deep_supervision_scales())
    if trainer.ds_weights == "trainable":
        assert criterion.trainable and criterion.current_weights()[0] == 1.0
    else:
        assert criterion.current_weights() == pytest.approx(deep_supervision_weights(trainer.ds_weights, levels))
    if trainer.optimizer_spec is not None:
        assert isinstance(trainer.optimizer, trainer.optimizer_spec.factory)
        assert trainer.optimizer.param_groups[0]["lr"] == pytest.approx(trainer.optimizer_spec.lr)
    # a declared clip below nnU-Net's 12 runs in a step pre-hook of the optimiser (nnU-Net's train_step is not copied)
    assert len(trainer.optimizer._optimizer_step_pre_hooks) == (1 if trainer.grad_clip < 12 else 0)


@pytest.mark.integration
def test_gradual_schedule_and_trainable_weights_survive_resume(preprocessed_dataset):
    short = dict(epochs=3, iterations_per_epoch=2, val_iterations_per_epoch=1)
    trainer = _make("nnUNetTrainerSADiceWMLATrainable", preprocessed_dataset, **short)
    trainer.run_training()
    sigma = trainer.loss.criterion.sigma.detach().clone()
    assert torch.any(sigma != 0), "trainable weights did not move"
    checkpoint = f"{trainer.output_folder}/checkpoint_final.pth"

    resumed = _make("nnUNetTrainerSADiceWMLATrainable", preprocessed_dataset, resume=True, **short)
    resumed.load_checkpoint(checkpoint)
    assert resumed.current_epoch == 3
    assert torch.equal(resumed.loss.criterion.sigma.detach(), sigma)
    restored = [line for line in Path(resumed.log_file).read_text().splitlines()
                if "Deep-supervision weights restored from the checkpoint" in line]
    assert len(restored) == 1  # the log shows the restored weights, not only the initial ones
    weights = resumed.loss.criterion.current_weights()
    assert restored[0].rstrip().endswith(str(np.round(weights, 4).tolist()))

    gradual = _make("nnUNetTrainerRRWDiceGradual", preprocessed_dataset, **short)
    gradual.run_training()
    again = _make("nnUNetTrainerRRWDiceGradual", preprocessed_dataset, resume=True, **{**short, "epochs": 5})
    again.load_checkpoint(f"{gradual.output_folder}/checkpoint_final.pth")
    again.on_train_start()
    try:
        again.on_epoch_start()
        again.on_train_epoch_start()
    finally:
        _finish(again)
    mixture = next(m for m in again.loss.modules() if isinstance(m, LossMixture))
    assert again.current_epoch == 3
    assert mixture.alpha == pytest.approx(max((100 - 3) / 100, 0.01))
    assert not math.isclose(mixture.alpha, 1.0)
