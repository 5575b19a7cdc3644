"""Challenge-submission export (examples/acdc/export_submission.py) on a replica of ACDC's test set."""

from __future__ import annotations

import shutil
import zipfile
from pathlib import Path

import numpy as np
import pytest
import SimpleITK as sitk  # noqa: N813
from helpers.example_modules import load_example

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
    phases = export.phases_from_json(raw / "acdc_phases.json")
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
    phases = export.phases_from_json(raw / "acdc_phases.json")
    (predictions / "patient101_frame06.nii.gz").unlink()
    with pytest.raises(ValueError, match="patient101"):
        export.export_submission(predictions, tmp_path / "sub", phases)
    written = export.export_submission(predictions, tmp_path / "sub2", phases, allow_incomplete=True)
    assert sorted(p.name for p in written) == ["patient101_ED.nii.gz", "patient102_ED.nii.gz",
                                               "patient102_ES.nii.gz"]


def test_frame_that_is_neither_ed_nor_es_is_rejected(converted, tmp_path: Path) -> None:
    _, raw, predictions = converted
    phases = export.phases_from_json(raw / "acdc_phases.json")
    shutil.copyfile(predictions / "patient101_frame01.nii.gz", predictions / "patient101_frame03.nii.gz")
    with pytest.raises(ValueError, match="patient101_frame03"):
        export.export_submission(predictions, tmp_path / "sub", phases)


def test_command_line_with_acdc_root_checks_geometry(converted, tmp_path: Path, capsys, monkeypatch) -> None:
    monkeypatch.delenv("ACDC_ROOT", raising=False)
    root, _, predictions = converted
    assert export.main([str(predictions), "-o", str(tmp_path / "sub"), "--acdc-root", str(root)]) == 0
    assert len(list((tmp_path / "sub").iterdir())) == 4
    wrong = sitk.GetImageFromArray(np.zeros((4, 10, 12), np.uint8))
    wrong.SetSpacing((1.0, 1.0, 5.0))  # not the original frame's spacing
    sitk.WriteImage(wrong, str(predictions / "patient101_frame01.nii.gz"))
    assert export.main([str(predictions), "-o", str(tmp_path / "sub3"), "--acdc-root", str(root)]) == 2
    assert "original geometry" in capsys.readouterr().err
    assert export.main([str(predictions), "-o", str(tmp_path / "sub4")]) == 2


def _rewrite(path: Path, **changes) -> None:
    """Rewrite a prediction with one header field (origin/direction/spacing) or its voxels changed."""
    image = sitk.ReadImage(str(path))
    if "array" in changes:
        new = sitk.GetImageFromArray(changes.pop("array"))
        new.CopyInformation(image)
        image = new
    for key, value in changes.items():
        getattr(image, f"Set{key.capitalize()}")(value)
    sitk.WriteImage(image, str(path))


def test_test_patient_without_any_prediction_is_refused(converted, tmp_path: Path, capsys) -> None:
    """Defect A: a test patient with no prediction at all passed silently (rc 0)."""
    root, raw, predictions = converted
    for name in ("patient102_frame01.nii.gz", "patient102_frame07.nii.gz"):
        (predictions / name).unlink()
    args = [str(predictions), "-o", str(tmp_path / "sub"), "--acdc-root", str(root)]
    assert export.main(args) == 2
    err = capsys.readouterr().err
    assert "2 of 4 test frames have no prediction" in err and "patient102_ED.nii.gz, patient102_ES.nii.gz" in err
    assert not (tmp_path / "sub").exists()


def test_each_export_is_fresh_folder_and_zip(converted, tmp_path: Path) -> None:
    """Defect B: files of an earlier export stayed in the folder and went into the zip."""
    _, raw, predictions = converted
    phases = export.phases_from_json(raw / "acdc_phases.json")
    out = tmp_path / "sub"
    export.export_submission(predictions, out, phases, make_zip=True)
    shutil.copyfile(out / "patient101_ED.nii.gz", out / "patient103_ED.nii.gz")  # left over from another export
    export.export_submission(predictions, out, phases, make_zip=True)
    expected = ["patient101_ED.nii.gz", "patient101_ES.nii.gz", "patient102_ED.nii.gz", "patient102_ES.nii.gz"]
    assert sorted(p.name for p in out.iterdir()) == expected
    with zipfile.ZipFile(out.with_suffix(".zip")) as handle:
        assert sorted(handle.namelist()) == expected
    assert sorted(p.name for p in tmp_path.iterdir() if p.name.startswith(".")) == []  # no staging left behind
    ordinary = tmp_path / "made_by_mkdir"
    ordinary.mkdir()
    assert out.stat().st_mode & 0o777 == ordinary.stat().st_mode & 0o777  # not the staging folder's private 0700
    ordinary.rmdir()
    (out / "notes.txt").write_text("mine")
    zip_stamp = out.with_suffix(".zip").stat().st_mtime_ns
    with pytest.raises(ValueError, match="not submission files"):
        export.export_submission(predictions, out, phases, make_zip=True)
    assert (out / "notes.txt").is_file() and out.with_suffix(".zip").stat().st_mtime_ns == zip_stamp


@pytest.mark.parametrize("change", [{"origin": (3.0, 0.0, 0.0)},
                                    {"direction": (1.0, 0.0, 0.0, 0.0, 0.0, -1.0, 0.0, 1.0, 0.0)}],
                         ids=["origin", "direction"])
def test_origin_and_direction_are_compared_with_the_original(converted, tmp_path: Path, change) -> None:
    """Defect C: only size and spacing were compared."""
    root, _, predictions = converted
    _rewrite(predictions / "patient101_frame06.nii.gz", **change)
    phases = export.phases_from_acdc_root(root)
    expected = f"patient101_frame06.nii.gz differs from the original frame .* in {next(iter(change))}"
    with pytest.raises(ValueError, match=expected):
        export.export_submission(predictions, tmp_path / "sub", phases)


def test_phase_table_alone_still_checks_geometry(converted, tmp_path: Path, capsys, monkeypatch) -> None:
    """Defect D: with --phases only (the documented usage) no geometry was checked at all."""
    monkeypatch.delenv("ACDC_ROOT", raising=False)
    _, raw, predictions = converted
    _rewrite(predictions / "patient102_frame01.nii.gz", spacing=(1.0, 1.0, 5.0))
    args = [str(predictions), "-o", str(tmp_path / "sub"), "--phases", str(raw / "acdc_phases.json")]
    assert export.main(args) == 2
    assert "differs from the original frame" in capsys.readouterr().err
    moved = tmp_path / "elsewhere.json"  # a phase table far from imagesTs: refuse rather than skip the check
    shutil.copyfile(raw / "acdc_phases.json", moved)
    assert export.main([str(predictions), "-o", str(tmp_path / "sub"), "--phases", str(moved)]) == 2
    assert "not reachable" in capsys.readouterr().err


def test_label_outside_acdc_labels_is_refused_and_nothing_is_written(converted, tmp_path: Path) -> None:
    """Defect C (second half): a label 4 was exported, and a failed export left a partial folder."""
    _, raw, predictions = converted
    path = predictions / "patient102_frame07.nii.gz"
    labels = sitk.GetArrayFromImage(sitk.ReadImage(str(path)))
    labels[0, 0, 0] = 4
    _rewrite(path, array=labels)
    phases = export.phases_from_json(raw / "acdc_phases.json")
    with pytest.raises(ValueError, match=r"label values \[4\] outside ACDC's \{0, 1, 2, 3\}"):
        export.export_submission(predictions, tmp_path / "sub", phases, make_zip=True)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["ACDC", "pred", "raw"]


def test_prediction_of_a_training_frame_is_refused(converted, tmp_path: Path) -> None:
    root, raw, predictions = converted
    shutil.copyfile(raw / "labelsTr" / "patient002_frame07.nii.gz", predictions / "patient002_frame07.nii.gz")
    with pytest.raises(ValueError, match="patient002_frame07.nii.gz: a training frame"):
        export.export_submission(predictions, tmp_path / "sub", export.phases_from_acdc_root(root))
