"""No shipped trainer's training step makes the host wait for the device more often than nnU-Net's own trainer.

This tier is what protects the GPU path until a GPU measures it: the tests run on CI's CPU and emulate what
differs on CUDA (see ``test_gpu_emulation_losses.py`` for device placement, autocast and the loss-level counts).
Here, every shipped trainer with a distinct training step (loss, map, placement, deep supervision, network) is
built as ``nnUNetv2_train`` builds it on the tiny dataset planned by nnU-Net, on a region-based dataset with an
ignore label and on a dataset with an ignore label, and one ``train_step`` on a batch of its own data loader is
counted with :class:`~nnunet_lossplug.nnunet.trainer.host_syncs.HostSyncCounter` (device emulation, nnU-Net's
GradScaler branch). nnU-Net's ``nnUNetTrainer`` on the same dataset is the bound: 2 (GradScaler's found-inf check,
the logged loss), 4 on the ignore-label dataset (its own loss reads the mask twice).
"""

from __future__ import annotations

import pytest
from helpers.label_datasets import write_label_dataset
from helpers.nnunet_runs import PreprocessedDataset, run_cli
from helpers.trainer_steps import (
    counted_train_step,
    distinct_setups,
    shipped_trainer_names,
    started_trainer,
    trainer_class,
)

from nnunet_lossplug.nnunet.errors import NonFiniteLossError, UnsupportedDatasetError

pytestmark = pytest.mark.integration

LABEL_DATASETS = {"ignore": (971, False, True), "regions_ignore": (972, True, True)}  # ids no other test uses


@pytest.fixture(scope="module")
def datasets(preprocessed_dataset, nnunet_folders) -> dict[str, PreprocessedDataset]:
    found = {"plain": preprocessed_dataset}
    for kind, (dataset_id, regions, ignore) in LABEL_DATASETS.items():
        name = f"LossPlugSync{kind.title().replace('_', '')}"
        write_label_dataset(nnunet_folders.raw, dataset_id, name, regions, ignore)
        run_cli(["nnUNetv2_plan_and_preprocess", "-d", str(dataset_id), "-c", "2d", "-np", "1", "-npfp", "1"],
                nnunet_folders.environ())
        found[kind] = PreprocessedDataset(nnunet_folders, dataset_id, f"Dataset{dataset_id:03d}_{name}")
    return found


@pytest.fixture(autouse=True)
def _in_process_loading(monkeypatch):
    monkeypatch.setenv("nnUNet_n_proc_DA", "0")  # nnU-Net's single-threaded augmenter: no worker processes


def step_syncs(name: str, dataset: PreprocessedDataset) -> tuple[int, list[str]] | None:
    """The synchronisations of one training step of trainer ``name``; None where the trainer refuses the data."""
    try:
        with started_trainer(trainer_class(name), dataset.preprocessed_folder) as trainer:
            counter, _ = counted_train_step(trainer)
    except UnsupportedDatasetError:  # e.g. per-patch maps on region targets: refused at start, by design
        return None
    return counter.count, counter.events


@pytest.mark.parametrize("kind", ["plain", *LABEL_DATASETS])
def test_no_trainer_step_synchronises_more_than_nnunets_own(datasets, kind):
    dataset = datasets[kind]
    bound, events = step_syncs("nnUNetTrainer", dataset)
    assert bound >= 2, events  # the counter sees nnU-Net's own two (a blind counter would pass everything)
    worse = []
    for name in distinct_setups(shipped_trainer_names()):
        measured = step_syncs(name, dataset)
        if measured is not None and measured[0] > bound:
            worse.append(f"{name}: {measured[0]} ({'; '.join(measured[1])})")
    assert not worse, f"nnUNetTrainer synchronises {bound} times per step on {kind}; these more:\n" + "\n".join(worse)


def test_a_bad_label_in_a_batch_still_stops_the_step_naming_the_cases_and_the_label(preprocessed_dataset):
    """The label check runs on the device during the step; the loss turns NaN, the stop names the cause."""
    with started_trainer(trainer_class("nnUNetTrainerDiceOnly"), preprocessed_dataset.preprocessed_folder) as trainer:
        batch = next(trainer.dataloader_train)
        for level in batch["target"]:
            level[0, 0, 0, 0] = 7  # a label the dataset does not have
        with pytest.raises(NonFiniteLossError) as stop:
            trainer.train_step(batch)
    message = str(stop.value)
    assert "label values must lie in [0, K) = [0, 4), found [7]" in message, message
    assert all(str(key) in message for key in batch["keys"]) and "\n" not in message
