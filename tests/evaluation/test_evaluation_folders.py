"""Folder evaluation and the ``evaluate`` subcommand on tiny NIfTI files with anisotropic spacing."""

from __future__ import annotations

import argparse
import csv
import json
import math
from pathlib import Path

import numpy as np
import pytest
import SimpleITK as sitk  # noqa: N813

from nnunet_lossplug.cli import evaluate as evaluate_cli
from nnunet_lossplug.cli.errors import run_subcommand
from nnunet_lossplug.evaluation.evaluate_folders import evaluate_folders
from nnunet_lossplug.evaluation.result_io import load_result

# SimpleITK spacing is (x, y, z); nnU-Net's arrays are (z, y, x), so array-order spacing is reversed
SPACING_XYZ = (0.75, 1.5, 8.0)
SHAPE_ZYX = (5, 12, 14)


def _write(path: Path, array: np.ndarray, spacing_xyz=SPACING_XYZ) -> None:
    image = sitk.GetImageFromArray(array.astype(np.uint8))
    image.SetSpacing(spacing_xyz)
    sitk.WriteImage(image, str(path))


def _ground_truth() -> np.ndarray:
    gt = np.zeros(SHAPE_ZYX, np.uint8)
    gt[1:4, 2:8, 2:7] = 1
    gt[1:4, 3:7, 8:12] = 2
    return gt


@pytest.fixture()
def folders(tmp_path: Path) -> tuple[Path, Path]:
    """Three cases: x-shift by 2 voxels, z-shift by 1 slice, and a prediction that misses class 2."""
    gt_dir, pred_dir = tmp_path / "gt", tmp_path / "pred"
    gt_dir.mkdir()
    pred_dir.mkdir()
    gt = _ground_truth()
    shifted_x = np.zeros_like(gt)
    shifted_x[gt == 1] = 1
    shifted_x = np.roll(shifted_x, 2, axis=2)  # class 1 moves 2 voxels along x (0.75 mm each)
    shifted_x[gt == 2] = 2
    shifted_z = np.roll(gt, 1, axis=0)  # both classes move one slice along z (8 mm)
    missed = np.where(gt == 2, 0, gt)
    for case, pred in (("case_x", shifted_x), ("case_z", shifted_z), ("case_missed", missed)):
        _write(gt_dir / f"{case}.nii.gz", gt)
        _write(pred_dir / f"{case}.nii.gz", pred)
    return gt_dir, pred_dir


def test_distances_in_mm_follow_each_axis_spacing(folders) -> None:
    gt_dir, pred_dir = folders
    result = evaluate_folders(gt_dir, pred_dir, num_processes=1, progress=False)
    cases = result["cases"]
    assert result["labels"] == [1, 2]
    assert cases["case_x"]["1"]["hd"] == pytest.approx(2 * 0.75, rel=1e-6)
    assert (cases["case_x"]["2"]["dice"], cases["case_x"]["2"]["hd"]) == (1.0, 0.0)
    assert cases["case_z"]["1"]["hd"] == pytest.approx(8.0, rel=1e-6)
    # class 1 of case_z: 3 slices shifted by one, 2 of 3 overlap: Dice = 2/3
    assert cases["case_z"]["1"]["dice"] == pytest.approx(2 / 3)
    diagonal = math.sqrt((4 * 8.0) ** 2 + (11 * 1.5) ** 2 + (13 * 0.75) ** 2)
    missed = cases["case_missed"]["2"]
    assert missed["status"] == "missed" and missed["dice"] == 0.0
    assert missed["hd"] == pytest.approx(diagonal)
    assert result["case_info"]["case_x"]["spacing"] == pytest.approx([8.0, 1.5, 0.75])
    assert result["summary"]["classes"]["2"]["status_counts"]["missed"] == 1
    assert "SimpleITKIO" in result["spacing_source"]


def test_parallel_and_serial_runs_agree(folders) -> None:
    gt_dir, pred_dir = folders
    serial = evaluate_folders(gt_dir, pred_dir, num_processes=1, progress=False)
    parallel = evaluate_folders(gt_dir, pred_dir, num_processes=2, progress=False)
    assert parallel["cases"] == serial["cases"]


def test_declared_labels_absent_everywhere_are_scored_both_empty_and_nan_convention(folders, tmp_path) -> None:
    gt_dir, pred_dir = folders
    dataset_json = tmp_path / "dataset.json"  # class 3 exists in the dataset; these cases just lack it
    dataset_json.write_text(json.dumps({"labels": {"background": 0, "RV": 1, "MYO": 2, "LV": 3},
                                        "file_ending": ".nii.gz"}))
    result = evaluate_folders(gt_dir, pred_dir, labels=[1, 2, 3], num_processes=1, progress=False,
                              empty_hd="nan", dataset_json=dataset_json)
    assert all(per_case["3"]["status"] == "both_empty" for per_case in result["cases"].values())
    assert math.isnan(result["cases"]["case_missed"]["2"]["hd"])
    hd_stats = result["summary"]["classes"]["2"]["hd"]
    assert hd_stats["n"] == 2 and hd_stats["n_undefined"] == 1


def test_missing_prediction_and_geometry_mismatch_are_reported(folders, tmp_path: Path) -> None:
    gt_dir, pred_dir = folders
    (pred_dir / "case_z.nii.gz").unlink()
    with pytest.raises(FileNotFoundError, match="case_z"):
        evaluate_folders(gt_dir, pred_dir, num_processes=1, progress=False)
    _write(pred_dir / "case_z.nii.gz", _ground_truth(), spacing_xyz=(0.75, 1.5, 5.0))
    with pytest.raises(ValueError, match="spacing"):
        evaluate_folders(gt_dir, pred_dir, num_processes=1, progress=False)


def test_2d_files_use_in_plane_spacing(tmp_path: Path) -> None:
    gt_dir, pred_dir = tmp_path / "gt", tmp_path / "pred"
    gt_dir.mkdir()
    pred_dir.mkdir()
    gt = np.zeros((10, 12), np.uint8)
    gt[2:6, 3:8] = 1
    _write(gt_dir / "slice.nii.gz", gt, spacing_xyz=(0.5, 2.0))
    _write(pred_dir / "slice.nii.gz", np.roll(gt, 3, axis=0), spacing_xyz=(0.5, 2.0))  # 3 rows of 2 mm
    result = evaluate_folders(gt_dir, pred_dir, num_processes=1, progress=False)
    assert result["cases"]["slice"]["1"]["hd"] == pytest.approx(6.0, rel=1e-6)


def _run_cli(argv: list[str]) -> int:
    parser = argparse.ArgumentParser()
    evaluate_cli.register(parser.add_subparsers())
    args = parser.parse_args(argv)
    return run_subcommand(argv[0], args.func, args)  # as the command runs it: a user error is rc 2


def test_cli_writes_json_and_csv_and_prints_table(folders, tmp_path: Path, capsys) -> None:
    gt_dir, pred_dir = folders
    dataset_json = tmp_path / "dataset.json"
    dataset_json.write_text(json.dumps({"labels": {"background": 0, "RV": 1, "MYO": 2},
                                        "file_ending": ".nii.gz", "channel_names": {"0": "MRI"}}))
    out = tmp_path / "out" / "RESULT.json"
    code = _run_cli(["evaluate", str(gt_dir), str(pred_dir), "-o", str(out), "-np", "1",
                     "--dataset-json", str(dataset_json), "--no-progress"])
    assert code == 0
    printed = capsys.readouterr().out
    assert "RV" in printed and "MYO" in printed and "HD (mm)" in printed and "1 missed" in printed
    assert "% = the class's share of all voxels of the ground-truth images" in printed
    assert "RV: 10.7 %" in printed  # 3 x 90 of 3 x 840 voxels, three significant digits
    assert "((" not in printed and "))" not in printed  # no nested parentheses in the header

    raw = json.loads(out.read_text())  # strict JSON: no NaN tokens
    assert set(raw["cases"]) == {"case_x", "case_z", "case_missed"}
    assert set(raw["cases"]["case_x"]["1"]) >= {"dice", "hd", "hd95"}
    assert raw["label_names"] == {"1": "RV", "2": "MYO"}
    assert load_result(out)["cases"]["case_x"]["1"]["hd"] == pytest.approx(1.5, rel=1e-6)

    rows = list(csv.DictReader((tmp_path / "out" / "RESULT.csv").open()))
    assert len(rows) == 6 and {r["name"] for r in rows} == {"RV", "MYO"}
    summary_rows = list(csv.DictReader((tmp_path / "out" / "RESULT_summary.csv").open()))
    assert [r["label"] for r in summary_rows] == ["1", "2"]
    assert summary_rows[1]["missed"] == "1"

    # a result written before the "format" marker existed is still recognised as evaluate's and replaced
    legacy = {k: v for k, v in raw.items() if k != "format"}
    out.write_text(json.dumps(legacy))
    assert _run_cli(["evaluate", str(gt_dir), str(pred_dir), "-o", str(out), "-np", "1", "--no-progress"]) == 0
    assert json.loads(out.read_text())["format"] == "nnunet-lossplug evaluate result"


def test_cli_labels_option_and_error_exit_code(folders, tmp_path: Path, capsys) -> None:
    gt_dir, pred_dir = folders
    out = tmp_path / "r.json"
    assert _run_cli(["evaluate", str(gt_dir), str(pred_dir), "-o", str(out), "-l", "1", "-np", "1",
                     "--no-progress"]) == 0
    assert list(json.loads(out.read_text())["cases"]["case_x"]) == ["1"]
    assert _run_cli(["evaluate", str(gt_dir), str(tmp_path / "nowhere"), "-o", str(out), "--no-progress"]) == 2
    assert "error" in capsys.readouterr().err
    assert _run_cli(["evaluate", str(gt_dir), str(pred_dir), "-l", "one", "--no-progress"]) == 2
