"""Region-based and ignore-label datasets through nnU-Net's unchanged CLI with the plugin's trainers
(docs/conventions.md#regions).

Three tiny generated datasets (2d only, a few cases): BraTS-like nested regions, an ignore label (sparse
annotation: unannotated bands), and both. Each: ``nnUNetv2_plan_and_preprocess``, ``nnunet-lossplug precompute``,
a few iterations of ``nnUNetv2_train`` with region RRW (the same ``nnUNetTrainerRRW`` name; on "both" also SA Dice
and the class-weighted Dice trainer, on "ignore" the class-weighted one), ``nnUNetv2_predict``, and
``nnunet-lossplug evaluate``. The full matrix (every trainer on every dataset) passed once: 976 s on 2 loaded cores.
"""

from __future__ import annotations

import json
import re

import numpy as np
import pytest
import SimpleITK as sitk
from helpers.label_datasets import write_label_dataset
from helpers.nnunet_runs import PreprocessedDataset, run_cli

from nnunet_lossplug import discovery

pytestmark = pytest.mark.integration

KINDS = {  # kind: (dataset id, regions, ignore, trainers); every trainer on "both", RRW alone covers each branch
    "regions": (995, True, False, ("nnUNetTrainerRRW_Tiny",)),
    "ignore": (996, False, True, ("nnUNetTrainerRRW_Tiny", "nnUNetTrainerDiceSimple_Tiny")),
    "both": (997, True, True, ("nnUNetTrainerRRW_Tiny", "nnUNetTrainerSADice_Tiny", "nnUNetTrainerDiceSimple_Tiny")),
}
TINY_TRAINERS = "\n".join(
    f'''
class {base}_Tiny({base}):
    epochs = 1
    iterations_per_epoch = 2
    val_iterations_per_epoch = 1
'''
    for base in ("nnUNetTrainerRRW", "nnUNetTrainerSADice", "nnUNetTrainerDiceSimple")
)


@pytest.fixture(scope="module", params=list(KINDS))
def label_dataset(request, nnunet_folders) -> tuple[str, PreprocessedDataset]:
    dataset_id, regions, ignore, _ = KINDS[request.param]
    name = f"LossPlug{request.param.capitalize()}"
    write_label_dataset(nnunet_folders.raw, dataset_id, name, regions, ignore)
    run_cli(["nnUNetv2_plan_and_preprocess", "-d", str(dataset_id), "-c", "2d", "-np", "2", "-npfp", "2"],
            nnunet_folders.environ())
    return request.param, PreprocessedDataset(nnunet_folders, dataset_id, f"Dataset{dataset_id:03d}_{name}")


def test_precompute_train_predict_evaluate(label_dataset, tmp_path):
    kind, dataset = label_dataset
    ext = tmp_path / "trainers"
    ext.mkdir()
    imports = "from nnunet_lossplug.trainers import nnUNetTrainerDiceSimple, nnUNetTrainerRRW, nnUNetTrainerSADice\n"
    (ext / "tiny.py").write_text(imports + TINY_TRAINERS)
    env = dataset.folders.environ(**{discovery.ENV_VAR: discovery.ext_trainer_value(str(ext))})
    train_env = {**env, "nnUNet_n_proc_DA": "0"}
    did = str(dataset.dataset_id)

    precompute = run_cli(["nnunet-lossplug", "precompute", "-d", did, "-c", "2d", "--maps", "rrw", "-np", "1"], env)
    assert "cases computed" in precompute.stdout
    stats_sidecar = next((dataset.preprocessed_folder / "lossplug_cache").glob("nnUNetPlans__2d__statistics__*/*.json"))
    sidecar = json.loads(stats_sidecar.read_text())
    if kind != "ignore":
        assert len(sidecar["region_voxel_counts"]) == 3
        whole, core, enhancing = sidecar["region_voxel_counts"]
        assert whole >= core >= enhancing  # nested regions

    for trainer in KINDS[kind][3]:
        run_cli(["nnUNetv2_train", did, "2d", "0", "-tr", trainer, "-device", "cpu"], train_env)
        fold = dataset.folders.results / dataset.name / f"{trainer}__nnUNetPlans__2d" / "fold_0"
        assert (fold / "checkpoint_final.pth").is_file()
        log = next(fold.glob("training_log_*.txt")).read_text()
        setup = "3 sigmoid regions" if kind != "ignore" else "softmax classes"
        assert setup in log
        if kind != "regions":
            assert "ignore label 4 masked" in log
        losses = [float(value) for value in re.findall(r"train_loss (-?(?:\d|nan|inf)\S*)", log)]
        assert losses and all(np.isfinite(losses)), log[-2000:]
        if trainer.startswith("nnUNetTrainerRRW"):
            scope = " (two-class maps per region)" if kind != "ignore" else ""
            assert f"Rectification check of 'rrw' maps{scope}: 0 unstable voxels" in log
        if trainer.startswith("nnUNetTrainerDiceSimple") and kind != "ignore":
            assert "Training-set region voxel counts" in log

    out = tmp_path / "predictions"
    run_cli(["nnUNetv2_predict", "-i", str(dataset.raw_folder / "imagesTs"), "-o", str(out), "-d", did, "-c", "2d",
             "-f", "0", "-tr", "nnUNetTrainerRRW_Tiny", "-device", "cpu", "-npp", "1", "-nps", "1", "--disable_tta"],
            env)
    cases = sorted((dataset.raw_folder / "labelsTs").glob("*.nii.gz"))
    assert cases
    for case in cases:
        prediction = sitk.GetArrayFromImage(sitk.ReadImage(str(out / case.name)))
        assert prediction.shape == sitk.GetArrayFromImage(sitk.ReadImage(str(case))).shape
        assert set(np.unique(prediction).tolist()) <= {0, 1, 2, 3}

    evaluate = run_cli(["nnunet-lossplug", "evaluate", str(dataset.raw_folder / "labelsTs"), str(out),
                        "--dataset-json", str(dataset.raw_folder / "dataset.json"), "-np", "1", "--no-progress"], env)
    result = json.loads((out / "evaluation.json").read_text())
    if kind == "ignore":
        assert result["labels"] == [1, 2, 3] and result["ignore_label"] == 4
    else:
        assert result["regions"] == {"1": [1, 2, 3], "2": [2, 3], "3": [3]}
        assert "whole [1, 2, 3]" in evaluate.stdout
