"""Stray components in the predictions of an ``nnunet-lossplug benchmark`` report folder, raw and post-processed.

The companion of ``experiments/stray_components.py`` (which trains a small 2D U-Net) for real nnU-Net runs: it
reads every run of a benchmark folder (``DIR/report.json``; each run's ``predictions/`` and
``predictions_postprocessed/``) and the reference labels of the scored cases, and counts per class

- the connected components of the prediction (3D, 26-connectivity), and
- the *strays*: components that touch no voxel of that class in the reference, with their size in voxels and
  their distance in mm (the smallest Euclidean distance, in the image's spacing, from a stray voxel to the
  reference's class).

It prints one Markdown table (per trainer and kind: runs, mean components per case, strays per case as mean ± sd
over the runs, the largest stray and the farthest). A stray of one voxel changes Dice by almost nothing and
HD95 often not at all, but it sets the maximum Hausdorff distance; nnU-Net's post-processing removes it only where
keeping the largest component raised the Dice of the validation cases.

Run::

    python experiments/stray_components_nnunet.py --benchmark which_loss \\
        --labels "$nnUNet_raw/Dataset503_TwoStructures/labelsTs"
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import SimpleITK as sitk  # noqa: N813
from scipy import ndimage

KINDS = {"predictions": "raw", "predictions_postprocessed": "nnU-Net post-processing"}
SUFFIX = ".nii.gz"


@dataclass(frozen=True)
class Stray:
    """One predicted component of a class that touches no reference voxel of that class."""

    voxels: int
    distance_mm: float


def components_and_strays(prediction: np.ndarray, reference: np.ndarray, label: int,
                          spacing: Sequence[float]) -> tuple[int, list[Stray]]:
    """Number of 26-connected components of ``prediction == label`` and its strays (see the module docstring).

    Without the class in the reference every component is a stray at an infinite distance.
    """
    components, count = ndimage.label(prediction == label, structure=np.ones((3,) * prediction.ndim, dtype=bool))
    target = reference == label
    distance = (ndimage.distance_transform_edt(~target, sampling=spacing) if target.any()
                else np.full(prediction.shape, np.inf))
    strays = []
    for index in range(1, count + 1):
        inside = components == index
        if not target[inside].any():
            strays.append(Stray(int(inside.sum()), float(distance[inside].min())))
    return count, strays


def _read(path: Path) -> tuple[np.ndarray, tuple[float, ...]]:
    image = sitk.ReadImage(str(path))
    return sitk.GetArrayFromImage(image), tuple(float(s) for s in reversed(image.GetSpacing()))


def count_run(folder: Path, labels_folder: Path, labels: Sequence[int]) -> dict[int, list[tuple[int, list[Stray]]]]:
    """Per class, ``(components, strays)`` of every case predicted in ``folder``."""
    found: dict[int, list[tuple[int, list[Stray]]]] = {label: [] for label in labels}
    predictions = sorted(folder.glob(f"*{SUFFIX}"))
    if not predictions:
        raise FileNotFoundError(f"no {SUFFIX} prediction in {folder}")
    for path in predictions:
        reference_path = labels_folder / path.name
        if not reference_path.is_file():
            raise FileNotFoundError(f"no reference {reference_path} for the prediction {path}; give --labels the "
                                    f"folder of the scored cases' labels (labelsTs)")
        prediction, spacing = _read(path)
        reference, _ = _read(reference_path)
        for label in labels:
            found[label].append(components_and_strays(prediction, reference, label, spacing))
    return found


def _mean_sd(values: list[float]) -> str:
    return f"{np.mean(values):.1f} ± {np.std(values, ddof=1):.1f}" if len(values) > 1 else f"{values[0]:.1f} ± —"


def stray_table(benchmark: Path, labels_folder: Path) -> str:
    """The Markdown table of a benchmark folder's runs (see the module docstring)."""
    document = json.loads((benchmark / "report.json").read_text())
    labels = sorted(int(label) for label in document["label_names"])
    names = {int(k): v or f"label {k}" for k, v in document["label_names"].items()}
    header = "| trainer | predictions | runs | " + " | ".join(
        f"{names[c]} components per case | {names[c]} strays per case | {names[c]} largest stray (voxels) | "
        f"{names[c]} farthest stray mm" for c in labels) + " |"
    lines = [header, "|" + "---|" * (3 + 4 * len(labels))]
    for trainer in document["trainers"]:
        runs = [run for run in document["runs"] if run["trainer"] == trainer]
        for kind, kind_name in KINDS.items():
            counted = [count_run(benchmark / "runs" / run["variant"] / f"seed_{run['seed']}" / kind, labels_folder,
                                 labels) for run in runs]
            cells = []
            for label in labels:
                per_run_components = [float(np.mean([n for n, _ in run[label]])) for run in counted]
                per_run_strays = [float(np.mean([len(s) for _, s in run[label]])) for run in counted]
                strays = [stray for run in counted for _, found in run[label] for stray in found]
                cells += [_mean_sd(per_run_components), _mean_sd(per_run_strays),
                          str(max(s.voxels for s in strays)) if strays else "—",
                          f"{max(s.distance_mm for s in strays):.0f}" if strays else "—"]
            lines.append(f"| {trainer} | {kind_name} | {len(runs)} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--benchmark", type=Path, required=True, help="a folder written by nnunet-lossplug benchmark")
    parser.add_argument("--labels", type=Path, required=True, help="the scored cases' reference labels (labelsTs)")
    args = parser.parse_args(argv)
    if not (args.benchmark / "report.json").is_file():
        parser.error(f"{args.benchmark} holds no report.json: give a folder written by nnunet-lossplug benchmark")
    try:
        print(stray_table(args.benchmark, args.labels))
    except FileNotFoundError as error:
        print(f"stray_components_nnunet: error: {error}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
