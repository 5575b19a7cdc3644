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
from pathlib import Path

if __package__ in (None, ""):  # run as a script: make the repository root importable
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import numpy as np  # noqa: E402
import SimpleITK as sitk  # noqa: E402, N813

from experiments.common.components import StrayComponent, component_count, stray_components  # noqa: E402
from experiments.common.reporting import markdown_table  # noqa: E402

KINDS = {"predictions": "raw", "predictions_postprocessed": "nnU-Net post-processing"}
SUFFIX = ".nii.gz"


def _read(path: Path) -> tuple[np.ndarray, tuple[float, ...]]:
    image = sitk.ReadImage(str(path))
    return sitk.GetArrayFromImage(image), tuple(float(s) for s in reversed(image.GetSpacing()))


def count_run(folder: Path, labels_folder: Path,
              labels: Sequence[int]) -> dict[int, list[tuple[int, list[StrayComponent]]]]:
    """Per class, ``(components, strays)`` of every case predicted in ``folder``.

    Strays are :func:`experiments.common.components.stray_components` (full connectivity; a class absent from
    the reference makes every component a stray at an infinite distance).
    """
    found: dict[int, list[tuple[int, list[StrayComponent]]]] = {label: [] for label in labels}
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
        strays = stray_components(prediction, reference, labels, spacing)
        for label in labels:
            found[label].append((component_count(prediction, label), [s for s in strays if s.label == label]))
    return found


def _mean_sd(values: list[float]) -> str:
    return f"{np.mean(values):.1f} ± {np.std(values, ddof=1):.1f}" if len(values) > 1 else f"{values[0]:.1f} ± —"


def stray_table(benchmark: Path, labels_folder: Path) -> str:
    """The Markdown table of a benchmark folder's runs (see the module docstring)."""
    document = json.loads((benchmark / "report.json").read_text())
    labels = sorted(int(label) for label in document["label_names"])
    names = {int(k): v or f"label {k}" for k, v in document["label_names"].items()}
    headers = ["trainer", "predictions", "runs"] + [
        column for c in labels for column in (f"{names[c]} components per case", f"{names[c]} strays per case",
                                              f"{names[c]} largest stray (voxels)", f"{names[c]} farthest stray mm")]
    rows = []
    for trainer in document["trainers"]:
        runs = [run for run in document["runs"] if run["trainer"] == trainer]
        for kind, kind_name in KINDS.items():
            counted = [count_run(benchmark / "runs" / run["variant"] / f"seed_{run['seed']}" / kind, labels_folder,
                                 labels) for run in runs]
            cells: list[object] = [trainer, kind_name, len(runs)]
            for label in labels:
                per_run_components = [float(np.mean([n for n, _ in run[label]])) for run in counted]
                per_run_strays = [float(np.mean([len(s) for _, s in run[label]])) for run in counted]
                strays = [stray for run in counted for _, found in run[label] for stray in found]
                cells += [_mean_sd(per_run_components), _mean_sd(per_run_strays),
                          str(max(s.voxels for s in strays)) if strays else "—",
                          f"{max(s.distance_mm for s in strays):.0f}" if strays else "—"]
            rows.append(cells)
    return markdown_table(headers, rows)


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
