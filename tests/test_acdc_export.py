"""Challenge-submission export (examples/acdc/export_submission.py) on a replica of ACDC's test set."""

from __future__ import annotations

import importlib
import json
import shutil
import sys
import zipfile
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
export = load_example("export_submission")
make_acdc_replica = load_example("make_replica").make_acdc_replica


def _predictions_like_nnunet(raw_folder: Path, out: Path) -> Path:
    """Label maps named like nnUNetv2_predict output (``patient101_frame01.nii.gz``) in each image's geometry."""
    out.mkdir(parents=True)
    for image_path in sorted((raw_folder / "imagesTs").iterdir()):
        image = sitk.ReadImage(str(image_path))
        labels = (sitk.GetArrayFromImage(image) % 4).astype(np.uint8)
        prediction = sitk.GetImageFromArray(labels)
        prediction.CopyInformation(image)
        sitk.WriteImage(prediction, str(out / image_path.name.replace("_0000", "")))
    return out


@pytest.fixture()
def converted(tmp_path: Path) -> tuple[Path, Path, Path]:
    root = make_acdc_replica(tmp_path / "ACDC")
    raw = convert.convert_acdc(root, tmp_path / "raw", dataset_id=28, full_training_set=True)
    predictions = _predictions_like_nnunet(raw, tmp_path / "pred")
    return root, raw, predictions


def test_predictions_become_patient_ed_es_files(converted, tmp_path: Path) -> None:
    _, raw, predictions = converted
    phases = json.loads((raw / "acdc_phases.json").read_text())
    written = export.export_submission(predictions, tmp_path / "sub", phases, make_zip=True)
    names = sorted(p.name for p in (tmp_path / "sub").iterdir())
    assert names == ["patient101_ED.nii.gz", "patient101_ES.nii.gz", "patient102_ED.nii.gz",
                     "patient102_ES.nii.gz"]
    # patient102's ES frame is frame 07 (Info.cfg); the file is copied unchanged
    assert (tmp_path / "sub" / "patient102_ES.nii.gz").read_bytes() == (
        predictions / "patient102_frame07.nii.gz").read_bytes()
    archive = written[-1]
    assert archive.suffix == ".zip"
    with zipfile.ZipFile(archive) as handle:
        assert sorted(handle.namelist()) == names


def test_missing_phase_is_an_error_unless_allowed(converted, tmp_path: Path) -> None:
    _, raw, predictions = converted
    phases = json.loads((raw / "acdc_phases.json").read_text())
    (predictions / "patient101_frame06.nii.gz").unlink()
    with pytest.raises(ValueError, match="patient101"):
        export.export_submission(predictions, tmp_path / "sub", phases)
    written = export.export_submission(predictions, tmp_path / "sub2", phases, allow_incomplete=True)
    assert sorted(p.name for p in written) == ["patient101_ED.nii.gz", "patient102_ED.nii.gz",
                                               "patient102_ES.nii.gz"]


def test_frame_that_is_neither_ed_nor_es_is_rejected(converted, tmp_path: Path) -> None:
    _, raw, predictions = converted
    phases = json.loads((raw / "acdc_phases.json").read_text())
    shutil.copyfile(predictions / "patient101_frame01.nii.gz", predictions / "patient101_frame03.nii.gz")
    with pytest.raises(ValueError, match="patient101_frame03"):
        export.export_submission(predictions, tmp_path / "sub", phases)


def test_command_line_with_acdc_root_checks_geometry(converted, tmp_path: Path, capsys) -> None:
    root, _, predictions = converted
    assert export.main([str(predictions), "-o", str(tmp_path / "sub"), "--acdc-root", str(root)]) == 0
    assert len(list((tmp_path / "sub").iterdir())) == 4
    wrong = sitk.GetImageFromArray(np.zeros((4, 10, 12), np.uint8))
    wrong.SetSpacing((1.0, 1.0, 5.0))  # not the original frame's spacing
    sitk.WriteImage(wrong, str(predictions / "patient101_frame01.nii.gz"))
    assert export.main([str(predictions), "-o", str(tmp_path / "sub3"), "--acdc-root", str(root)]) == 2
    assert "original geometry" in capsys.readouterr().err
    assert export.main([str(predictions), "-o", str(tmp_path / "sub4")]) == 2
