"""A small synthetic cardiac-cine-like dataset in nnU-Net's raw format, for the demo and the tests.

Each case is a 3D volume with anisotropic spacing (thick slices, as in cine MRI short-axis stacks) holding
background and three structures in the spirit of ACDC: the right ventricle (1), a myocardium ring (2) around
the left-ventricle cavity (3). The heart narrows towards the apex and a few slices at both ends have no
foreground at all, like the basal and apical slices of a real stack.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import SimpleITK as sitk
from scipy.ndimage import gaussian_filter

LABELS = {"background": 0, "RV": 1, "MYO": 2, "LV": 3}


@dataclass(frozen=True)
class SyntheticSpec:
    """Size of the generated dataset; the defaults keep a CPU demo to minutes."""

    num_training: int = 10
    num_test: int = 3
    shape: tuple[int, int, int] = (10, 64, 64)  # slices, rows, columns
    spacing: tuple[float, float, float] = (10.0, 1.5, 1.5)  # mm, same axis order
    seed: int = 0


def synthetic_case(rng: np.random.Generator, shape: tuple[int, int, int]) -> tuple[np.ndarray, np.ndarray]:
    """One ``(image float32, labels uint8)`` pair of shape ``shape``."""
    slices, rows, cols = shape
    yy, xx = np.mgrid[0:rows, 0:cols].astype(np.float32)
    labels = np.zeros(shape, dtype=np.uint8)
    cy, cx = rows / 2 + rng.uniform(-4, 4), cols / 2 + rng.uniform(-4, 4)
    lv_radius = rng.uniform(0.12, 0.17) * min(rows, cols)
    wall = rng.uniform(0.05, 0.08) * min(rows, cols)
    rv_shift = rng.uniform(0.9, 1.2) * (lv_radius + wall)
    empty_base, empty_apex = int(rng.integers(1, 3)), int(rng.integers(1, 3))
    for z in range(empty_base, slices - empty_apex):
        taper = 1.0 - 0.6 * (z - empty_base) / max(1, slices - empty_apex - empty_base)  # narrows to the apex
        r_lv, r_epi = lv_radius * taper, (lv_radius + wall) * taper
        dist_lv = np.hypot(yy - cy, xx - cx)
        rv_cy, rv_cx = cy - 0.2 * rv_shift * taper, cx - rv_shift * taper
        dist_rv = np.hypot((yy - rv_cy) / 1.3, xx - rv_cx)
        rv = (dist_rv < r_epi * 1.05) & (dist_lv >= r_epi)
        labels[z][rv] = LABELS["RV"]
        labels[z][(dist_lv < r_epi) & (dist_lv >= r_lv)] = LABELS["MYO"]
        labels[z][dist_lv < r_lv] = LABELS["LV"]
    intensity = np.array([0.35, 0.6, 0.1, 0.95], dtype=np.float32)[labels]  # bg, RV, MYO, LV
    image = gaussian_filter(intensity, sigma=(0, 1.0, 1.0)) + rng.normal(0, 0.08, shape).astype(np.float32)
    image *= rng.uniform(400, 800)  # arbitrary scanner units
    return image.astype(np.float32), labels


def _write(array: np.ndarray, spacing: tuple[float, float, float], path: Path) -> None:
    itk = sitk.GetImageFromArray(array)
    itk.SetSpacing(tuple(float(s) for s in spacing[::-1]))  # SimpleITK wants (x, y, z)
    sitk.WriteImage(itk, str(path), useCompression=True)


def write_synthetic_dataset(raw_folder: Path, dataset_id: int, name: str = "LossPlugDemo",
                            spec: SyntheticSpec = SyntheticSpec()) -> Path:
    """Write ``Dataset{id:03d}_{name}`` (imagesTr, labelsTr, imagesTs, labelsTs, dataset.json) to ``raw_folder``.

    Deterministic for a given ``spec.seed``; an existing folder of the same name is overwritten.
    Returns the dataset folder.
    """
    folder = Path(raw_folder) / f"Dataset{dataset_id:03d}_{name}"
    for sub in ("imagesTr", "labelsTr", "imagesTs", "labelsTs"):
        (folder / sub).mkdir(parents=True, exist_ok=True)
        for old in (folder / sub).glob("*.nii.gz"):
            old.unlink()
    rng = np.random.default_rng(spec.seed)
    for index in range(spec.num_training + spec.num_test):
        image, labels = synthetic_case(rng, spec.shape)
        split = "Tr" if index < spec.num_training else "Ts"
        case = f"heart_{index:03d}"
        _write(image, spec.spacing, folder / f"images{split}" / f"{case}_0000.nii.gz")
        _write(labels, spec.spacing, folder / f"labels{split}" / f"{case}.nii.gz")
    dataset_json = {
        "channel_names": {"0": "cineMRI"},
        "labels": LABELS,
        "numTraining": spec.num_training,
        "file_ending": ".nii.gz",
        "name": name,
        "description": "Synthetic cardiac-cine-like volumes written by nnunet-lossplug (not real data).",
    }
    (folder / "dataset.json").write_text(json.dumps(dataset_json, indent=2))
    return folder
