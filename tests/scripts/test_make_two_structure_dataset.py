"""``benchmarks/make_two_structure_dataset.py``: 12 + 3 cases of 24 × 96 × 96 at 3 × 1 × 1 mm, an organ and a small
lesion, empty end slices, in nnU-Net's raw format; an existing dataset folder is refused, never overwritten."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import numpy as np
import SimpleITK as sitk  # noqa: N813

SCRIPT = Path(__file__).resolve().parents[2] / "benchmarks" / "make_two_structure_dataset.py"


def _load():
    spec = importlib.util.spec_from_file_location("make_two_structure_dataset", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_the_dataset_has_two_structures_of_very_different_size_and_empty_end_slices(tmp_path):
    script = _load()
    assert script.main(["--raw", str(tmp_path), "--id", "502"]) == 0
    folder = tmp_path / "Dataset502_TwoStructures"
    assert json.loads((folder / "dataset.json").read_text())["labels"] == {"background": 0, "organ": 1, "lesion": 2}
    assert len(list((folder / "labelsTr").glob("*.nii.gz"))) == 12 and len(list((folder / "imagesTs").iterdir())) == 3
    image = sitk.ReadImage(str(folder / "labelsTs" / "case_013.nii.gz"))
    labels = sitk.GetArrayFromImage(image)
    assert labels.shape == (24, 96, 96) and image.GetSpacing() == (1.0, 1.0, 3.0)
    assert not labels[0].any() and not labels[-1].any()
    organ, lesion = (labels == 1).sum(), (labels == 2).sum()
    assert lesion > 0 and 0.002 < lesion / organ < 0.05
    assert np.array_equal(np.unique(labels), [0, 1, 2])
    (folder / "labelsTr" / "case_000.nii.gz").write_text("the user's")
    assert script.main(["--raw", str(tmp_path), "--id", "502"]) == 2
    assert (folder / "labelsTr" / "case_000.nii.gz").read_text() == "the user's"
