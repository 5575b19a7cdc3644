"""The collapse guard: its rule on hand-made pseudo-Dice sequences, then two real nnU-Net trainings.

The real collapse: a class whose output bias starts at -200 in every segmentation head has softmax exactly 0,
so the RW loss alone sends it exactly no gradient (Valverde & Tohka 2022 eq. 2) and it stays lost -- the failure mode
the
guard is for, produced by training, not by a fake logger. The healthy run adds a cross-entropy term.
"""

from __future__ import annotations

import json
import math

import pytest
import torch
from helpers.nnunet_runs import run_cli

from nnunet_lossplug import discovery
from nnunet_lossplug.nnunet.errors import LossPlugError, TrainerSettingError
from nnunet_lossplug.nnunet.trainer.collapse_guard import CollapseGuard, collapse_events


def test_fires_once_after_patience_epochs_at_zero_and_names_the_class():
    guard = CollapseGuard(patience=3, warmup=0, class_names=["1 (RV)", "2 (MYO)"])
    assert guard.update(0, [0.5, 0.0]) == []
    assert guard.update(1, [0.6, 0.0]) == []
    (event,) = guard.update(2, [0.7, 0.004])
    assert (event.class_index, event.first_epoch, event.last_epoch, event.epochs) == (1, 0, 2, 3)
    message = event.message()
    assert "2 (MYO)" in message and "epochs 0-2" in message and "eq. 2" in message
    assert "nnUNetTrainerRRWCE" in message
    assert guard.update(3, [0.7, 0.0]) == []  # once per collapse, not every epoch


def test_warmup_epochs_are_not_watched():
    history = [[0.0]] * 4 + [[0.5]]
    assert collapse_events(history, patience=2, warmup=4) == []
    assert [e.last_epoch for e in collapse_events(history, patience=2, warmup=2)] == [3]


def test_a_nonzero_epoch_ends_the_run_and_a_recovered_class_is_watched_again():
    history = [[0.0], [0.0], [0.3], [0.0], [0.0], [0.0], [0.9], [0.0], [0.0], [0.0]]
    events = collapse_events(history, patience=3)
    assert [(e.first_epoch, e.last_epoch) for e in events] == [(3, 5), (7, 9)]


def test_nan_neither_extends_nor_ends_a_run():
    history = [[0.0], [math.nan], [0.0]]
    assert collapse_events(history, patience=3) == []
    assert [(e.first_epoch, e.last_epoch) for e in collapse_events(history + [[0.0]], patience=3)] == [(0, 3)]


@pytest.mark.parametrize("patience, warmup", [(0, 0), (2.5, 0), (2, -1), (True, 0)])
def test_bad_settings_are_refused_with_the_way_out(patience, warmup):
    # a LossPlugError: one line under nnUNetv2_train, not a traceback; still a ValueError for code that catches those
    with pytest.raises(TrainerSettingError, match="collapse") as refused:
        CollapseGuard(patience, warmup)
    assert isinstance(refused.value, LossPlugError) and isinstance(refused.value, ValueError)


TRAINERS = '''
import random

import numpy as np
import torch

from nnunet_lossplug.nnunet import adam
from nnunet_lossplug.trainers import nnUNetTrainerRRW, nnUNetTrainerRRWCEEqual


class _Short:
    epochs = 4
    iterations_per_epoch = 4
    val_iterations_per_epoch = 2
    optimizer_spec = adam(lr=1e-3)
    collapse_patience = 2
    collapse_warmup = 1

    def __init__(self, plans, configuration, fold, dataset_json, device=torch.device("cuda")):
        torch.set_num_threads(1)  # nnUNetv2_train asks for one per core, which oversubscribes a shared machine
        random.seed(0)
        np.random.seed(0)
        torch.manual_seed(0)
        super().__init__(plans, configuration, fold, dataset_json, device)


class nnUNetTrainerRRW_ClassOff(_Short, nnUNetTrainerRRW):
    """RW loss alone; class 2 starts with softmax exactly 0 in every head, so it gets no gradient."""

    def initialize(self):
        super().initialize()
        with torch.no_grad():
            for head in self.network.decoder.seg_layers:
                head.bias[2] = -200.0  # softmax exp(-200) is exactly 0 in float32


class nnUNetTrainerRRWCE_Healthy(_Short, nnUNetTrainerRRWCEEqual):
    """CE + RRW, a run that learns every class."""
'''


def _train(preprocessed_dataset, tmp_path, trainer: str):
    ext = tmp_path / "trainers"
    ext.mkdir(exist_ok=True)
    (ext / "guard_trainers.py").write_text(TRAINERS)
    env = preprocessed_dataset.folders.environ(**{discovery.ENV_VAR: discovery.ext_trainer_value(str(ext))},
                                               nnUNet_n_proc_DA="0")
    result = run_cli(["nnUNetv2_train", str(preprocessed_dataset.dataset_id), "2d", "0", "-tr", trainer,
                      "-device", "cpu"], env)
    fold = preprocessed_dataset.folders.results / preprocessed_dataset.name / f"{trainer}__nnUNetPlans__2d" / "fold_0"
    log = next(fold.glob("training_log_*.txt")).read_text()
    pseudo = torch.load(fold / "checkpoint_final.pth", map_location="cpu", weights_only=False)["logging"][
        "dice_per_class_or_region"]
    return result.stdout + result.stderr, log, [[float(v) for v in epoch] for epoch in pseudo]


@pytest.mark.integration
def test_guard_warns_on_a_class_that_really_collapses_in_nnunet_training(preprocessed_dataset, tmp_path):
    console, log, pseudo = _train(preprocessed_dataset, tmp_path, "nnUNetTrainerRRW_ClassOff")
    labels = json.loads((preprocessed_dataset.raw_folder / "dataset.json").read_text())["labels"]
    name = next(k for k, v in labels.items() if v == 2)  # output channel 2 is label 2
    # the class really is lost: nnU-Net's own pseudo-Dice for it (foreground labels 1, 2, 3) is 0 in every epoch
    assert [epoch[1] for epoch in pseudo] == [0.0] * 4
    warning = f"Class 2 ({name}) has collapsed"
    assert warning in log and warning in console  # to the log file and to the console
    assert "epochs 1-2" in log  # after the 1-epoch warm-up, at the 2nd epoch at 0
    assert log.count(warning) == 1  # once per collapse, not every epoch


@pytest.mark.integration
def test_guard_is_silent_on_a_healthy_run(preprocessed_dataset, tmp_path):
    console, log, pseudo = _train(preprocessed_dataset, tmp_path, "nnUNetTrainerRRWCE_Healthy")
    assert all(value >= 0.01 for epoch in pseudo[1:] for value in epoch), f"not a healthy run: {pseudo}"
    assert "has collapsed" not in log and "has collapsed" not in console
