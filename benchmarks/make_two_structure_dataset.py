"""A small two-structure dataset like a user's: an ellipsoid organ and a small spherical lesion inside it.

Two structures of very different size (the lesion is about 1 % of the organ's volume), empty slices at both ends
of every volume, 12 training and 3 test cases of 24 × 96 × 96 voxels at 3 × 1 × 1 mm, written in nnU-Net's raw
format (imagesTr, labelsTr, imagesTs, labelsTs, dataset.json). It is the data on which ``nnunet-lossplug
benchmark`` is tried as a user would, not data the project's defaults were tuned on.

Run, then plan and benchmark it::

    python benchmarks/make_two_structure_dataset.py --raw "$nnUNet_raw" --id 502
    nnUNetv2_plan_and_preprocess -d 502 -c 2d -np 1 -npfp 1 --verify_dataset_integrity
    nnunet-lossplug benchmark -d 502 -c 2d --trainers nnUNetTrainerRRW nnUNetTrainer --seeds 3 -o which_loss_502
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np
import SimpleITK as sitk  # noqa: N813
from scipy.ndimage import gaussian_filter

LABELS = {"background": 0, "organ": 1, "lesion": 2}
SHAPE = (24, 96, 96)  # slices, rows, columns
SPACING = (3.0, 1.0, 1.0)  # mm, same order


def two_structure_case(rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """One ``(image float32, labels uint8)`` pair: an ellipsoid organ holding a small sphere, empty end slices."""
    z, y, x = np.meshgrid(*(np.arange(n, dtype=np.float32) * s for n, s in zip(SHAPE, SPACING, strict=True)),
                          indexing="ij")
    centre = np.array([SHAPE[0] * SPACING[0] / 2 + rng.uniform(-3, 3), 48 + rng.uniform(-8, 8),
                       48 + rng.uniform(-8, 8)])
    radii = np.array([rng.uniform(18, 24), rng.uniform(22, 30), rng.uniform(18, 26)])  # mm; ends stay empty
    organ = ((z - centre[0]) / radii[0]) ** 2 + ((y - centre[1]) / radii[1]) ** 2 + ((x - centre[2]) / radii[2]) ** 2
    labels = (organ <= 1).astype(np.uint8)
    direction = rng.normal(size=3)
    offset = direction / np.linalg.norm(direction) * rng.uniform(0.2, 0.5) * radii
    lesion_centre, lesion_radius = centre + offset, rng.uniform(4.0, 6.0)
    lesion = (z - lesion_centre[0]) ** 2 + (y - lesion_centre[1]) ** 2 + (x - lesion_centre[2]) ** 2
    labels[lesion <= lesion_radius**2] = LABELS["lesion"]
    intensity = np.array([0.2, 0.55, 0.8], dtype=np.float32)[labels]
    image = gaussian_filter(intensity, sigma=(0.5, 1.2, 1.2)) + rng.normal(0, 0.07, SHAPE).astype(np.float32)
    return (image * rng.uniform(300, 600)).astype(np.float32), labels


def _write(array: np.ndarray, path: Path) -> None:
    image = sitk.GetImageFromArray(array)
    image.SetSpacing(tuple(float(s) for s in SPACING[::-1]))  # SimpleITK wants (x, y, z)
    sitk.WriteImage(image, str(path), useCompression=True)


def write_dataset(raw: Path, dataset_id: int, num_training: int = 12, num_test: int = 3, seed: int = 7) -> Path:
    """Write ``Dataset{id}_TwoStructures`` under ``raw``; an existing dataset folder is refused, never overwritten."""
    folder = raw / f"Dataset{dataset_id:03d}_TwoStructures"
    if folder.exists():
        raise FileExistsError(f"{folder} exists; give another --id or remove it yourself.")
    for sub in ("imagesTr", "labelsTr", "imagesTs", "labelsTs"):
        (folder / sub).mkdir(parents=True)
    rng = np.random.default_rng(seed)
    for index in range(num_training + num_test):
        image, labels = two_structure_case(rng)
        assert not labels[0].any() and not labels[-1].any(), "the end slices must stay empty"
        split = "Tr" if index < num_training else "Ts"
        _write(image, folder / f"images{split}" / f"case_{index:03d}_0000.nii.gz")
        _write(labels, folder / f"labels{split}" / f"case_{index:03d}.nii.gz")
    (folder / "dataset.json").write_text(json.dumps({
        "channel_names": {"0": "MRI"}, "labels": LABELS, "numTraining": num_training, "file_ending": ".nii.gz",
        "name": "TwoStructures",
        "description": "Synthetic ellipsoid organ holding a small spherical lesion (make_two_structure_dataset.py)",
    }, indent=2))
    return folder


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--raw", type=Path, required=True, help="nnU-Net's raw folder (nnUNet_raw)")
    parser.add_argument("--id", type=int, default=502, help="dataset id (default 502)")
    parser.add_argument("--seed", type=int, default=7, help="random seed of the cases (default 7)")
    args = parser.parse_args(argv)
    try:
        folder = write_dataset(args.raw, args.id, seed=args.seed)
    except FileExistsError as error:
        print(f"make_two_structure_dataset: {error}", file=sys.stderr)
        return 2
    print(f"wrote 12 training and 3 test cases of {SHAPE} voxels at {SPACING} mm to {folder}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
