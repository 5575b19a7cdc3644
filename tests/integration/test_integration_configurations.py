"""Every nnU-Net configuration and training mode with the plugin's trainers, through nnU-Net's own CLI.

One tiny generated dataset (3 training cases of 24 x 48 x 48 voxels at 2 x 1.5 x 1.5 mm, one test case), planned
by nnU-Net's own planner with ``-gpu_memory_target 0.02`` (GB): that small memory target shrinks the 3d_fullres
patch to 12 x 24 x 20 voxels, less than a quarter of the median image, so the planner adds ``3d_lowres`` (at about
2.7 x 2.0 x 2.0 mm) and ``3d_cascade_fullres`` exactly as it does for large images. The plans are then narrowed
(8, 16, 32, 64 features per stage instead of 32 ... 320; everything else is nnU-Net's) and a one-fold
``splits_final.json`` (2 training cases, 1 validation case) is written, as users may. Every plugin trainer runs 2
epochs of 2 iterations (``save_every = 1``, so the kill test has a checkpoint to continue from) and validates
without test-time mirroring (8 passes per 3D tile would cost minutes on a CPU).

The module fixture runs the chain once: plan and preprocess; ``3d_lowres`` fold ``all`` (its final validation
writes nnU-Net's ``predicted_next_stage`` for every case); ``3d_cascade_fullres`` fold 0, killed in its second
epoch and continued with ``--c --npz --val_best``. The tests check each stage, then reuse the models for the cascade's
loader, fine-tuning, ``nnUNetv2_find_best_configuration`` and ``nnUNetv2_ensemble``.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import threading
from dataclasses import dataclass
from pathlib import Path

import blosc2
import numpy as np
import pytest
import SimpleITK as sitk
import torch
from batchgenerators.utilities.file_and_folder_operations import load_json
from helpers.fault_data import console_script
from helpers.label_maps import onehot_probe
from helpers.nnunet_runs import run_cli

from nnunet_lossplug import discovery
from nnunet_lossplug.demo.synthetic import SyntheticSpec, write_synthetic_dataset
from nnunet_lossplug.maps import MapKind, rw_map

pytestmark = pytest.mark.integration

DATASET_ID = 993
DATASET_NAME = f"Dataset{DATASET_ID}_LossPlugCascade"
SPEC = SyntheticSpec(num_training=3, num_test=1, shape=(24, 48, 48), spacing=(2.0, 1.5, 1.5), seed=2)
GPU_MEMORY_TARGET = "0.02"  # GB; 0.05 gives a 16 x 32 x 28 patch (over 25 % of the image): no 3d_lowres
NUM_CLASSES = 4
FOREGROUND = (1, 2, 3)
FLOAT16_ATOL = 2.0**-11
TRAINER = "nnUNetTrainerRRW_Tiny"

TINY_TRAINERS = '''
import torch
from nnunetv2.training.nnUNetTrainer.nnUNetTrainer import nnUNetTrainer

from nnunet_lossplug.trainers import nnUNetTrainerRRW, nnUNetTrainerSADice, nnUNetTrainerUnifiedUNet_SADiceWMLA


class _NoTestTimeMirroring:
    def perform_actual_validation(self, save_probabilities: bool = False):
        self.inference_allowed_mirroring_axes = None  # 8 mirrored passes per 3D tile cost minutes on a CPU
        super().perform_actual_validation(save_probabilities)


class nnUNetTrainer_Tiny(_NoTestTimeMirroring, nnUNetTrainer):
    """nnU-Net's own trainer (its default loss), 1 short epoch: the model users fine-tune from."""

    def __init__(self, plans, configuration, fold, dataset_json, device=torch.device("cuda")):
        super().__init__(plans, configuration, fold, dataset_json, device)
        self.num_epochs, self.num_iterations_per_epoch, self.num_val_iterations_per_epoch = 1, 2, 1


class _Short(_NoTestTimeMirroring):
    epochs = 2
    iterations_per_epoch = 2
    val_iterations_per_epoch = 1

    def __init__(self, plans, configuration, fold, dataset_json, device=torch.device("cuda")):
        super().__init__(plans, configuration, fold, dataset_json, device)  # nnU-Net reads this signature
        self.save_every = 1  # a checkpoint_latest.pth after every epoch but the last


class nnUNetTrainerRRW_Tiny(_Short, nnUNetTrainerRRW):
    pass


class nnUNetTrainerSADice_Tiny(_Short, nnUNetTrainerSADice):
    pass


class nnUNetTrainerUnifiedUNet_Tiny(_Short, nnUNetTrainerUnifiedUNet_SADiceWMLA):
    pass
'''


@dataclass
class Chain:
    env: dict[str, str]
    train_env: dict[str, str]
    raw: Path
    preprocessed: Path
    results: Path
    tmp: Path
    kill_log: str = ""

    def fold(self, configuration: str, fold: str = "0", trainer: str = TRAINER) -> Path:
        return self.results / DATASET_NAME / f"{trainer}__nnUNetPlans__{configuration}" / f"fold_{fold}"

    def train(self, configuration: str, fold: str, *extra: str, trainer: str = TRAINER):
        return run_cli(["nnUNetv2_train", str(DATASET_ID), configuration, fold, "-tr", trainer, "-device", "cpu",
                        *extra], self.train_env)

    def predict(self, configuration: str, fold: str, out: Path, *extra: str) -> Path:
        run_cli(["nnUNetv2_predict", "-i", str(self.raw / "imagesTs"), "-o", str(out), "-d", str(DATASET_ID), "-c",
                 configuration, "-f", fold, "-tr", TRAINER, "-device", "cpu", "-npp", "1", "-nps", "1",
                 "--disable_tta", "-step_size", "1", *extra], self.env)
        return out


def _train_killed_in_second_epoch(chain: Chain, configuration: str) -> str:
    """Start a training, SIGKILL it once epoch 1 has begun (checkpoint_latest.pth of epoch 0 written)."""
    argv = [console_script("nnUNetv2_train"), str(DATASET_ID), configuration, "0", "-tr", TRAINER, "-device", "cpu",
            "--npz"]
    process = subprocess.Popen(argv, env=chain.train_env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                               text=True, start_new_session=True)
    watchdog = threading.Timer(900, lambda: os.killpg(process.pid, signal.SIGKILL))
    watchdog.start()
    lines = []
    try:
        assert process.stdout is not None
        for line in process.stdout:
            lines.append(line)
            if line.rstrip().endswith(": Epoch 1"):
                os.killpg(process.pid, signal.SIGKILL)
                break
        process.wait(timeout=60)
    finally:
        watchdog.cancel()
    output = "".join(lines)
    assert process.returncode == -signal.SIGKILL, output[-4000:]
    return output


@pytest.fixture(scope="module")
def chain(nnunet_folders, tmp_path_factory) -> Chain:
    tmp = tmp_path_factory.mktemp("configurations")
    ext = tmp / "tiny_trainers"
    ext.mkdir()
    (ext / "tiny_trainers.py").write_text(TINY_TRAINERS)
    env = nnunet_folders.environ(**{discovery.ENV_VAR: discovery.ext_trainer_value(str(ext))})
    chain = Chain(env, {**env, "nnUNet_n_proc_DA": "0"}, nnunet_folders.raw / DATASET_NAME,
                  nnunet_folders.preprocessed / DATASET_NAME, nnunet_folders.results, tmp)
    write_synthetic_dataset(nnunet_folders.raw, DATASET_ID, "LossPlugCascade", SPEC)
    run_cli(["nnUNetv2_plan_and_preprocess", "-d", str(DATASET_ID), "-c", "2d", "3d_fullres", "3d_lowres",
             "-np", "2", "2", "2", "-npfp", "2", "-gpu_memory_target", GPU_MEMORY_TARGET,
             "-overwrite_plans_name", "nnUNetPlans"], env)
    plans_file = chain.preprocessed / "nnUNetPlans.json"  # nnU-Net's plans with narrower networks (8 features
    plans = json.loads(plans_file.read_text())           # at full resolution): the 3D tiles cost 1/16 on a CPU
    for configuration in plans["configurations"].values():
        if "architecture" in configuration:
            arch = configuration["architecture"]["arch_kwargs"]
            arch["features_per_stage"] = [min(8 * 2**i, 64) for i in range(len(arch["features_per_stage"]))]
    plans_file.write_text(json.dumps(plans, indent=1))
    cases = sorted(p.name[: -len("_0000.nii.gz")] for p in (chain.raw / "imagesTr").glob("*_0000.nii.gz"))
    splits = [{"train": cases[:-1], "val": cases[-1:]}]  # nnU-Net reads a user's splits_final.json: one fold
    (chain.preprocessed / "splits_final.json").write_text(json.dumps(splits))
    chain.train("3d_lowres", "all")  # its final validation writes predicted_next_stage for every case
    chain.predict("3d_lowres", "all", tmp / "pred_lowres")  # the cascade's -prev_stage_predictions
    chain.kill_log = _train_killed_in_second_epoch(chain, "3d_cascade_fullres")
    return chain


def _plans(chain: Chain) -> dict:
    return load_json(str(chain.preprocessed / "nnUNetPlans.json"))


def _seg(chain: Chain, data_identifier: str, identifier: str) -> np.ndarray:
    seg = np.asarray(blosc2.open(str(chain.preprocessed / data_identifier / f"{identifier}_seg.b2nd"))[:])
    labels = seg[0].astype(np.int64)
    labels[labels < 0] = 0
    return labels


def _check_prediction(folder: Path, chain: Chain) -> None:
    cases = sorted((chain.raw / "labelsTs").glob("*.nii.gz"))
    assert cases
    for case in cases:
        prediction = sitk.ReadImage(str(folder / case.name))
        assert prediction.GetSize() == sitk.ReadImage(str(case)).GetSize()
        assert set(np.unique(sitk.GetArrayFromImage(prediction)).tolist()) <= {0, *FOREGROUND}


# ---------------------------------------------------------------------------------------------- 3d_lowres
def test_3d_lowres_maps_at_the_lowres_spacing_train_and_predict(chain):
    configurations = _plans(chain)["configurations"]
    assert configurations["3d_lowres"]["next_stage"] == "3d_cascade_fullres"
    assert configurations["3d_cascade_fullres"] == {"inherits_from": "3d_fullres", "previous_stage": "3d_lowres"}
    low, full = configurations["3d_lowres"], configurations["3d_fullres"]
    assert all(a > b for a, b in zip(low["spacing"], full["spacing"]))
    assert (chain.fold("3d_lowres", "all") / "checkpoint_final.pth").is_file()

    caches = list((chain.preprocessed / "lossplug_cache").glob("nnUNetPlans__3d_lowres__rrw__*"))
    assert len(caches) == 1
    key = json.loads((caches[0] / "cache_key.json").read_text())
    assert key["configuration"] == "3d_lowres" and key["data_identifier"] == low["data_identifier"]
    identifier = sorted(p.stem for p in caches[0].glob("*.npy"))[0]
    labels = _seg(chain, low["data_identifier"], identifier)
    assert labels.shape != _seg(chain, full["data_identifier"], identifier).shape  # a coarser grid
    stored = np.load(caches[0] / f"{identifier}.npy")
    own = np.take_along_axis(rw_map(labels, NUM_CLASSES, "rrw", spacing=low["spacing"]), labels[None], axis=0)
    np.testing.assert_allclose(stored.astype(np.float32), own + 1.0, rtol=0, atol=FLOAT16_ATOL)

    next_stage = chain.fold("3d_lowres", "all").parent / "predicted_next_stage" / "3d_cascade_fullres"
    assert len(list(next_stage.glob("*.b2nd"))) == SPEC.num_training
    _check_prediction(chain.tmp / "pred_lowres", chain)


# ---------------------------------------------------------------------------------------------- cascade
def test_cascade_killed_then_continued_with_c_val_best_npz_and_predicted_on_the_lowres_stage(chain):
    fold = chain.fold("3d_cascade_fullres")
    assert "Epoch 1" in chain.kill_log
    assert (fold / "checkpoint_final.pth").exists() is False
    assert (fold / "checkpoint_latest.pth").is_file()
    result = chain.train("3d_cascade_fullres", "0", "--c", "--npz", "--val_best")  # validates checkpoint_best
    assert "Mean Validation Dice" in result.stdout and (fold / "checkpoint_best.pth").is_file()
    final = torch.load(fold / "checkpoint_final.pth", map_location="cpu", weights_only=False)
    assert final["current_epoch"] == 2  # epoch 0 from the killed run, epoch 1 after --c
    logs = sorted(fold.glob("training_log_*.txt"))
    assert len(logs) == 2 and "Epoch 0" not in logs[1].read_text() and "Epoch 1" in logs[1].read_text()
    assert list((fold / "validation").glob("*.npz")), "--npz wrote no validation probabilities"
    caches = list((chain.preprocessed / "lossplug_cache").glob("nnUNetPlans__3d_cascade_fullres__rrw__*"))
    assert len(caches) == 1 and len(list(caches[0].glob("*.npy"))) == SPEC.num_training

    out = chain.predict("3d_cascade_fullres", "0", chain.tmp / "pred_cascade", "-prev_stage_predictions",
                        str(chain.tmp / "pred_lowres"), "--save_probabilities")
    _check_prediction(out, chain)


def _cascade_trainer(chain: Chain, kind: MapKind | None):
    """The cascade's RRW trainer (or one carrying a one-hot probe map), built as nnU-Net's run_training does."""
    from nnunet_lossplug.trainers import nnUNetTrainerRRW as base

    cls = base if kind is None else type("ProbeCascadeTrainer", (base,), {"rw_map": kind})
    plans = {**_plans(chain), "continue_training": False}
    plans["configurations"]["3d_fullres"]["patch_size"] = [12, 24, 24]  # crops inside the case: real boxes
    trainer = cls(plans, "3d_cascade_fullres", 0, load_json(str(chain.preprocessed / "dataset.json")),
                  device=torch.device("cpu"))
    # nnU-Net looks for the previous stage under the same trainer's name: the tiny trainer's lowres stage
    trainer.folder_with_segs_from_previous_stage = str(
        chain.fold("3d_lowres", "all").parent / "predicted_next_stage" / "3d_cascade_fullres")
    trainer.initialize()
    trainer.maps.cache().ensure(num_processes=1, progress=False)
    return trainer


@pytest.fixture
def loader_settings(chain, monkeypatch):
    monkeypatch.setenv("nnUNet_n_proc_DA", "0")
    for key in ("nnUNet_raw", "nnUNet_preprocessed", "nnUNet_results"):
        monkeypatch.setenv(key, chain.env[key])
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def test_cascade_maps_stay_aligned_beside_the_previous_stage_channels(chain, loader_settings):
    """Image, one-hot previous stage and map meet in one tensor; each must come out where nnU-Net expects it.

    The loader's image is [image, map encoding]; the encoding leaves as the first transform, and nnU-Net's
    ``MoveSegAsOneHotToDataTransform`` appends the previous stage's one-hot channels later, so the network gets
    [image, one-hot(seg_prev)] (what ``nnUNetv2_predict -prev_stage_predictions`` gives it) and the loss gets
    the map. Checked on nnU-Net's validation loader by replaying its boxes (exact), and on the training
    loader (rotations, scaling, mirroring, the one-hot channels' morphology) with a one-hot probe map.
    """
    trainer = _cascade_trainer(chain, None)
    assert trainer.is_cascaded and trainer.num_input_channels == 1 + len(FOREGROUND)
    gen_tr, gen_val = trainer.get_dataloaders()
    loader = gen_val.data_loader
    patch = list(loader.patch_size)
    folder = Path(trainer.preprocessed_dataset_folder)
    previous = trainer.folder_with_segs_from_previous_stage
    for seed in (5, 6):
        np.random.seed(seed)
        batch = loader.generate_train_batch()
        np.random.seed(seed)
        keys = loader.get_indices()
        assert list(keys) == list(batch["keys"])
        targets, maps = trainer.decode_batch(batch)
        assert batch["data"].shape[1] == 1 + len(FOREGROUND)
        for j, identifier in enumerate(keys):
            case = trainer.dataset_class(str(folder), [identifier], folder_with_segs_from_previous_stage=previous)
            data, _, seg_prev, properties = case.load_case(identifier)
            lower, _ = loader.get_bbox(data.shape[1:], loader.get_do_oversample(j), properties["class_locations"])
            box = tuple(slice(lo, lo + n) for lo, n in zip(lower, patch))
            assert all(lo >= 0 and lo + n <= s for lo, n, s in zip(lower, patch, data.shape[1:]))
            prev = np.asarray(seg_prev[:])[box]
            np.testing.assert_array_equal(batch["data"][j, 0].numpy(), np.asarray(data[:])[0][box])
            for c, label in enumerate(FOREGROUND):
                np.testing.assert_array_equal(batch["data"][j, 1 + c].numpy(), (prev == label).astype(np.float32))
            labels = _seg(chain, trainer.configuration_manager.data_identifier, identifier)
            np.testing.assert_array_equal(targets[0][j, 0].numpy(), labels[box])
            own = np.take_along_axis(rw_map(labels, NUM_CLASSES, "rrw", spacing=trainer.configuration_manager.spacing),
                                     labels[None], axis=0)[0][box]
            dense = maps[0].dense()[j].numpy()
            np.testing.assert_allclose(np.take_along_axis(dense, labels[box][None], axis=0)[0], own, atol=FLOAT16_ATOL)
    for _ in range(2):  # training loader: maps structurally RRW at every level, one-hot channels binary
        batch = next(gen_tr)
        assert batch["data"].shape[1] == 1 + len(FOREGROUND)
        onehot = batch["data"][:, 1:]
        assert torch.all((onehot == 0) | (onehot == 1)) and torch.all(onehot.sum(1) <= 1)
        for target, z in zip(*trainer.decode_batch(batch)):
            z = z.dense()
            labels = target[:, 0].long()
            for k in range(NUM_CLASSES):
                assert torch.all(z[:, k][labels != k] == 1.0) and torch.all(z[:, k][labels == k] < 0.0)

    probe = _cascade_trainer(chain, MapKind("onehot_probe_cascade", onehot_probe))
    np.random.seed(3)
    torch.manual_seed(3)
    gen_tr, _ = probe.get_dataloaders()
    fractional = 0
    for _ in range(4):
        batch = next(gen_tr)
        targets, maps = probe.decode_batch(batch)
        for level, (target, z) in enumerate(zip(targets, maps)):
            top, winner = z.max(dim=1)
            clear = top > 0.6
            assert clear.float().mean() > 0.5
            assert torch.equal(winner[clear], target[:, 0].long()[clear])
            if level == 0:
                fractional += int(((z > 0.05) & (z < 0.95)).sum())
    assert fractional > 0  # some patches were rotated or scaled and the map interpolated with them


# ---------------------------------------------------------------------------------------------- fine-tuning
@pytest.fixture(scope="module")
def pretrained(chain) -> Path:
    """A checkpoint of nnU-Net's own trainer (2d), the starting point users fine-tune from."""
    chain.train("2d", "0", trainer="nnUNetTrainer_Tiny")
    return chain.fold("2d", trainer="nnUNetTrainer_Tiny") / "checkpoint_final.pth"


def test_fine_tuning_from_an_nnunet_checkpoint(chain, pretrained):
    for trainer in ("nnUNetTrainerRRW_Tiny", "nnUNetTrainerSADice_Tiny"):
        extra = ("--npz",) if trainer == TRAINER else ()  # the 2d member of the ensemble below
        result = chain.train("2d", "0", "-pretrained_weights", str(pretrained), *extra, trainer=trainer)
        assert "Loading pretrained weights from file" in result.stdout
        assert (chain.fold("2d", trainer=trainer) / "checkpoint_final.pth").is_file()

    argv = [console_script("nnUNetv2_train"), str(DATASET_ID), "2d", "0", "-tr", "nnUNetTrainerUnifiedUNet_Tiny",
            "-device", "cpu", "-pretrained_weights", str(pretrained)]
    result = subprocess.run(argv, env=chain.train_env, capture_output=True, text=True, timeout=600)
    output = result.stdout + result.stderr
    assert result.returncode != 0
    lines = [line for line in output.splitlines() if "PretrainedWeightsError" in line]
    assert lines, output[-3000:]
    message = lines[-1]
    for part in ("nnUNetTrainerUnifiedUNet_Tiny", str(pretrained), "nnUNetTrainer_Tiny", "without -pretrained_weights"):
        assert part in message, message
    assert "Loading pretrained weights" not in output and "shape of the parameters" not in output


# ---------------------------------------------------------------------------------------------- model selection
def test_find_best_configuration_and_ensemble_across_2d_3d_fullres_and_the_cascade(chain, pretrained):
    if not (chain.fold("2d") / "checkpoint_final.pth").is_file():  # when run alone
        chain.train("2d", "0", "-pretrained_weights", str(pretrained), "--npz")
    chain.train("3d_fullres", "0", "--npz")
    run_cli(["nnUNetv2_find_best_configuration", str(DATASET_ID), "-c", "2d", "3d_fullres", "3d_cascade_fullres",
             "-tr", TRAINER, "-f", "0", "-np", "2"], chain.env)
    info = json.loads((chain.results / DATASET_NAME / "inference_information.json").read_text())
    assert info["best_model_or_ensemble"]["selected_model_or_models"]
    ensembles = sorted((chain.results / DATASET_NAME / "ensembles").iterdir())
    assert len(ensembles) == 3 and any("3d_cascade_fullres" in e.name for e in ensembles)
    assert all((e / "summary.json").is_file() for e in ensembles)

    members = [chain.predict(c, "0", chain.tmp / f"pred_{c}", "--save_probabilities") for c in ("2d", "3d_fullres")]
    members.append(chain.tmp / "pred_cascade")
    if not (members[-1] / "plans.json").is_file():  # when run alone
        chain.predict("3d_cascade_fullres", "0", members[-1], "-prev_stage_predictions",
                      str(chain.tmp / "pred_lowres"), "--save_probabilities")
    out = chain.tmp / "ensemble"
    run_cli(["nnUNetv2_ensemble", "-i", *map(str, members), "-o", str(out), "-np", "1"], chain.env)
    _check_prediction(out, chain)


def test_the_cascade_without_the_previous_stage_refuses_at_start_in_one_line(chain, loader_settings):
    from nnunet_lossplug.nnunet.errors import PreviousStageMissingError

    trainer = _cascade_trainer(chain, None)
    folder = Path(trainer.folder_with_segs_from_previous_stage)
    moved = sorted(folder.glob("*.b2nd"))[0]
    aside = chain.tmp / moved.name
    moved.rename(aside)
    try:
        with pytest.raises(PreviousStageMissingError) as raised:
            trainer.on_train_start()
    finally:
        aside.rename(moved)
    message = str(raised.value)
    assert "\n" not in message and moved.name.split(".")[0] in message and "1 are missing" in message
    assert f"nnUNetv2_train {DATASET_NAME} 3d_lowres all -tr nnUNetTrainerRRW" in message
