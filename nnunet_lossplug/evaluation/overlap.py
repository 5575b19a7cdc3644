"""Volume overlap between two binary masks: the Dice coefficient of Valverde & Tohka 2022, eq. (6)."""

from __future__ import annotations

import numpy as np


def dice_coefficient(pred_mask: np.ndarray, gt_mask: np.ndarray) -> float:
    """Dice coefficient ``D(A, B) = 2 |A ∩ B| / (|A| + |B|)`` of two binary masks (Valverde & Tohka 2022, eq. 6).

    Args:
        pred_mask: boolean (or 0/1) array, the predicted structure ``A``.
        gt_mask: boolean (or 0/1) array of the same shape, the ground-truth structure ``B``.

    Returns:
        A value in ``[0, 1]``. When both masks are empty the ratio is ``0/0``; this module returns 1.0
        (a correctly predicted absence is a perfect overlap), the convention used by
        :func:`nnunet_lossplug.evaluation.case_metrics.class_metrics`, which also records the case as
        ``both_empty`` so that summaries can count it. When exactly one mask is empty the value is 0.

    Raises:
        ValueError: if the shapes differ.
    """
    pred = np.asarray(pred_mask, dtype=bool)
    gt = np.asarray(gt_mask, dtype=bool)
    if pred.shape != gt.shape:
        raise ValueError(
            f"dice_coefficient needs masks of one shape, got prediction {pred.shape} and ground truth "
            f"{gt.shape}; resample the prediction to the ground-truth grid first."
        )
    size_sum = int(pred.sum()) + int(gt.sum())
    if size_sum == 0:
        return 1.0
    intersection = int(np.logical_and(pred, gt).sum())
    return 2.0 * intersection / size_sum
