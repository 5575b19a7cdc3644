"""Tiny generated datasets with nnU-Net's region-based labels, an ignore label, or both (written to ``nnUNet_raw``)."""

from __future__ import annotations

import json
from pathlib import Path

import SimpleITK as sitk

from nnunet_lossplug.demo.synthetic import SyntheticSpec, write_synthetic_dataset

LABEL_DATASET_SPEC = SyntheticSpec(num_training=5, num_test=1, shape=(6, 32, 32), spacing=(10.0, 1.5, 1.5), seed=3)
REGION_LABELS = {"background": 0, "whole": [1, 2, 3], "core": [2, 3], "enhancing": 3}


def write_label_dataset(raw: Path, dataset_id: int, name: str, regions: bool, ignore: bool) -> Path:
    folder = write_synthetic_dataset(raw, dataset_id, name, LABEL_DATASET_SPEC)
    dataset_json = json.loads((folder / "dataset.json").read_text())
    labels = dict(REGION_LABELS) if regions else dict(dataset_json["labels"])
    if regions:
        dataset_json["regions_class_order"] = [1, 2, 3]
    if ignore:
        labels["ignore"] = 4
        for path in sorted((folder / "labelsTr").glob("*.nii.gz")):  # unannotated: every other row band
            image = sitk.ReadImage(str(path))
            array = sitk.GetArrayFromImage(image)
            array[:, 8:14, :] = 4
            array[:, :, 26:] = 4
            out = sitk.GetImageFromArray(array)
            out.CopyInformation(image)
            sitk.WriteImage(out, str(path), useCompression=True)
    dataset_json["labels"] = labels
    (folder / "dataset.json").write_text(json.dumps(dataset_json, indent=2))
    return folder
