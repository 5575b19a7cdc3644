"""ACDC -> nnU-Net conversion (examples/acdc/convert_acdc.py) on a tiny replica of the ACDC download layout."""

from __future__ import annotations

import importlib
import json
import sys
from pathlib import Path

import numpy as np
import pytest
import SimpleITK as sitk  # noqa: N813

ACDC_DIR = Path(__file__).resolve().parents[1] / "examples" / "acdc"


def load_example(name: str):
    """Import a script of examples/acdc as a module (its folder is not a package)."""
    if str(ACDC_DIR) not in sys.path:
        sys.path.insert(0, str(ACDC_DIR))
    return importlib.import_module(name)


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
