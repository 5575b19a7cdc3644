"""Hard-label metrics of the experiments, on top of the library's Dice (Valverde & Tohka 2022 eq. 6)."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from nnunet_lossplug.evaluation import dice_coefficient

__all__ = ["dice_per_group", "false_positive_voxels", "per_image_dice"]


def dice_per_group(
    prediction: np.ndarray, truth: np.ndarray, groups: np.ndarray, classes: Sequence[int]
) -> np.ndarray:
    """Dice of each class on each group of images (e.g. the slices of one volume), ``(G, len(classes))``.

    For every group id (sorted) the slices are stacked into one volume and
    :func:`nnunet_lossplug.evaluation.dice_coefficient` is taken per class (``2|A∩B|/(|A|+|B|)``, 1 when
    the class is absent from both, the library's convention), as Valverde & Tohka 2022 evaluates 3D volumes.
    """
    if prediction.shape != truth.shape or groups.shape != truth.shape[:1]:
        raise ValueError(
            f"prediction and truth must share a shape (N, ...) with groups (N,); got {prediction.shape}, "
            f"{truth.shape} and {groups.shape}."
        )
    result = []
    for group in np.unique(groups):
        members = groups == group
        result.append([dice_coefficient(prediction[members] == k, truth[members] == k) for k in classes])
    return np.asarray(result, dtype=np.float64)


def per_image_dice(prediction: np.ndarray, truth: np.ndarray, foreground: int = 1) -> np.ndarray:
    """Dice of the class ``foreground`` on each image ``(N,)`` (1 when both masks are empty)."""
    if prediction.shape != truth.shape:
        raise ValueError(f"prediction and truth shapes differ: {prediction.shape} vs {truth.shape}.")
    return np.array([dice_coefficient(p == foreground, t == foreground) for p, t in zip(prediction, truth)])


def false_positive_voxels(prediction: np.ndarray, truth: np.ndarray, foreground: int = 1) -> np.ndarray:
    """Number of voxels predicted as ``foreground`` where the truth is not, per image ``(N,)``."""
    if prediction.shape != truth.shape:
        raise ValueError(f"prediction and truth shapes differ: {prediction.shape} vs {truth.shape}.")
    wrong = (prediction == foreground) & (truth != foreground)
    return wrong.reshape(wrong.shape[0], -1).sum(axis=1)
