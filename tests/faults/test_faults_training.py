"""Faults at training time, through nnU-Net's own ``nnUNetv2_train`` on tiny data.

- A training loss that becomes non-finite stops the run at once with the batch's cases and what to check,
  instead of finishing with ``train_loss nan`` and a NaN checkpoint.
- A class with no voxel in the fold's training cases stops the class-weighted Dice trainers at start (its
  paper weight ``N / ε`` would dominate the loss), naming the class, the fold and the ways out.
"""

from __future__ import annotations

import json
import os
import subprocess

import pytest
from helpers.fault_data import console_script, copy_dataset
from helpers.nnunet_runs import DATASET_ID

from nnunet_lossplug import discovery

pytestmark = pytest.mark.integration

NAN_PROBE = '''
from nnunet_lossplug.losses import DiceLoss
from nnunet_lossplug.nnunet import LossPlugTrainer, LossSpec, TrainingSetClassWeights


class ExplodingDice(DiceLoss):
    """Multi-class Dice times NaN: what a diverged run or a corrupted input gives the trainer."""

    def forward(self, logits, target):
        return super().forward(logits, target) * float("nan")


class nnUNetTrainerNaNProbe(LossPlugTrainer):
    """Dice loss that turns NaN (fault test)."""

    loss_spec = LossSpec(ExplodingDice, batch_dice=False, class_weights=TrainingSetClassWeights("simple", True))
    epochs = 1
    iterations_per_epoch = 2
    val_iterations_per_epoch = 1
'''


SHORT_PAPER_001 = '''
from nnunet_lossplug.trainers import nnUNetTrainerDiceSimple, nnUNetTrainerDiceSquare


class nnUNetTrainerDiceSquare_Short(nnUNetTrainerDiceSquare):
    epochs = 1
    iterations_per_epoch = 2
    val_iterations_per_epoch = 1


class nnUNetTrainerDiceSimple_Short(nnUNetTrainerDiceSimple):
    epochs = 1
    iterations_per_epoch = 2
    val_iterations_per_epoch = 1
'''


def _train(dataset: str, trainer: str, env: dict[str, str]) -> subprocess.CompletedProcess:
    argv = [console_script("nnUNetv2_train"), dataset, "2d", "0", "-tr", trainer, "-device", "cpu"]
    return subprocess.run(argv, env=env, capture_output=True, text=True, timeout=600)


def test_a_non_finite_training_loss_stops_with_the_cases_and_what_to_check(preprocessed_dataset, tmp_path):
    folder = tmp_path / "my_trainers"
    folder.mkdir()
    (folder / "nan_probe.py").write_text(NAN_PROBE)
    env = preprocessed_dataset.folders.environ(nnUNet_n_proc_DA="0",
                                               **{discovery.ENV_VAR: discovery.ext_trainer_value(str(folder))})
    result = _train(str(DATASET_ID), "nnUNetTrainerNaNProbe", env)
    output = result.stdout + result.stderr
    fold = (preprocessed_dataset.folders.results / preprocessed_dataset.name
            / "nnUNetTrainerNaNProbe__nnUNetPlans__2d" / "fold_0")
    assert result.returncode != 0, output[-3000:]
    assert not (fold / "checkpoint_final.pth").exists()
    assert "NonFiniteLossError" in output and "non-finite training loss" in output, output[-3000:]
    message = [line for line in output.splitlines() if "non-finite training loss" in line][-1]
    ids = sorted(p.name[: -len(".pkl")] for p in (preprocessed_dataset.preprocessed_folder / "nnUNetPlans_2d")
                 .glob("*.pkl"))
    assert any(identifier in message for identifier in ids), message
    assert "learning rate" in message and "nnunet-lossplug precompute" not in message  # no maps in this trainer
    log = next(fold.glob("training_log_*.txt")).read_text()
    assert "Class weights (simple, normalised)" in log, log[-3000:]  # the weights in use are logged
    assert "maps: none" in log


def test_a_class_absent_from_the_training_fold_stops_the_class_weighted_trainers(preprocessed_dataset, tmp_path):
    copy = copy_dataset(preprocessed_dataset.preprocessed_folder, 997, "ZeroClass")
    try:
        dataset_json = json.loads((copy.folder / "dataset.json").read_text())
        dataset_json["labels"]["extra"] = 4  # declared, but in no training case
        (copy.folder / "dataset.json").write_text(json.dumps(dataset_json))
        folder = tmp_path / "short_trainers"  # the paper's trainers, 1 short epoch (bounded on unfixed code too)
        folder.mkdir()
        (folder / "short_paper_001.py").write_text(SHORT_PAPER_001)
        env = copy.environ(nnUNet_n_proc_DA="0", **{discovery.ENV_VAR: discovery.ext_trainer_value(str(folder))})
        for trainer in ("nnUNetTrainerDiceSquare_Short", "nnUNetTrainerDiceSimple_Short"):
            result = _train("997", trainer, env)
            output = result.stdout + result.stderr
            assert result.returncode != 0, output[-3000:]
            message = [line for line in output.splitlines() if "no voxel" in line]
            assert message, output[-3000:]
            assert "class 4 (extra)" in message[-1] and "fold 0" in message[-1], message[-1]
            assert "splits_final.json" in message[-1] and "nnUNetTrainerDiceUniform" in message[-1]
            assert "np.int64" not in message[-1]
    finally:
        copy.remove()


TWICE = '''
from nnunet_lossplug.losses import DiceLoss
from nnunet_lossplug.nnunet import LossPlugTrainer, LossSpec


class ExplodingDice(DiceLoss):
    def forward(self, logits, target):
        return super().forward(logits, target) * float("nan")  # stops the run at its first step


class nnUNetTrainerDefinedTwice(LossPlugTrainer):
    """{which} definition."""

    loss_spec = LossSpec(ExplodingDice, batch_dice=False)
    epochs = 1
    iterations_per_epoch = 2
    val_iterations_per_epoch = 1
'''


def test_a_trainer_whose_name_is_defined_twice_warns_at_start(preprocessed_dataset, tmp_path):
    first, second = tmp_path / "team_trainers", tmp_path / "my_trainers"
    for folder, which in ((first, "The team's"), (second, "My")):
        folder.mkdir()
        (folder / f"{folder.name}.py").write_text(TWICE.replace("{which}", which))
    folders = discovery.ext_trainer_value(os.pathsep.join([str(first), str(second)]))
    env = preprocessed_dataset.folders.environ(nnUNet_n_proc_DA="0", **{discovery.ENV_VAR: folders})
    result = _train(str(DATASET_ID), "nnUNetTrainerDefinedTwice", env)
    output = result.stdout + result.stderr
    assert "non-finite training loss" in output, output[-3000:]  # it ran up to its first step
    warned = [line for line in output.splitlines() if "defined in 2 files" in line]
    assert warned, output[-3000:]
    assert str(first / "team_trainers.py") in warned[0] and str(second / "my_trainers.py") in warned[0], warned[0]
    assert "this run uses" in warned[0]
