"""nnU-Net's own entry points with the plugin installed: discovery, plan/preprocess, train, predict."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import SimpleITK as sitk
from helpers.nnunet_runs import run_cli

from nnunet_lossplug import discovery

TINY_TRAINER = '''
from nnunet_lossplug.trainers import nnUNetTrainerRRW


class nnUNetTrainerRRW_Tiny(nnUNetTrainerRRW):
    epochs = 1
    iterations_per_epoch = 2
    val_iterations_per_epoch = 1
'''


def _find_trainer_in_fresh_python(env: dict[str, str], cwd: Path) -> subprocess.CompletedProcess:
    code = ("from nnunetv2.utilities.find_objects import recursive_find_trainer_class_by_name as f;"
            "print('FOUND', f('nnUNetTrainerRRW').__name__)")
    return subprocess.run([sys.executable, "-c", code], env=env, cwd=cwd, capture_output=True, text=True, timeout=300)


def test_nnunet_finds_trainers_without_any_setting(tmp_path):
    """The installed .pth registers the trainer folder at start-up, from any working directory."""
    env = {k: v for k, v in os.environ.items() if k not in (discovery.ENV_VAR, "PYTHONPATH")}
    result = _find_trainer_in_fresh_python(env, tmp_path)
    assert result.returncode == 0, result.stderr[-3000:]
    assert "FOUND nnUNetTrainerRRW" in result.stdout


def test_user_entries_in_ext_trainer_are_kept(tmp_path):
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    env[discovery.ENV_VAR] = str(tmp_path)
    code = "import os; print(os.environ['nnUNet_extTrainer'])"
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True).stdout.strip()
    assert out.split(os.pathsep) == [str(discovery.trainers_folder()), str(tmp_path)]  # ours first, then theirs


def test_opt_out_gives_nnunets_error_and_env_names_the_fix(tmp_path):
    env = {k: v for k, v in os.environ.items() if k not in (discovery.ENV_VAR, "PYTHONPATH")}
    env[discovery.OPT_OUT_VAR] = "1"
    result = _find_trainer_in_fresh_python(env, tmp_path)
    assert result.returncode != 0 and "Could not find requested nnunet trainer" in result.stderr
    env_cmd = subprocess.run([str(Path(sys.executable).parent / "nnunet-lossplug"), "env"], env=env,
                             capture_output=True, text=True)
    assert env_cmd.returncode == 1
    assert discovery.shell_export_line() in env_cmd.stdout
    # the printed line really fixes it
    env[discovery.ENV_VAR] = str(discovery.trainers_folder())
    assert "FOUND nnUNetTrainerRRW" in _find_trainer_in_fresh_python(env, tmp_path).stdout


@pytest.mark.integration
def test_train_and_predict_through_nnunet_cli(preprocessed_dataset, fresh_cache, tmp_path):
    """nnUNetv2_train with a short subclass of nnUNetTrainerRRW, then nnUNetv2_predict; outputs checked."""
    ext = tmp_path / "my_trainers"
    ext.mkdir()
    (ext / "tiny_rrw.py").write_text(TINY_TRAINER)
    env = preprocessed_dataset.folders.environ(**{discovery.ENV_VAR: discovery.ext_trainer_value(str(ext))})
    dataset = str(preprocessed_dataset.dataset_id)

    train = run_cli(["nnUNetv2_train", dataset, "2d", "0", "-tr", "nnUNetTrainerRRW_Tiny", "-device", "cpu"], env)
    fold = (preprocessed_dataset.folders.results / preprocessed_dataset.name
            / "nnUNetTrainerRRW_Tiny__nnUNetPlans__2d" / "fold_0")
    assert (fold / "checkpoint_final.pth").is_file()
    log = next(fold.glob("training_log_*.txt")).read_text()
    assert "nnunet-lossplug" in log and "rrw" in log, "the precompute hook did not run from the trainer"
    assert "Rectification check of 'rrw' maps: 0 unstable voxels" in log
    assert any(fresh_cache.glob("nnUNetPlans__2d__rrw__*/*.npy")), "no precomputed maps were written"
    assert "Mean Validation Dice" in train.stdout

    # the rest of nnU-Net's lifecycle: validation only, model selection, export
    run_cli(["nnUNetv2_train", dataset, "2d", "0", "-tr", "nnUNetTrainerRRW_Tiny", "-device", "cpu", "--val"], env)
    run_cli(["nnUNetv2_find_best_configuration", dataset, "-c", "2d", "-tr", "nnUNetTrainerRRW_Tiny", "-f", "0",
             "--disable_ensembling", "-np", "1"], env)
    assert (preprocessed_dataset.folders.results / preprocessed_dataset.name / "inference_information.json").is_file()
    run_cli(["nnUNetv2_export_model_to_zip", "-d", dataset, "-o", str(tmp_path / "model.zip"), "-c", "2d",
             "-tr", "nnUNetTrainerRRW_Tiny", "-f", "0"], env)
    assert (tmp_path / "model.zip").stat().st_size > 0

    # inference needs no map: it works on a machine without the precompute cache
    shutil.rmtree(fresh_cache)
    out = tmp_path / "predictions"
    images = preprocessed_dataset.raw_folder / "imagesTs"
    run_cli(["nnUNetv2_predict", "-i", str(images), "-o", str(out), "-d", dataset, "-c", "2d", "-f", "0",
             "-tr", "nnUNetTrainerRRW_Tiny", "-device", "cpu", "-npp", "1", "-nps", "1", "--disable_tta"], env)
    labels = json.loads((preprocessed_dataset.raw_folder / "dataset.json").read_text())["labels"]
    cases = sorted((preprocessed_dataset.raw_folder / "labelsTs").glob("*.nii.gz"))
    assert cases
    for case in cases:
        prediction = sitk.ReadImage(str(out / case.name))
        reference = sitk.ReadImage(str(case))
        assert prediction.GetSize() == reference.GetSize()
        assert np.allclose(prediction.GetSpacing(), reference.GetSpacing())
        assert set(np.unique(sitk.GetArrayFromImage(prediction)).tolist()) <= set(labels.values())


NETWORK_TRAINER = '''
from nnunet_lossplug.trainers import nnUNetTrainerUnifiedUNet_SADiceWMLA


class nnUNetTrainerUnifiedUNet_Tiny(nnUNetTrainerUnifiedUNet_SADiceWMLA):
    epochs = 1
    iterations_per_epoch = 2
    val_iterations_per_epoch = 1
'''


@pytest.mark.integration
def test_paper_network_trains_and_predicts_through_nnunet_cli(preprocessed_dataset, tmp_path):
    """The unified U-Net (Nguyen et al. 2019): 3 deep-supervision outputs, built by nnU-Net's hook for training and
    inference."""
    ext = tmp_path / "net_trainers"
    ext.mkdir()
    (ext / "tiny_unified.py").write_text(NETWORK_TRAINER)
    env = preprocessed_dataset.folders.environ(**{discovery.ENV_VAR: discovery.ext_trainer_value(str(ext))})
    dataset = str(preprocessed_dataset.dataset_id)
    run_cli(["nnUNetv2_train", dataset, "2d", "0", "-tr", "nnUNetTrainerUnifiedUNet_Tiny", "-device", "cpu"], env)
    out = tmp_path / "predictions"
    run_cli(["nnUNetv2_predict", "-i", str(preprocessed_dataset.raw_folder / "imagesTs"), "-o", str(out), "-d",
             dataset, "-c", "2d", "-f", "0", "-tr", "nnUNetTrainerUnifiedUNet_Tiny", "-device", "cpu", "-npp", "1",
             "-nps", "1", "--disable_tta"], env)
    for case in sorted((preprocessed_dataset.raw_folder / "labelsTs").glob("*.nii.gz")):
        assert sitk.ReadImage(str(out / case.name)).GetSize() == sitk.ReadImage(str(case)).GetSize()
