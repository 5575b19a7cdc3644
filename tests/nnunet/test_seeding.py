"""Seeded training: ``NNUNET_LOSSPLUG_SEED`` / ``seed`` through nnU-Net's unchanged ``nnUNetv2_train``."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import torch
from helpers.nnunet_runs import run_cli

from nnunet_lossplug import discovery
from nnunet_lossplug.nnunet.trainer.seeding import (
    SEED_ENV_VAR,
    checkpoint_seed,
    parse_seed,
    resolve_seed,
    worker_seeds,
)

TINY_SEEDED = '''
from nnunet_lossplug.trainers import nnUNetTrainerRRW


class nnUNetTrainerRRW_TinySeeded(nnUNetTrainerRRW):
    epochs = 1
    iterations_per_epoch = 3
    val_iterations_per_epoch = 1
    seed = 5
'''
TRAINER = "nnUNetTrainerRRW_TinySeeded"


# ------------------------------------------------------------------ unit: seeds resolved and derived
def test_worker_seeds_are_distinct_and_repeatable():
    train, val = worker_seeds(3, 0, 12), worker_seeds(3, 1, 12)
    assert len(set(train + val)) == 24, "two workers (or training and validation) share a seed"
    assert worker_seeds(3, 0, 12) == train and worker_seeds(3, 0, 4) == train[:4]
    assert worker_seeds(4, 0, 12) != train
    assert all(isinstance(s, int) and 0 <= s < 2**32 for s in train + val)


def test_env_var_overrides_declaration_and_bad_values_name_the_fix(monkeypatch):
    monkeypatch.delenv(SEED_ENV_VAR, raising=False)
    assert resolve_seed(None, "T") is None
    assert resolve_seed(7, "T") == 7
    monkeypatch.setenv(SEED_ENV_VAR, " 11 ")
    assert resolve_seed(7, "T") == 11
    monkeypatch.setenv(SEED_ENV_VAR, "")
    assert resolve_seed(7, "T") == 7
    for bad in ("abc", "-1", "3.5", str(2**32)):
        monkeypatch.setenv(SEED_ENV_VAR, bad)
        with pytest.raises(ValueError, match=f"{SEED_ENV_VAR} = '{re.escape(bad)}' is not a seed; use an integer"):
            resolve_seed(None, "T")
    with pytest.raises(ValueError, match="T.seed = True is not a seed"):
        parse_seed(True, "T.seed")


def test_checkpoint_seed_reads_the_last_epoch():
    assert checkpoint_seed({"logging": {"lossplug_seed": [None, 4]}}) == 4
    assert checkpoint_seed({"logging": {"train_losses": [0.1]}}) is None


# ------------------------------------------------------------------ integration: two runs through nnU-Net's CLI
def _train(dataset, tmp_path: Path, run: str, **env: str) -> tuple[dict, str]:
    ext = tmp_path / "my_trainers"
    ext.mkdir(exist_ok=True)
    (ext / "tiny_seeded.py").write_text(TINY_SEEDED)
    results = tmp_path / run
    environ = dataset.folders.environ(nnUNet_n_proc_DA="0",
                                      **{discovery.ENV_VAR: discovery.ext_trainer_value(str(ext))})
    environ.pop(SEED_ENV_VAR, None)
    environ.update(nnUNet_results=str(results), **env)
    run_cli(["nnUNetv2_train", str(dataset.dataset_id), "2d", "0", "-tr", TRAINER, "-device", "cpu"], environ)
    fold = results / dataset.name / f"{TRAINER}__nnUNetPlans__2d" / "fold_0"
    checkpoint = torch.load(fold / "checkpoint_final.pth", map_location="cpu", weights_only=False)
    return checkpoint, next(fold.glob("training_log_*.txt")).read_text()


def _max_abs_diff(a: dict, b: dict) -> float:
    assert a.keys() == b.keys()
    return max(float((a[k].double() - b[k].double()).abs().max()) if a[k].numel() else 0.0 for k in a)


@pytest.mark.integration
def test_two_seeded_runs_end_with_identical_weights_and_losses(preprocessed_dataset, fresh_cache, tmp_path):
    """Declared seed 5, nnUNet_n_proc_DA=0: bit-identical checkpoint_final.pth weights and logged losses;
    NNUNET_LOSSPLUG_SEED=6 overrides the declaration and gives other weights."""
    first, log_first = _train(preprocessed_dataset, tmp_path, "a")
    second, _ = _train(preprocessed_dataset, tmp_path, "b")
    other, log_other = _train(preprocessed_dataset, tmp_path, "c", **{SEED_ENV_VAR: "6"})

    weights = first["network_weights"]
    diff = _max_abs_diff(weights, second["network_weights"])
    print(f"max |w_a - w_b| = {diff}; train losses {first['logging']['train_losses']} vs "
          f"{second['logging']['train_losses']}")
    assert diff == 0.0
    assert all(torch.equal(weights[k], second["network_weights"][k]) for k in weights)
    for key in ("train_losses", "val_losses", "dice_per_class_or_region"):
        assert first["logging"][key] == second["logging"][key], key

    assert checkpoint_seed(first) == checkpoint_seed(second) == 5 and checkpoint_seed(other) == 6
    assert "Seed: 5 " in log_first and "Seed: 6 " in log_other
    assert _max_abs_diff(weights, other["network_weights"]) > 0.0
    assert first["logging"]["train_losses"] != other["logging"]["train_losses"]


@pytest.mark.integration
def test_seeded_run_with_augmentation_workers_seeds_each_worker(preprocessed_dataset, fresh_cache, tmp_path):
    """nnUNet_n_proc_DA=2: nnU-Net's NonDetMultiThreadedAugmenter is restarted with one derived seed per worker."""
    checkpoint, log = _train(preprocessed_dataset, tmp_path, "workers", nnUNet_n_proc_DA="2", **{SEED_ENV_VAR: "9"})
    assert checkpoint_seed(checkpoint) == 9
    assert f"Augmentation workers (training) restarted with seeds {worker_seeds(9, 0, 2)}" in log
    assert f"Augmentation workers (validation) restarted with seeds {worker_seeds(9, 1, 1)}" in log
