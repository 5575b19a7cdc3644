"""Short-schedule trainer files (the benchmark's and the demo's): only epochs, iterations and Adam's rate change, for
the plugin's trainers, nnU-Net's own and a user's from an nnUNet_extTrainer folder."""

from __future__ import annotations

import os
import textwrap
from pathlib import Path

import torch
from nnunetv2.training.nnUNetTrainer.nnUNetTrainer import nnUNetTrainer

from nnunet_lossplug.benchmark.short_trainers import (
    SHORT_VALIDATION_ITERATIONS,
    ShortSchedule,
    TrainerLocation,
    locate_trainer,
    short_optimizer,
    short_trainer_source,
)
from nnunet_lossplug.nnunet import LossPlugTrainer
from nnunet_lossplug.nnunet.trainer.seeding import SeededTraining
from nnunet_lossplug.trainers import nnUNetTrainerDiceSquared, nnUNetTrainerRDDNet_Paper, nnUNetTrainerRRW

PLUGIN_RRW = TrainerLocation("nnUNetTrainerRRW", "plugin", "nnunet_lossplug.trainers")


def _declare(location: TrainerLocation, name: str, schedule: ShortSchedule) -> type:
    namespace: dict = {"__name__": "short_schedule_test"}
    exec(compile(short_trainer_source(location, name, schedule, "a test"), f"{name}.py", "exec"), namespace)
    return namespace[name]


def test_a_plugin_trainer_keeps_everything_but_the_schedule_and_adams_rate():
    base = nnUNetTrainerRRW
    short = _declare(PLUGIN_RRW, "RRWShort", ShortSchedule(7, 11, adam_lr=2e-3))
    assert short.__bases__ == (base,)  # the generated file imports the package's class itself
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
    assert _declare(PLUGIN_RRW, "RRWOwnRate", ShortSchedule(2, 3)).optimizer_spec.lr == 1e-4


def test_nnunets_own_trainer_is_found_and_gets_the_seed_mixin_and_the_schedule_in_its_constructor():
    location = locate_trainer("nnUNetTrainer")
    assert location == TrainerLocation("nnUNetTrainer", "nnunet", "nnunetv2.training.nnUNetTrainer.nnUNetTrainer")
    short = _declare(location, "DefaultShort", ShortSchedule(4, 9, adam_lr=1e-3))
    assert short.__mro__[1:3] == (SeededTraining, nnUNetTrainer)
    source = short_trainer_source(location, "DefaultShort", ShortSchedule(4, 9), "a test")
    assert "self.num_epochs = 4" in source and "self.num_iterations_per_epoch = 9" in source
    assert "initial_lr" not in source  # nnU-Net's SGD keeps its 1e-2
    assert locate_trainer("nnUNetTrainerRRW") == PLUGIN_RRW


def test_a_users_trainers_from_an_ext_trainer_folder_are_found_and_seeded_once(tmp_path: Path):
    folder = tmp_path / "my_trainers"
    folder.mkdir()
    (folder / "helpers_of_mine.py").write_text("EPOCHS = 77\n")
    (folder / "mine.py").write_text(textwrap.dedent("""
        from helpers_of_mine import EPOCHS  # a sibling module, as nnU-Net lets a trainer file import
        from nnunetv2.training.nnUNetTrainer.nnUNetTrainer import nnUNetTrainer
        from nnunet_lossplug.trainers import nnUNetTrainerRRW

        class MyPlainTrainer(nnUNetTrainer):
            pass

        class MyRRW(nnUNetTrainerRRW):
            epochs = EPOCHS
    """))
    environ = {**os.environ, "nnUNet_extTrainer": str(folder)}
    plain = locate_trainer("MyPlainTrainer", environ)
    assert plain == TrainerLocation("MyPlainTrainer", "user", str((folder / "mine.py").resolve()))
    assert len(plain.source_digest()) == 64
    short = _declare(plain, "MyPlainShort", ShortSchedule(3, 5))
    assert short.__mro__[1] is SeededTraining and short.__mro__[2].__name__ == "MyPlainTrainer"
    rrw = _declare(locate_trainer("MyRRW", environ), "MyRRWShort", ShortSchedule(3, 5, adam_lr=1e-3))
    assert issubclass(rrw, LossPlugTrainer) and rrw.__bases__[0].__name__ == "MyRRW"
    assert (rrw.epochs, rrw.optimizer_spec.lr) == (3, 1e-3)  # a LossPlugTrainer: seeded already, schedule declared


def test_trainers_only_writes_files_nnunet_finds_and_says_how_to_train_them(tmp_path: Path, capsys, monkeypatch):
    from nnunetv2.utilities.find_objects import recursive_find_trainer_class_by_name

    from nnunet_lossplug.cli import main

    assert main(["benchmark", "-d", "501", "--trainers", "nnUNetTrainer", "nnUNetTrainerRRW", "--epochs", "5",
                 "--iterations", "7", "--trainers-only", "-o", str(tmp_path / "short")]) == 0
    out = capsys.readouterr().out
    folder = tmp_path / "short" / "trainers"
    assert sorted(p.name for p in folder.glob("*.py")) == ["nnUNetTrainerRRW_q5x7_lr1em03.py",
                                                           "nnUNetTrainer_q5x7_lr1em03.py"]
    assert f'export nnUNet_extTrainer="${{nnUNet_extTrainer:+${{nnUNet_extTrainer}}:}}{folder}"' in out
    assert "NNUNET_LOSSPLUG_SEED=3 nnUNet_n_proc_DA=0" in out and "-tr nnUNetTrainer_q5x7_lr1em03" in out
    monkeypatch.setenv("nnUNet_extTrainer", str(folder))
    found = recursive_find_trainer_class_by_name("nnUNetTrainer_q5x7_lr1em03")  # nnU-Net's own lookup
    assert [k.__name__ for k in found.__mro__[:3]] == ["nnUNetTrainer_q5x7_lr1em03", "SeededTraining", "nnUNetTrainer"]


def test_a_broken_trainer_file_or_a_class_that_is_no_trainer_is_refused_in_one_line(tmp_path: Path):
    import pytest

    (tmp_path / "broken.py").write_text("import a_module_nobody_installed\n\nclass MyBrokenTrainer: ...\n")
    (tmp_path / "helpers.py").write_text("class MyHelperTrainerSettings:\n    epochs = 3\n")
    environ = {**os.environ, "nnUNet_extTrainer": str(tmp_path)}
    with pytest.raises(ValueError, match=r"broken.py: importing it for MyBrokenTrainer failed \(ModuleNotFoundError"):
        short_trainer_source(locate_trainer("MyBrokenTrainer", environ), "X", ShortSchedule(1, 1), "a test")
    with pytest.raises(ValueError, match="MyHelperTrainerSettings in .* is not a subclass of nnU-Net's nnUNetTrainer"):
        short_trainer_source(locate_trainer("MyHelperTrainerSettings", environ), "X", ShortSchedule(1, 1), "a test")
