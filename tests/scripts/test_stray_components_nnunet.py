"""``experiments/stray_components_nnunet.py``: the shared component helpers it counts with, checked by hand, and
the table of a small hand-made benchmark folder (real NIfTI files; no training)."""

from __future__ import annotations

import json
import math
import sys
from pathlib import Path

import numpy as np
import pytest
import SimpleITK as sitk  # noqa: N813

REPO_ROOT = Path(__file__).resolve().parents[2]
if str(REPO_ROOT) not in sys.path:  # the experiments folder is not an installed package
    sys.path.insert(0, str(REPO_ROOT))

from experiments import stray_components_nnunet as strays  # noqa: E402
from experiments.common.components import component_count, stray_components  # noqa: E402

SPACING = (3.0, 1.0, 1.0)  # z, y, x in mm


def _reference() -> np.ndarray:
    reference = np.zeros((6, 12, 12), dtype=np.uint8)
    reference[2:4, 3:6, 3:6] = 1
    return reference


def _prediction() -> np.ndarray:
    prediction = _reference().copy()
    prediction[2, 3, 6] = 1  # touches the reference's class: part of the true component, not a stray
    prediction[5, 4, 4] = 1  # one voxel two slices above the organ's top (z = 3): 2 x 3 mm = 6 mm away
    prediction[2, 3, 10:12] = 1  # two voxels in the organ's slice, 5 columns from its last one (x = 5): 5 mm
    return prediction


def test_components_and_strays_by_hand():
    assert component_count(_prediction(), 1) == 3
    found = stray_components(_prediction(), _reference(), [1], SPACING)
    assert sorted((s.voxels, s.distance_mm) for s in found) == [(1, 6.0), (2, 5.0)]


def test_a_class_absent_from_the_reference_makes_every_component_a_stray_at_infinity():
    prediction = np.zeros((3, 5, 5), dtype=np.uint8)
    prediction[1, 1, 1] = prediction[1, 3, 3] = 2
    found = stray_components(prediction, np.zeros_like(prediction), [2], SPACING)
    assert component_count(prediction, 2) == 2
    assert [s.voxels for s in found] == [1, 1] and all(math.isinf(s.distance_mm) for s in found)


def _write(array: np.ndarray, path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    image = sitk.GetImageFromArray(array)
    image.SetSpacing(tuple(reversed(SPACING)))
    sitk.WriteImage(image, str(path))


def test_the_table_of_a_benchmark_folder(tmp_path):
    labels = tmp_path / "labelsTs"
    _write(_reference(), labels / "case_000.nii.gz")
    bench = tmp_path / "bench"
    run = bench / "runs" / "Trainer_q1x1" / "seed_3"
    _write(_prediction(), run / "predictions" / "case_000.nii.gz")
    _write(_reference(), run / "predictions_postprocessed" / "case_000.nii.gz")  # post-processing removed both
    (bench / "report.json").write_text(json.dumps({
        "trainers": ["Trainer"], "label_names": {"1": "organ"},
        "runs": [{"trainer": "Trainer", "variant": "Trainer_q1x1", "seed": 3}]}))
    rows = strays.stray_table(bench, labels).splitlines()
    assert rows[2] == "| Trainer | raw | 1 | 3.0 ± — | 2.0 ± — | 2 | 6 |"
    assert rows[3] == "| Trainer | nnU-Net post-processing | 1 | 1.0 ± — | 0.0 ± — | — | — |"
    (labels / "case_000.nii.gz").unlink()
    with pytest.raises(FileNotFoundError, match="no reference .*labelsTs"):
        strays.stray_table(bench, labels)
