"""Per-class Dice, Hausdorff distance and HD95 of one case, with the empty-structure convention.

Empty-structure convention (decided here; Valverde & Tohka 2022 are silent):

=================  =====================  ======  ==========================  ==================
status             ground truth / pred    Dice    HD and HD95 (mm)            why
=================  =====================  ======  ==========================  ==================
``both_present``   present / present      eq. 6   eq. 7 (MONAI)               the normal case
``both_empty``     absent / absent        1.0     0.0                         a correct absence
``missed``         present / absent       0.0     penalty                     a false negative
``spurious``       absent / present       0.0     penalty                     a false positive
=================  =====================  ======  ==========================  ==================

The penalty defaults to ``"diagonal"``: the image diagonal in mm, ``sqrt(Σ((n_d − 1) s_d)^2)``, the
largest distance any two voxels of the image can have, so a missed or invented structure is never scored
better than the worst possible detection. It keeps means finite and comparable between methods (the
BraTS evaluation uses the same idea with its fixed 373.13 mm diagonal). ``"nan"`` leaves the distances
undefined instead; summaries then average over the defined values and report how many were undefined.
Every such case is kept and counted by its status, never silently dropped.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence

import numpy as np

from nnunet_lossplug.evaluation.overlap import dice_coefficient
from nnunet_lossplug.evaluation.surface_distance import hausdorff_distances_mm, image_diagonal_mm

STATUSES: tuple[str, ...] = ("both_present", "both_empty", "missed", "spurious")
EMPTY_HD_CHOICES: tuple[str, ...] = ("diagonal", "nan")


def class_metrics(
    pred_mask: np.ndarray,
    gt_mask: np.ndarray,
    spacing: Sequence[float],
    empty_hd: str = "diagonal",
) -> dict[str, float | str | int]:
    """Dice, HD and HD95 (mm) of one structure, following the empty-structure convention above.

    Args:
        pred_mask: boolean array, the predicted structure.
        gt_mask: boolean array of the same shape, the ground-truth structure.
        spacing: voxel size per array axis (mm), in the array's axis order.
        empty_hd: ``"diagonal"`` (default) penalises a missed or spurious structure with the image
            diagonal in mm; ``"nan"`` leaves its distances undefined.

    Returns:
        ``{"dice", "hd", "hd95", "status", "gt_voxels", "pred_voxels"}`` with ``status`` one of
        ``both_present``, ``both_empty``, ``missed``, ``spurious`` and the two voxel counts (which give
        volumes and the class proportions of Valverde & Tohka 2022 table headers).
    """
    if empty_hd not in EMPTY_HD_CHOICES:
        raise ValueError(f"empty_hd must be one of {EMPTY_HD_CHOICES}, got {empty_hd!r}.")
    pred = np.asarray(pred_mask, dtype=bool)
    gt = np.asarray(gt_mask, dtype=bool)
    counts = {"gt_voxels": int(gt.sum()), "pred_voxels": int(pred.sum())}
    if counts["pred_voxels"] and counts["gt_voxels"]:
        hd, hd95 = hausdorff_distances_mm(pred, gt, spacing)
        dice = dice_coefficient(pred, gt)
        return {"dice": dice, "hd": hd, "hd95": hd95, "status": "both_present", **counts}
    if not counts["pred_voxels"] and not counts["gt_voxels"]:
        return both_empty_metrics()
    penalty = image_diagonal_mm(gt.shape, spacing) if empty_hd == "diagonal" else math.nan
    status = "missed" if counts["gt_voxels"] else "spurious"
    return {"dice": 0.0, "hd": penalty, "hd95": penalty, "status": status, **counts}


def both_empty_metrics() -> dict[str, float | str | int]:
    """The entry of a class absent from both ground truth and prediction: Dice 1, HD 0, HD95 0."""
    return {"dice": 1.0, "hd": 0.0, "hd95": 0.0, "status": "both_empty", "gt_voxels": 0, "pred_voxels": 0}


def case_metrics(
    pred_labels: np.ndarray,
    gt_labels: np.ndarray,
    spacing: Sequence[float],
    labels: Iterable[int] | None = None,
    empty_hd: str = "diagonal",
    regions: Mapping[int, Sequence[int]] | None = None,
    ignore_label: int | None = None,
) -> dict[str, dict[str, float | str | int]]:
    """Per-class (or per-region) metrics of one case from two integer label maps.

    Args:
        pred_labels: integer label map of the prediction.
        gt_labels: integer label map of the ground truth, same shape.
        spacing: voxel size per array axis (mm).
        labels: class labels to evaluate; default: every non-zero label present in either map.
        empty_hd: see :func:`class_metrics`.
        regions: ``{number: labels}`` of a region-based dataset (docs/conventions.md#regions): structure
            ``number`` is the union of its labels in both maps, as in nnU-Net's evaluation; ``labels`` then lists
            region numbers.
        ignore_label: ground-truth label of unannotated voxels; they are removed from both masks.

    Returns:
        ``{str(label): {"dice", "hd", "hd95", "status", "gt_voxels", "pred_voxels"}}`` in ascending
        label order.
    """
    pred = np.asarray(pred_labels)
    gt = np.asarray(gt_labels)
    if pred.shape != gt.shape:
        raise ValueError(
            f"prediction and ground truth must have one shape, got {pred.shape} and {gt.shape}; "
            "the prediction must be in the ground truth's geometry (nnU-Net exports it that way)."
        )
    annotated = np.ones(gt.shape, dtype=bool) if ignore_label is None else gt != ignore_label
    if regions is not None:
        numbers = sorted(regions) if labels is None else sorted(int(v) for v in labels)
        return {
            str(number): class_metrics(np.isin(pred, list(regions[number])) & annotated,
                                       np.isin(gt, list(regions[number])) & annotated, spacing, empty_hd=empty_hd)
            for number in numbers
        }
    if labels is None:
        found = np.union1d(np.unique(pred), np.unique(gt[annotated]))
        labels = [int(v) for v in found if v != 0 and v != ignore_label]
    return {
        str(label): class_metrics((pred == label) & annotated, gt == label, spacing, empty_hd=empty_hd)
        for label in sorted(int(v) for v in labels)
    }
