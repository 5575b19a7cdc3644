"""ACDC -> nnU-Net conversion (examples/acdc/convert_acdc.py) on a tiny replica of the ACDC download layout."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import SimpleITK as sitk  # noqa: N813
from helpers.example_modules import load_example

convert = load_example("convert_acdc")


replica_maker = load_example("make_replica")
make_acdc_replica = replica_maker.make_acdc_replica
SPACING_XYZ = replica_maker.SPACING_XYZ


def _write(path: Path, array: np.ndarray) -> None:
    image = sitk.GetImageFromArray(array)
    image.SetSpacing(SPACING_XYZ)
    sitk.WriteImage(image, str(path))


@pytest.fixture()
def replica(tmp_path: Path) -> Path:
    return make_acdc_replica(tmp_path / "ACDC")


def test_layout_names_and_dataset_json(replica: Path, tmp_path: Path) -> None:
    folder = convert.convert_acdc(replica, tmp_path / "raw", dataset_id=27)
    assert folder.name == "Dataset027_ACDC"
    images = sorted(p.name for p in (folder / "imagesTr").iterdir())
    labels = sorted(p.name for p in (folder / "labelsTr").iterdir())
    assert images == ["patient001_frame01_0000.nii.gz", "patient001_frame06_0000.nii.gz",
                      "patient002_frame01_0000.nii.gz", "patient002_frame07_0000.nii.gz",
                      "patient003_frame01_0000.nii.gz", "patient003_frame08_0000.nii.gz",
                      "patient004_frame01_0000.nii.gz", "patient004_frame05_0000.nii.gz"]
    assert labels == [n.replace("_0000", "") for n in images]
    assert sorted(p.name for p in (folder / "imagesTs").iterdir()) == [
        "patient101_frame01_0000.nii.gz", "patient101_frame06_0000.nii.gz",
        "patient102_frame01_0000.nii.gz", "patient102_frame07_0000.nii.gz"]
    ds = json.loads((folder / "dataset.json").read_text())
    assert ds["labels"] == {"background": 0, "RV": 1, "MYO": 2, "LV": 3}
    assert ds["channel_names"] == {"0": "cine MRI"} and ds["file_ending"] == ".nii.gz"
    assert ds["numTraining"] == 8


def test_files_are_copied_unchanged_with_their_spacing(replica: Path, tmp_path: Path) -> None:
    folder = convert.convert_acdc(replica, tmp_path / "raw")
    source = replica / "training" / "patient003" / "patient003_frame08_gt.nii.gz"
    copied = folder / "labelsTr" / "patient003_frame08.nii.gz"
    assert copied.read_bytes() == source.read_bytes()
    assert sitk.ReadImage(str(copied)).GetSpacing() == pytest.approx(SPACING_XYZ)


def test_paper_split_even_train_odd_validation_both_frames(replica: Path, tmp_path: Path) -> None:
    folder = convert.convert_acdc(replica, tmp_path / "raw")
    splits = json.loads((folder / "splits_final.json").read_text())
    assert len(splits) == 1
    assert splits[0]["train"] == ["patient002_frame01", "patient002_frame07", "patient004_frame01",
                                  "patient004_frame05"]
    assert splits[0]["val"] == ["patient001_frame01", "patient001_frame06", "patient003_frame01",
                                "patient003_frame08"]
    assert sorted(p.name for p in (folder / "labelsVal").iterdir()) == [f"{c}.nii.gz" for c in splits[0]["val"]]
    assert sorted(p.name for p in (folder / "imagesVal").iterdir()) == [
        f"{c}_0000.nii.gz" for c in splits[0]["val"]]


def test_full_training_set_and_preprocessed_copy(replica: Path, tmp_path: Path) -> None:
    folder = convert.convert_acdc(replica, tmp_path / "raw", dataset_id=28, full_training_set=True,
                                  preprocessed=tmp_path / "pre")
    splits = json.loads((folder / "splits_final.json").read_text())
    assert len(splits[0]["train"]) == 8 and splits[0]["val"] == splits[0]["train"]
    assert (tmp_path / "pre" / "Dataset028_ACDC" / "splits_final.json").read_text() == (
        folder / "splits_final.json").read_text()


def test_phase_table_for_the_submission_export(replica: Path, tmp_path: Path) -> None:
    folder = convert.convert_acdc(replica, tmp_path / "raw")
    phases = json.loads((folder / "acdc_phases.json").read_text())
    assert phases["patient002_frame07"] == {"patient": "patient002", "phase": "ES", "frame": 7, "group": "DCM",
                                            "subset": "training"}
    assert phases["patient101_frame01"]["phase"] == "ED" and phases["patient101_frame06"]["phase"] == "ES"


def test_nested_testing_folder_is_found(tmp_path: Path) -> None:
    root = make_acdc_replica(tmp_path / "ACDC", nested_testing=True)
    folder = convert.convert_acdc(root, tmp_path / "raw")
    assert len(list((folder / "imagesTs").iterdir())) == 4


@pytest.mark.integration  # nnU-Net spawns a worker process: about 20 s on a loaded 2-core machine
def test_converted_dataset_passes_nnunet_integrity_check(replica: Path, tmp_path: Path) -> None:
    from nnunetv2.experiment_planning.verify_dataset_integrity import verify_dataset_integrity

    folder = convert.convert_acdc(replica, tmp_path / "raw")
    verify_dataset_integrity(str(folder), num_processes=1)  # raises on any problem


def test_bad_layouts_are_explained(replica: Path, tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match="No patientXXX folders"):
        convert.convert_acdc(tmp_path / "empty", tmp_path / "raw")
    (replica / "training" / "patient002" / "patient002_frame07_gt.nii.gz").unlink()
    with pytest.raises(FileNotFoundError, match="_gt.nii.gz"):
        convert.convert_acdc(replica, tmp_path / "raw")
    (replica / "training" / "patient002" / "Info.cfg").write_text("ED: 1\nGroup: DCM\n")
    with pytest.raises(ValueError, match="'ES:'"):
        convert.convert_acdc(replica, tmp_path / "raw")


def test_label_with_other_geometry_is_rejected(replica: Path, tmp_path: Path) -> None:
    bad = np.zeros((4, 10, 11), np.uint8)
    _write(replica / "training" / "patient001" / "patient001_frame01_gt.nii.gz", bad)
    with pytest.raises(ValueError, match="differ"):
        convert.convert_acdc(replica, tmp_path / "raw")


def test_command_line(replica: Path, tmp_path: Path, monkeypatch, capsys) -> None:
    monkeypatch.setenv("nnUNet_raw", str(tmp_path / "raw_env"))
    assert convert.main([str(replica), "--dataset-id", "27"]) == 0
    assert (tmp_path / "raw_env" / "Dataset027_ACDC" / "dataset.json").is_file()
    assert "4 training / 4 validation" in capsys.readouterr().out
    assert convert.main([str(tmp_path / "nowhere"), "--out", str(tmp_path / "r")]) == 2


def test_label_with_other_origin_or_direction_is_rejected(replica: Path, tmp_path: Path) -> None:
    """Defect K: the docstring promised a header check of origin and direction; size and spacing alone passed."""
    label_path = replica / "training" / "patient001" / "patient001_frame01_gt.nii.gz"
    label = sitk.ReadImage(str(label_path))
    label.SetOrigin((5.0, 0.0, 0.0))
    sitk.WriteImage(label, str(label_path))
    with pytest.raises(ValueError, match="differ in origin"):
        convert.convert_acdc(replica, tmp_path / "raw")
    label.SetOrigin((0.0, 0.0, 0.0))
    label.SetDirection((1.0, 0.0, 0.0, 0.0, 0.0, -1.0, 0.0, 1.0, 0.0))
    sitk.WriteImage(label, str(label_path))
    with pytest.raises(ValueError, match="differ in direction"):
        convert.convert_acdc(replica, tmp_path / "raw2")


def test_missing_testing_folder_is_a_warning(tmp_path: Path, capsys) -> None:
    """Defect K: without ACDC's testing folder imagesTs stayed empty without a word."""
    root = make_acdc_replica(tmp_path / "ACDC", test_ids=())
    assert convert.main([str(root), "--out", str(tmp_path / "raw")]) == 0
    err = capsys.readouterr().err
    assert "warning: no test patients" in err and "imagesTs is empty" in err


def test_varied_download_with_test_labels(tmp_path: Path) -> None:
    """ED frames other than 01, ES frames above 9 and the current release's test labels (labelsTs)."""
    root = make_acdc_replica(tmp_path / "ACDC", train_ids=(1, 2), test_ids=(101,), varied=True, test_labels=True)
    folder = convert.convert_acdc(root, tmp_path / "raw")
    ed = replica_maker.ed_frame(101, varied=True)
    es = replica_maker.es_frame(101, varied=True)
    assert ed != 1 and es > 9  # patient101: ED 3, ES 11
    assert sorted(p.name for p in (folder / "labelsTs").iterdir()) == [
        f"patient101_frame{ed:02d}.nii.gz", f"patient101_frame{es:02d}.nii.gz"]
    phases = json.loads((folder / "acdc_phases.json").read_text())
    assert phases[f"patient101_frame{es:02d}"]["phase"] == "ES" and phases[f"patient101_frame{ed:02d}"]["phase"] == "ED"
    copied = sitk.ReadImage(str(folder / "imagesTs" / f"patient101_frame{ed:02d}_0000.nii.gz"))
    assert copied.GetDirection() != (1.0, 0.0, 0.0, 0.0, 1.0, 0.0, 0.0, 0.0, 1.0)  # tilted axes are kept


def test_existing_dataset_converted_differently_is_refused(replica: Path, tmp_path: Path) -> None:
    """Defect E: a dataset folder with the paper split is not reused for the full training set (and vice versa)."""
    folder = convert.convert_acdc(replica, tmp_path / "raw", dataset_id=28)
    with pytest.raises(ValueError, match="converted without --full-training-set"):
        convert.convert_acdc(replica, tmp_path / "raw", dataset_id=28, full_training_set=True, if_missing=True)
    assert len(json.loads((folder / "splits_final.json").read_text())[0]["train"]) == 4
    stamp = (folder / "dataset.json").stat().st_mtime_ns
    assert convert.convert_acdc(replica, tmp_path / "raw", dataset_id=28, if_missing=True) == folder
    assert (folder / "dataset.json").stat().st_mtime_ns == stamp  # identical conversion kept, not rewritten
    full = convert.convert_acdc(replica, tmp_path / "raw", dataset_id=29, full_training_set=True)
    with pytest.raises(ValueError, match="converted with --full-training-set"):
        convert.convert_acdc(replica, tmp_path / "raw", dataset_id=29, if_missing=True)
    assert full.is_dir()
