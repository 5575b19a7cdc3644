"""Short-schedule trainer files (the demo's and ``bench_quality``'s): only epochs, iterations and Adam's rate change."""

from __future__ import annotations

import torch
from nnunetv2.training.nnUNetTrainer.nnUNetTrainer import nnUNetTrainer

from nnunet_lossplug.demo.short_schedule import (
    SHORT_VALIDATION_ITERATIONS,
    ShortSchedule,
    short_optimizer,
    short_schedule_source,
)
from nnunet_lossplug.nnunet.trainer.seeding import SeededTraining
from nnunet_lossplug.trainers import nnUNetTrainerDiceSquared, nnUNetTrainerRDDNet_Paper, nnUNetTrainerRRW


def _declare(base: str, name: str, schedule: ShortSchedule) -> type:
    namespace: dict = {"__name__": "short_schedule_test"}
    exec(compile(short_schedule_source(base, name, schedule, "a test"), f"{name}.py", "exec"), namespace)
    return namespace[name]


def test_a_plugin_trainer_keeps_everything_but_the_schedule_and_adams_rate():
    base = nnUNetTrainerRRW
    short = _declare("nnUNetTrainerRRW", "RRWShort", ShortSchedule(7, 11, adam_lr=2e-3))
    assert short.__bases__ == (base,)  # the generated file imports the package's class itself
    assert "from nnunet_lossplug.trainers import nnUNetTrainerRRW\n" in short_schedule_source(
        "nnUNetTrainerRRW", "RRWShort", ShortSchedule(7, 11), "a test")
    assert (short.epochs, short.iterations_per_epoch, short.val_iterations_per_epoch) == (
        7, 11, SHORT_VALIDATION_ITERATIONS)
    assert short.optimizer_spec.factory is torch.optim.Adam and short.optimizer_spec.lr == 2e-3
    assert short.optimizer_spec.kwargs == base.optimizer_spec.kwargs  # weight decay etc. as declared
    assert base.optimizer_spec.lr == 1e-4, "the paper's trainer itself was changed"
    assert (short.loss_spec, short.rw_map, short.ds_weights) == (base.loss_spec, base.rw_map, base.ds_weights)


def test_sgd_and_undeclared_optimisers_keep_their_rate():
    rdd = nnUNetTrainerRDDNet_Paper
    assert short_optimizer(rdd, 5e-2) is rdd.optimizer_spec and rdd.optimizer_spec.lr == 1e-3
    squared = nnUNetTrainerDiceSquared  # declares none: nnU-Net's SGD
    assert squared.optimizer_spec is None and short_optimizer(squared, 5e-2) is None
    assert _declare("nnUNetTrainerRRW", "RRWOwnRate", ShortSchedule(2, 3)).optimizer_spec.lr == 1e-4


def test_nnunets_own_trainer_gets_the_seed_mixin_and_the_schedule_in_its_constructor():
    short = _declare("nnUNetTrainer", "DefaultShort", ShortSchedule(4, 9, adam_lr=1e-3))
    assert short.__mro__[1:3] == (SeededTraining, nnUNetTrainer)
    source = short_schedule_source("nnUNetTrainer", "DefaultShort", ShortSchedule(4, 9), "a test")
    assert "self.num_epochs = 4" in source and "self.num_iterations_per_epoch = 9" in source
    assert "initial_lr" not in source  # nnU-Net's SGD keeps its 1e-2
