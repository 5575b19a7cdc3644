"""Faults of the evaluation commands and the trainer names, with real files and processes.

Each test runs the installed ``nnunet-lossplug`` command in a subprocess on NIfTI files written with SimpleITK
(or on real trainer files written by ``new-trainer``) and checks what the user sees: a refusal is one line on
stderr, ``nnunet-lossplug COMMAND: error: ...``, exit status 2, naming the file; nothing is silently rounded,
realigned, dropped or shadowed.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import SimpleITK as sitk  # noqa: N813

SPACING_XYZ = (0.75, 1.5, 8.0)  # SimpleITK order; the smallest voxel size is 0.75 mm
SHAPE_ZYX = (5, 12, 14)
COMMAND = str(Path(sys.executable).parent / "nnunet-lossplug")


def _ground_truth() -> np.ndarray:
    gt = np.zeros(SHAPE_ZYX, np.uint8)
    gt[1:4, 2:8, 2:7] = 1
    gt[1:4, 3:7, 8:12] = 2
    return gt


def _write(path: Path, array: np.ndarray, dtype=np.uint8, origin=(0.0, 0.0, 0.0),
           direction=(1.0, 0.0, 0.0, 0.0, 1.0, 0.0, 0.0, 0.0, 1.0)) -> Path:
    image = sitk.GetImageFromArray(array.astype(dtype))
    image.SetSpacing(SPACING_XYZ)
    image.SetOrigin(origin)
    image.SetDirection(direction)
    path.parent.mkdir(parents=True, exist_ok=True)
    sitk.WriteImage(image, str(path))
    return path


def _run(args: list[str], tmp_path: Path, **env: str) -> subprocess.CompletedProcess:
    environ = dict(os.environ)
    environ.pop("NNUNET_LOSSPLUG_DEBUG", None)
    environ.update(MPLCONFIGDIR=str(tmp_path / "mpl"), nnUNet_raw=str(tmp_path / "raw"),
                   nnUNet_preprocessed=str(tmp_path / "pre"), nnUNet_results=str(tmp_path / "res"), **env)
    return subprocess.run([COMMAND, *args], env=environ, cwd=tmp_path, capture_output=True, text=True,
                          timeout=300)


def _refused(result: subprocess.CompletedProcess, command: str) -> str:
    """The one-line error of a refused command (fails the test otherwise)."""
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert result.returncode == 2, (result.returncode, result.stdout[-2000:], result.stderr[-2000:])
    assert len(lines) == 1 and lines[0].startswith(f"nnunet-lossplug {command}: error: "), result.stderr
    return lines[0]


def _evaluate(tmp_path: Path, pred_dir: str, *extra: str) -> subprocess.CompletedProcess:
    return _run(["evaluate", "gt", pred_dir, "-np", "2", "--no-progress", "-o", f"{pred_dir}.json", *extra],
                tmp_path)


@pytest.fixture()
def ground_truth(tmp_path: Path) -> Path:
    for case in ("c1", "c2"):
        _write(tmp_path / "gt" / f"{case}.nii.gz", _ground_truth())
    return tmp_path


# ------------------------------------------------------------------------ row 1: float predictions
@pytest.mark.parametrize("name, values", [("probabilities", lambda gt: gt / 2.0),
                                          ("rescaled", lambda gt: gt * 0.5 + 0.2)])
def test_evaluate_refuses_predictions_with_non_integer_values(ground_truth: Path, name, values) -> None:
    tmp_path = ground_truth
    _write(tmp_path / name / "c1.nii.gz", _ground_truth())
    _write(tmp_path / name / "c2.nii.gz", values(_ground_truth().astype(np.float32)), dtype=np.float32)
    line = _refused(_evaluate(tmp_path, name), "evaluate")
    assert "predictions must hold integer labels" in line and f"{name}/c2.nii.gz" in line
    assert not (tmp_path / f"{name}.json").exists()


def test_evaluate_accepts_a_float_file_of_whole_labels(ground_truth: Path) -> None:
    tmp_path = ground_truth
    shifted = np.roll(_ground_truth(), 1, axis=0)  # one slice along z: 2 of 3 slices overlap, Dice 2/3 each class
    for case in ("c1", "c2"):
        _write(tmp_path / "float" / f"{case}.nii.gz", shifted, dtype=np.float32)
    result = _evaluate(tmp_path, "float")
    assert result.returncode == 0, result.stderr
    cases = json.loads((tmp_path / "float.json").read_text())["cases"]
    assert [cases[c][k]["dice"] for c in ("c1", "c2") for k in ("1", "2")] == pytest.approx([2 / 3] * 4)


# ------------------------------------------------------------------------ row 2: origin and direction
@pytest.mark.parametrize("name, geometry, expected", [
    ("origin", {"origin": (100.0, 0.0, 0.0)}, r"origin \(100\.0, 0\.0, 0\.0\) mm .* \(0\.0, 0\.0, 0\.0\) mm "
                                              r"\(tolerance 0\.0075 mm per axis"),
    ("flipped", {"direction": (-1.0, 0.0, 0.0, 0.0, 1.0, 0.0, 0.0, 0.0, 1.0)},
     r"direction \(-1\.0, .* \(tolerance 0\.001 per direction cosine\)"),
])
def test_evaluate_refuses_a_prediction_in_another_geometry(ground_truth: Path, name, geometry, expected) -> None:
    import re

    tmp_path = ground_truth
    _write(tmp_path / name / "c1.nii.gz", _ground_truth())
    _write(tmp_path / name / "c2.nii.gz", _ground_truth(), **geometry)  # same voxels, elsewhere in space
    line = _refused(_evaluate(tmp_path, name), "evaluate")
    assert "case c2" in line and f"{name}/c2.nii.gz" in line and "nothing is realigned" in line
    assert re.search(expected, line), line


def test_evaluate_accepts_an_origin_within_the_stated_tolerance(ground_truth: Path) -> None:
    tmp_path = ground_truth
    for case in ("c1", "c2"):  # 0.002 mm: float rounding by another writer, well under 1 % of 0.75 mm
        _write(tmp_path / "close" / f"{case}.nii.gz", _ground_truth(), origin=(0.002, -0.002, 0.0))
    result = _evaluate(tmp_path, "close")
    assert result.returncode == 0, result.stderr
    assert json.loads((tmp_path / "close.json").read_text())["summary"]["n_cases"] == 2


# ------------------------------------------------------------------------ row 3: labels not in dataset.json
def test_evaluate_refuses_a_label_that_dataset_json_does_not_declare(ground_truth: Path) -> None:
    tmp_path = ground_truth
    (tmp_path / "dataset.json").write_text(json.dumps(
        {"labels": {"background": 0, "RV": 1, "LV": 2}, "file_ending": ".nii.gz"}))
    extra = _ground_truth()
    extra[0, 0, 0:3] = 3  # three voxels of a label the dataset does not have
    _write(tmp_path / "extra" / "c1.nii.gz", _ground_truth())
    _write(tmp_path / "extra" / "c2.nii.gz", extra)
    line = _refused(_evaluate(tmp_path, "extra", "--dataset-json", "dataset.json"), "evaluate")
    assert "case c2" in line and "extra/c2.nii.gz" in line and "label 3 (3 voxels)" in line
    assert "declared: 0, 1, 2" in line
    # without dataset.json every label found is scored: label 3 is a spurious class of c2, nothing dropped
    result = _evaluate(tmp_path, "extra")
    assert result.returncode == 0, result.stderr
    cases = json.loads((tmp_path / "extra.json").read_text())["cases"]
    assert cases["c2"]["3"]["status"] == "spurious" and cases["c2"]["3"]["pred_voxels"] == 3


# ------------------------------------------------------------------------ row 5: compare on a bad file
@pytest.mark.parametrize("name, content, expected", [
    ("garbage.json", "this is not json\n", "is not a results JSON written by `nnunet-lossplug evaluate`: "
                                           "not valid JSON"),
    ("missing.json", None, "no such file; give a RESULT.json written by `nnunet-lossplug evaluate`"),
    ("list.json", "[1, 2]", "is not a results JSON written by `nnunet-lossplug evaluate`"),
    ("shape.json", json.dumps({"cases": {"c1": 5}}), "is not a results JSON written by `nnunet-lossplug "
                                                     "evaluate`: case 'c1' holds 5"),
    ("text.json", json.dumps({"cases": {"c1": {"1": {"dice": "high", "hd": 0, "hd95": 0}}}}),
     "case 'c1', class '1': dice is 'high', expected a number"),
])
def test_compare_names_a_file_that_is_not_a_result(tmp_path: Path, name, content, expected) -> None:
    good = {"cases": {"c1": {"1": {"dice": 0.9, "hd": 1.0, "hd95": 1.0}}}}
    (tmp_path / "a.json").write_text(json.dumps(good))
    if content is not None:
        (tmp_path / name).write_text(content)
    line = _refused(_run(["compare", "a.json", name], tmp_path), "compare")
    assert line.startswith(f"nnunet-lossplug compare: error: {name}") and expected in line, line


# ------------------------------------------------------------------------ row 6: plot -o DIR
def test_plot_refuses_a_directory_and_names_the_file_it_writes(tmp_path: Path) -> None:
    result = {"cases": {f"c{i}": {"1": {"dice": 0.8 + i / 100, "hd": 2.0 + i, "hd95": 1.0 + i}} for i in range(4)}}
    (tmp_path / "a.json").write_text(json.dumps(result))
    (tmp_path / "figures").mkdir()
    line = _refused(_run(["plot", "a.json", "-o", "figures"], tmp_path), "plot")
    assert "-o figures is a directory; give an image file such as figures/plot.png" in line
    assert not (tmp_path / "figures.png").exists() and not any((tmp_path / "figures").iterdir())

    written = _run(["plot", "a.json", "-o", "summary"], tmp_path)  # no suffix: matplotlib appends .png
    assert written.returncode == 0, written.stderr
    assert written.stdout.strip().splitlines()[-1] == "wrote summary.png"
    assert (tmp_path / "summary.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


# ------------------------------------------------------------------------ row 4: one trainer name, two files
def _nnunet_lookup(name: str, tmp_path: Path, ext: str) -> str:
    """The module (file stem) and epochs of the class nnU-Net's own ``-tr`` lookup returns, in a fresh process."""
    code = ("from nnunetv2.utilities.find_objects import recursive_find_trainer_class_by_name\n"
            f"cls = recursive_find_trainer_class_by_name({name!r})\n"
            "print(f'FOUND={cls.__module__}.py epochs={cls.epochs}')")
    environ = dict(os.environ, nnUNet_extTrainer=ext, nnUNet_raw=str(tmp_path / "raw"),
                   nnUNet_preprocessed=str(tmp_path / "pre"), nnUNet_results=str(tmp_path / "res"))
    result = subprocess.run([sys.executable, "-c", code], env=environ, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    return next(line for line in result.stdout.splitlines() if line.startswith("FOUND="))[6:]


def test_trainer_name_defined_in_another_ext_folder(tmp_path: Path) -> None:
    name = "nnUNetTrainerFaultDup"
    first, second = tmp_path / "zz_first", tmp_path / "aa_second"  # listed order, not alphabetical, decides
    made = _run(["new-trainer", name, "--loss", "DiceLoss", "--epochs", "2", "-o", str(first)], tmp_path)
    assert made.returncode == 0, made.stderr
    held = first / "my_trainers.py"  # a user renames the file; the class keeps its name
    (first / f"{name}.py").rename(held)

    # new-trainer refuses the name while another listed folder holds it, naming that file
    refused = _run(["new-trainer", name, "--loss", "DiceLoss", "-o", str(second)], tmp_path,
                   nnUNet_extTrainer=str(first))
    line = _refused(refused, "new-trainer")
    assert f"NAME '{name}' is already a trainer in {held}" in line
    assert not second.exists()

    # the user copies the file anyway: `trainers` flags the name, and says which file nnU-Net uses
    second.mkdir()
    (second / "copy_of_mine.py").write_text(held.read_text().replace("epochs = 2", "epochs = 1000"))
    ext = os.pathsep.join([str(first), str(second)])
    listing = _run(["trainers"], tmp_path, nnUNet_extTrainer=ext)
    assert listing.returncode == 0, listing.stderr
    warning = next(line for line in listing.stdout.splitlines() if line.startswith("warning: trainer name"))
    assert warning.startswith(f"warning: trainer name {name} is defined 2 times; nnUNetv2_train -tr {name} uses "
                              f"{held}:")
    assert f"and never {second / 'copy_of_mine.py'}:" in warning
    assert _nnunet_lookup(name, tmp_path, ext) == "my_trainers.py epochs=2"  # nnU-Net's own lookup agrees

    reversed_ext = os.pathsep.join([str(second), str(first)])
    listing = _run(["trainers"], tmp_path, nnUNet_extTrainer=reversed_ext)
    assert f"-tr {name} uses {second / 'copy_of_mine.py'}:" in listing.stdout
    assert _nnunet_lookup(name, tmp_path, reversed_ext) == "copy_of_mine.py epochs=1000"


def test_trainers_flags_nothing_without_duplicates(tmp_path: Path) -> None:
    made = _run(["new-trainer", "nnUNetTrainerFaultSingle", "--loss", "DiceLoss", "-o", "mine"], tmp_path)
    assert made.returncode == 0, made.stderr
    listing = _run(["trainers"], tmp_path, nnUNet_extTrainer=str(tmp_path / "mine"))
    assert listing.returncode == 0 and "nnUNetTrainerFaultSingle" in listing.stdout
    assert "warning" not in listing.stdout + listing.stderr


# ------------------------------------------------------------------------ -o never destroys a file it did not make
def _two_results(tmp_path: Path) -> None:
    """``pred.json`` and ``other.json``: evaluate results of one prediction folder against ``gt``."""
    _write(tmp_path / "pred" / "c1.nii.gz", np.roll(_ground_truth(), 1, axis=0))
    _write(tmp_path / "pred" / "c2.nii.gz", _ground_truth())
    for name in ("pred", "other"):
        result = _run(["evaluate", "gt", "pred", "-np", "1", "--no-progress", "-o", f"{name}.json"], tmp_path)
        assert result.returncode == 0, result.stderr


def test_evaluate_refuses_to_overwrite_an_evaluated_file(ground_truth: Path) -> None:
    tmp_path = ground_truth
    _write(tmp_path / "pred" / "c1.nii.gz", _ground_truth())
    _write(tmp_path / "pred" / "c2.nii.gz", _ground_truth())
    before = (tmp_path / "gt" / "c1.nii.gz").read_bytes()
    line = _refused(_evaluate(tmp_path, "pred", "-o", "gt/c1.nii.gz"), "evaluate")
    assert "-o gt/c1.nii.gz exists and is not an earlier result JSON of `nnunet-lossplug evaluate`" in line
    assert (tmp_path / "gt" / "c1.nii.gz").read_bytes() == before
    assert not (tmp_path / "gt" / "c1.nii.gz.csv").exists()
    (tmp_path / "mine.csv").write_text("my own table\n")  # a companion CSV of -o mine.json is the user's
    line = _refused(_evaluate(tmp_path, "pred", "-o", "mine.json"), "evaluate")
    assert "-o mine.csv exists and is not an earlier per-case CSV of `nnunet-lossplug evaluate`" in line
    assert (tmp_path / "mine.csv").read_text() == "my own table\n" and not (tmp_path / "mine.json").exists()
    for _ in range(2):  # its own earlier result (and CSVs) is replaced
        assert _evaluate(tmp_path, "pred", "-o", "again.json").returncode == 0
    assert json.loads((tmp_path / "again.json").read_text())["format"] == "nnunet-lossplug evaluate result"


def _hand_made_results(tmp_path: Path) -> None:
    """``pred.json`` and ``other.json`` shaped like evaluate's results, without running it."""
    for name, dice in (("pred", 0.8), ("other", 0.7)):
        cases = {f"c{i}": {"1": {"dice": dice + i / 100, "hd": 2.0, "hd95": 1.0}} for i in range(4)}
        (tmp_path / f"{name}.json").write_text(json.dumps({"cases": cases}))


@pytest.mark.parametrize("command", ["evaluate", "compare", "plot"])
def test_no_output_is_written_through_a_symbolic_link(ground_truth: Path, command: str) -> None:
    tmp_path = ground_truth
    for case in ("c1", "c2"):
        _write(tmp_path / "pred" / f"{case}.nii.gz", _ground_truth())
    _hand_made_results(tmp_path)
    target = tmp_path / "precious.txt"
    target.write_text("years of results\n")
    (tmp_path / "out.json").symlink_to(target)
    (tmp_path / "out.png").symlink_to(target)
    args = {"evaluate": ["evaluate", "gt", "pred", "-np", "1", "--no-progress", "-o", "out.json"],
            "compare": ["compare", "pred.json", "other.json", "-o", "out.json"],
            "plot": ["plot", "pred.json", "-o", "out.png"]}[command]
    line = _refused(_run(args, tmp_path), command)
    assert "is a symbolic link (to " in line and "never written through or replaced" in line
    assert target.read_text() == "years of results\n"
    assert (tmp_path / "out.json").is_symlink() and (tmp_path / "out.png").is_symlink()


def test_each_command_replaces_only_its_own_kind_of_output(ground_truth: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    tmp_path = ground_truth
    _two_results(tmp_path)
    evaluated = (tmp_path / "pred.json").read_bytes()
    line = _refused(_run(["compare", "pred.json", "other.json", "-o", "pred.json"], tmp_path), "compare")
    assert "not an earlier comparison JSON of `nnunet-lossplug compare`" in line
    assert (tmp_path / "pred.json").read_bytes() == evaluated
    for _ in range(2):
        assert _run(["compare", "pred.json", "other.json", "-o", "cmp.json"], tmp_path).returncode == 0
    assert json.loads((tmp_path / "cmp.json").read_text())["format"] == "nnunet-lossplug compare result"

    plt.figure().savefig(tmp_path / "figure1.png")  # a picture of the user's own, drawn with matplotlib
    figure = (tmp_path / "figure1.png").read_bytes()
    line = _refused(_run(["plot", "pred.json", "-o", "figure1.png"], tmp_path), "plot")
    assert "-o figure1.png exists and is not an earlier image drawn by `nnunet-lossplug plot`" in line
    assert (tmp_path / "figure1.png").read_bytes() == figure
    for _ in range(2):
        assert _run(["plot", "pred.json", "-o", "box.png"], tmp_path).returncode == 0
    line = _refused(_run(["evaluate", "gt", "pred", "-np", "1", "--no-progress", "-o", "box.png"], tmp_path),
                    "evaluate")
    assert "-o box.png exists and is not an earlier result JSON" in line


# ------------------------------------------------------------------------ one case name, one file
@pytest.mark.parametrize("folder, other", [("pred", "c1.nii"), ("pred", "c1.NII.GZ"), ("gt", "c1.nii")])
def test_evaluate_refuses_two_files_for_one_case_name(ground_truth: Path, folder: str, other: str) -> None:
    tmp_path = ground_truth
    for case in ("c1", "c2"):
        _write(tmp_path / "pred" / f"{case}.nii.gz", _ground_truth())  # a perfect prediction
    empty = _write(tmp_path / "empty.nii.gz" if other.endswith(".GZ") else tmp_path / "empty.nii", np.zeros(SHAPE_ZYX))
    empty.rename(tmp_path / folder / other)  # an empty file beside c1.nii.gz, which ITK may open instead
    line = _refused(_evaluate(tmp_path, "pred"), "evaluate")
    both = sorted([f"{folder}/c1.nii.gz", f"{folder}/{other}"])
    assert f"case c1: {folder} holds 2 files for one case name: {both[0]} and {both[1]}" in line, line
    assert not (tmp_path / "pred.json").exists()


# ------------------------------------------------------------------------ a requested label that exists nowhere
def test_evaluate_refuses_a_requested_label_that_does_not_exist(ground_truth: Path) -> None:
    tmp_path = ground_truth
    for case in ("c1", "c2"):
        _write(tmp_path / "pred" / f"{case}.nii.gz", _ground_truth())
    (tmp_path / "dataset.json").write_text(json.dumps(
        {"labels": {"background": 0, "RV": 1, "LV": 2}, "file_ending": ".nii.gz"}))
    line = _refused(_evaluate(tmp_path, "pred", "--labels", "7", "--dataset-json", "dataset.json"), "evaluate")
    assert "label 7 requested with -l/--labels is not declared in dataset.json (its class labels: 1 (RV), 2 (LV))" \
        in line
    line = _refused(_evaluate(tmp_path, "pred", "--labels", "2", "7"), "evaluate")
    assert "label 7 requested with -l/--labels is in no ground truth of gt and no prediction of pred (2 cases; " \
           "labels found: 1, 2)" in line
    assert not (tmp_path / "pred.json").exists()
    assert _evaluate(tmp_path, "pred", "--labels", "2").returncode == 0


# ------------------------------------------------------------------------ compare: one ground truth, one label set
def test_compare_refuses_results_of_another_ground_truth_or_label_set(ground_truth: Path) -> None:
    tmp_path = ground_truth
    _two_results(tmp_path)
    other_gt = _ground_truth()
    other_gt[2, 2:8, 2:4] = 0  # another annotation of case c1
    _write(tmp_path / "gt2" / "c1.nii.gz", other_gt)
    _write(tmp_path / "gt2" / "c2.nii.gz", _ground_truth())
    assert _run(["evaluate", "gt2", "pred", "-np", "1", "--no-progress", "-o", "gt2.json"], tmp_path).returncode == 0
    line = _refused(_run(["compare", "pred.json", "gt2.json"], tmp_path), "compare")
    assert "the ground truth of 1 of 2 paired cases differs (e.g. c1): pred was scored against " \
           f"{tmp_path / 'gt'}, gt2 against {tmp_path / 'gt2'}" in line
    allowed = _run(["compare", "pred.json", "gt2.json", "--allow-different-ground-truth"], tmp_path)
    assert allowed.returncode == 0 and allowed.stdout.startswith("warning: the ground truth of 1 of 2")

    import shutil  # the same ground truth in another folder (another machine) is the same ground truth

    shutil.copytree(tmp_path / "gt", tmp_path / "copy")
    assert _run(["evaluate", "copy", "pred", "-np", "1", "--no-progress", "-o", "copy.json"], tmp_path).returncode == 0
    same = _run(["compare", "pred.json", "copy.json"], tmp_path)
    assert same.returncode == 0 and "warning" not in same.stdout, same.stderr

    assert _run(["evaluate", "gt", "pred", "-np", "1", "--no-progress", "-l", "1", "-o", "one.json"],
                tmp_path).returncode == 0
    line = _refused(_run(["compare", "pred.json", "one.json"], tmp_path), "compare")
    assert "pred scored labels {1, 2}, one labels {1}" in line


def test_compare_says_when_no_difference_can_be_significant(tmp_path: Path) -> None:
    def result(dice: float) -> dict:
        return {"cases": {f"c{i}": {"1": {"dice": dice + i / 100, "hd": 1.0, "hd95": 1.0}} for i in range(3)}}

    (tmp_path / "a.json").write_text(json.dumps(result(0.9)))
    (tmp_path / "b.json").write_text(json.dumps(result(0.5)))
    printed = _run(["compare", "a.json", "b.json"], tmp_path)
    assert printed.returncode == 0, printed.stderr
    assert "with 3 pairs the smallest reachable p is 0.25: no difference can be significant at 0.05; use more " \
           "cases or seeds" in printed.stdout
    assert "smallest reachable p 0.25" in printed.stdout
    assert "0.2500 (exact)" in printed.stdout  # the largest possible difference, every case one way
    many = _run(["compare", "a.json", "b.json", "-n", "4"], tmp_path)  # 2^3 > 4: random sign flips
    assert "with 3 pairs and 4 random sign flips the smallest reachable p is 0.2: no difference can be " \
           "significant at 0.05; raise -n above 20" in many.stdout
