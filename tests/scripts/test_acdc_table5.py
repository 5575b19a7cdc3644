"""Table 5 in one command (examples/acdc/table5.sh): plans written by code, real nnU-Net planning and
preprocessing on a replica of the ACDC download, the per-phase report, and the paper values it prints.

The module fixture runs ``PREPARE_ONLY=1 bash table5.sh`` once with nnU-Net's own CLI (fingerprint, planning,
move of the plans, preprocessing: about 1.5 min on a loaded 2-core machine); training and prediction are replaced
by stubs only in the full run, whose export, evaluation and report are real.
"""

from __future__ import annotations

import json
import os
import re
import stat
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import SimpleITK as sitk  # noqa: N813
from helpers.example_modules import ACDC_DIR, load_example

BIN = Path(sys.executable).parent
TRAIN_IDS = (1, 2, 3, 4, 5, 6)
TEST_IDS = (101, 102)


plans_writer = load_example("table5_plans")
report = load_example("table5_report")
convert = load_example("convert_acdc")
replica_maker = load_example("make_replica")


# --- plans rules without nnU-Net data -------------------------------------------------------------------------

def test_filters_double_from_48_and_stop_at_v1s_480() -> None:
    assert plans_writer.features_per_stage(7, 48, 480) == [48, 96, 192, 384, 480, 480, 480]
    assert plans_writer.Table5Settings().max_features == 480


def test_patch_not_divisible_by_the_networks_downsampling_is_refused() -> None:
    """Defect I: 352 x 352 (the paper's failed size) crashed at the first forward pass; now one line at planning."""
    assert plans_writer.topology((1.25, 1.25), (320, 320))[0] == 7
    with pytest.raises(ValueError, match=r"352 x 352 is not divisible by 64 x 64 .* 7-stage .* 384 x 384 or 320 x 320"):
        plans_writer.topology((1.25, 1.25), (352, 352))


def test_plans_whose_slice_axis_is_not_the_coarsest_are_refused() -> None:
    """Defect H: plans made with a target spacing in (x, y, z) order slice the stack along the wrong axis."""
    transposed = {"original_median_spacing_after_transp": [1.56, 1.25, 10.0], "configurations": {"2d": {}}}
    with pytest.raises(ValueError, match="2D slices would not be short-axis slices"):
        plans_writer.table5_plans(transposed, "P", plans_writer.Table5Settings())


def test_report_paper_row_is_the_readme_row() -> None:
    readme = (ACDC_DIR / "README.md").read_text()
    row = next(line for line in readme.splitlines() if line.startswith("| RRW (Valverde & Tohka 2022) |"))
    assert tuple(float(v) for v in re.findall(r"\d+\.\d+", row)) == report.PAPER_ROW


# --- the one command on a replica ---------------------------------------------------------------------------------

STUB = """#!/usr/bin/env bash
set -euo pipefail
echo "$(basename "$0") $*" >> "$STUB_LOG"
"""


@pytest.fixture(scope="module")
def table5_run(tmp_path_factory) -> dict:
    """A replica download (test labels included) after ``PREPARE_ONLY=1 bash table5.sh`` with the real nnU-Net."""
    base = tmp_path_factory.mktemp("table5")
    replica_maker.make_acdc_replica(base / "ACDC", TRAIN_IDS, TEST_IDS, varied=True, test_labels=True)
    bin_dir = base / "bin"
    bin_dir.mkdir()
    stubs = {
        "nnUNetv2_train": STUB,
        # "predicts" the test labels themselves, in the original geometry like nnUNetv2_predict
        "nnUNetv2_predict": STUB + """
while [[ $# -gt 0 ]]; do case "$1" in -i) src="$2";; -o) dst="$2";; esac; shift; done
mkdir -p "$dst"
for f in "$src"/*_0000.nii.gz; do b=$(basename "$f"); cp "$src/../labelsTs/${b%_0000.nii.gz}.nii.gz" "$dst/"; done
""",
        "nnunet-lossplug": STUB + f"""
if [[ "$1" == precompute ]]; then exit 0; fi
exec {BIN / "nnunet-lossplug"} "$@"
""",
    }
    for name, body in stubs.items():
        (bin_dir / name).write_text(body)
        (bin_dir / name).chmod((bin_dir / name).stat().st_mode | stat.S_IEXEC)
    env = {k: v for k, v in os.environ.items() if not k.startswith("nnUNet_")}
    env.update(PATH=f"{bin_dir}{os.pathsep}{BIN}{os.pathsep}{env['PATH']}", PYTHON=sys.executable,
               STUB_LOG=str(base / "calls.log"), ACDC_ROOT=str(base / "ACDC"), nnUNet_raw=str(base / "raw"),
               nnUNet_preprocessed=str(base / "pre"), RESULTS_ROOT=str(base / "results"), NUM_PROCESSES="2",
               nnUNet_def_n_proc="2", nnUNet_compile="f")
    result = subprocess.run(["bash", str(ACDC_DIR / "table5.sh")], env={**env, "PREPARE_ONLY": "1"},
                            capture_output=True, text=True, timeout=900)
    assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-4000:]
    pre = base / "pre" / "Dataset028_ACDC"
    return {"base": base, "env": env, "stdout": result.stdout, "pre": pre,
            "plans": json.loads((pre / "nnUNetPlansACDCTable5.json").read_text())}


@pytest.mark.integration
def test_prepare_only_writes_the_paper_plans_and_stops(table5_run) -> None:
    plans = table5_run["plans"]
    assert list(plans["configurations"]) == ["2d"]
    config = plans["configurations"]["2d"]
    kwargs = config["architecture"]["arch_kwargs"]
    assert config["spacing"] == [1.25, 1.25] and plans["transpose_forward"] == [0, 1, 2]
    assert config["batch_size"] == 10 and config["patch_size"] == [320, 320]
    assert kwargs["n_stages"] == 7 and kwargs["features_per_stage"] == [min(48 * 2**i, 480) for i in range(7)]
    assert kwargs["norm_op"] == "torch.nn.modules.batchnorm.BatchNorm2d"
    out = table5_run["stdout"]
    assert "in-plane spacing 1.25 1.25 mm (CHECK), patch 320 320 (CHECK)" in out  # the lost values, in the log
    assert f"{table5_run['pre'] / 'nnUNetPlansACDCTable5.json'}" in out.splitlines()[-5]
    assert not Path(table5_run["env"]["STUB_LOG"]).exists()  # nothing trained or predicted
    fingerprint = json.loads((table5_run["pre"] / "planned_on_training_cases.json").read_text())
    assert len(fingerprint["spacings"]) == 2 * len(TRAIN_IDS)  # Table 5's fold 0 trains on every patient
    # nnUNetv2_train copies the dataset's fingerprint into its results: it must be there after moving the plans
    assert json.loads((table5_run["pre"] / "dataset_fingerprint.json").read_text()) == fingerprint


@pytest.mark.integration
def test_preprocessed_slices_are_short_axis_slices_at_the_target_spacing(table5_run) -> None:
    """Defect H: the slice axis (array axis 0) keeps its voxels; only the in-plane axes are resampled."""
    import blosc2

    case = "patient001_frame02"
    image = sitk.ReadImage(str(table5_run["base"] / "raw" / "Dataset028_ACDC" / "imagesTr" / f"{case}_0000.nii.gz"))
    sx, sy, _ = image.GetSpacing()
    z, y, x = sitk.GetArrayFromImage(image).shape
    data = blosc2.open(str(table5_run["pre"] / "nnUNetPlansACDCTable5_2d" / f"{case}.b2nd"))
    assert tuple(data.shape) == (1, z, round(y * sy / 1.25), round(x * sx / 1.25))


@pytest.mark.integration
def test_the_trainer_builds_the_planned_network(table5_run) -> None:
    """Defect F: the network's first convolution has 48 filters (the plans' arch_kwargs), with batch norm."""
    import torch
    from nnunetv2.utilities.plans_handling.plans_handler import PlansManager

    from nnunet_lossplug.trainers import nnUNetTrainerRRW_BN

    manager = PlansManager(table5_run["plans"])
    network = nnUNetTrainerRRW_BN.build_network_architecture(
        manager, manager.get_configuration("2d"), 1, 4, True)
    convs = [m for m in network.modules() if isinstance(m, torch.nn.Conv2d)]
    assert convs[0].out_channels == 48 and max(c.out_channels for c in convs) == 480
    assert any(isinstance(m, torch.nn.BatchNorm2d) for m in network.modules())
    assert not any(isinstance(m, torch.nn.InstanceNorm2d) for m in network.modules())


@pytest.mark.integration
def test_full_run_exports_the_zip_and_prints_table5_per_phase(table5_run) -> None:
    base, env = table5_run["base"], table5_run["env"]
    done = table5_run["pre"] / ".preprocessed_nnUNetPlansACDCTable5_2d"
    stamp = done.stat().st_mtime_ns
    result = subprocess.run(["bash", str(ACDC_DIR / "table5.sh")], env=env, capture_output=True, text=True,
                            timeout=900)
    assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-4000:]
    assert done.stat().st_mtime_ns == stamp  # preprocessing is not repeated
    calls = Path(env["STUB_LOG"]).read_text().splitlines()
    assert calls[0].startswith("nnunet-lossplug precompute -d 28 -c 2d -p nnUNetPlansACDCTable5")
    assert calls[1].split()[:8] == ["nnUNetv2_train", "28", "2d", "0", "-tr", "nnUNetTrainerRRW_BN", "-p",
                                    "nnUNetPlansACDCTable5"]
    run_dir = base / "results" / "table5" / "nnUNetTrainerRRW_BN"
    expected = sorted(f"patient{p}_{ph}.nii.gz" for p in TEST_IDS for ph in ("ED", "ES"))
    assert sorted(p.name for p in (run_dir / "acdc_submission").iterdir()) == expected
    assert (run_dir / "acdc_submission.zip").is_file()
    table = (run_dir / "table5.md").read_text().splitlines()
    assert table[0].startswith("| approach | RV Dice ED | RV Dice ES | RV HD ED | RV HD ES | M Dice ED")
    ours = table[3].split(" | ")[1:]
    assert table[3].startswith("| nnUNetTrainerRRW_BN (local, 2 patients)")
    assert [c.strip(" |") for c in ours] == ["1.00", "1.00", "0.0", "0.0"] * 3  # the stub predicted the labels


# --- the per-phase evaluation on synthetic predictions ------------------------------------------------------------

def test_per_phase_table_separates_ed_and_es(tmp_path: Path) -> None:
    """ED predictions equal the labels; ES predictions miss the LV: Table 5 shows LV Dice 1 at ED, 0 at ES."""
    root = replica_maker.make_acdc_replica(tmp_path / "ACDC", (1, 2), TEST_IDS, varied=True, test_labels=True)
    raw = convert.convert_acdc(root, tmp_path / "raw", dataset_id=28, full_training_set=True)
    phases = json.loads((raw / "acdc_phases.json").read_text())
    pred = tmp_path / "pred"
    pred.mkdir()
    for label_path in (raw / "labelsTs").iterdir():
        image = sitk.ReadImage(str(label_path))
        labels = sitk.GetArrayFromImage(image)
        if phases[label_path.name[: -len(".nii.gz")]]["phase"] == "ES":
            labels = np.where(labels == 3, 0, labels).astype(labels.dtype)
        out = sitk.GetImageFromArray(labels)
        out.CopyInformation(image)
        sitk.WriteImage(out, str(pred / label_path.name))
    result = tmp_path / "test.json"
    subprocess.run([str(BIN / "nnunet-lossplug"), "evaluate", str(raw / "labelsTs"), str(pred), "-o", str(result),
                    "--dataset-json", str(raw / "dataset.json"), "-np", "1", "--no-progress"], check=True,
                   capture_output=True, timeout=300)
    means = report.per_phase_means(json.loads(result.read_text()), phases)
    assert means[("3", "dice", "ED")] == 1.0 and means[("3", "dice", "ES")] == 0.0
    assert means[("1", "dice", "ES")] == 1.0 and means[("2", "hd", "ES")] == 0.0
    text = report.format_table5(means, 2)
    ours = [c.strip() for c in text.splitlines()[3].split("|")[2:-1]]
    assert ours[8:10] == ["1.00", "0.00"]  # LV Dice ED, LV Dice ES
    assert "| RRW (Valverde & Tohka 2022, challenge platform) | 0.95 | 0.89 | 12.0 | 13.9 |" in text
    with pytest.raises(ValueError, match="not in the phase table"):
        report.per_phase_means(json.loads(result.read_text()), {})
