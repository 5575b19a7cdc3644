"""Connected components of predicted label volumes: the stray ones, and nnU-Net's largest-component filter.

A *stray* component of class ``k`` is a connected component of the predicted class-``k`` mask that has no
voxel in the true class-``k`` mask: a structure invented away from the real one. Components are found with
:func:`scipy.ndimage.label` at full connectivity (26 neighbours in 3D, 8 in 2D), the connectivity of
nnU-Net's own post-processing (``remove_all_but_largest_component``, which labels with scikit-image's
default, full connectivity). Distances are Euclidean in the unit of ``spacing`` (mm), from
:func:`scipy.ndimage.distance_transform_edt`.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from nnunetv2.postprocessing.remove_connected_components import remove_all_but_largest_component_from_segmentation
from scipy import ndimage

__all__ = ["StrayComponent", "component_count", "keep_largest_component_per_class", "stray_components",
           "stray_mask"]


@dataclass(frozen=True)
class StrayComponent:
    """One stray predicted component: its class, size, distance to the true structure and where it lies.

    Attributes:
        label: the class ``k`` it was predicted as.
        voxels: its size in voxels.
        distance_mm: the smallest distance from any of its voxels to a true voxel of class ``k`` (``inf`` when
            class ``k`` is absent from the truth).
        voxels_in_empty_slices: how many of its voxels lie in slices (along axis 0) whose truth holds no
            foreground of any class.
    """

    label: int
    voxels: int
    distance_mm: float
    voxels_in_empty_slices: int


def stray_components(prediction: np.ndarray, truth: np.ndarray, labels: Sequence[int],
                     spacing: Sequence[float]) -> list[StrayComponent]:
    """The stray components of each class in ``labels`` of one predicted volume (see the module docstring).

    Args:
        prediction: integer label volume ``(slices, rows, columns)`` (or a 2D image).
        truth: the true label volume, same shape; label 0 is background.
        labels: the classes to examine (normally every foreground class).
        spacing: voxel size per axis (mm), in the arrays' axis order.
    """
    prediction, truth = np.asarray(prediction), np.asarray(truth)
    if prediction.shape != truth.shape or len(spacing) != truth.ndim:
        raise ValueError(
            f"prediction {prediction.shape} and truth {truth.shape} must share a shape with one spacing per "
            f"axis; got spacing {tuple(spacing)}."
        )
    structure = ndimage.generate_binary_structure(truth.ndim, truth.ndim)
    empty_slices = ~(truth != 0).reshape(truth.shape[0], -1).any(axis=1)
    in_empty_slice = np.broadcast_to(empty_slices.reshape(-1, *([1] * (truth.ndim - 1))), truth.shape)
    strays: list[StrayComponent] = []
    for label in labels:
        true_mask = truth == label
        components, count = ndimage.label(prediction == label, structure=structure)
        if count == 0:
            continue
        touching = np.unique(components[true_mask])
        if true_mask.any():
            distance = ndimage.distance_transform_edt(~true_mask, sampling=spacing)
        for index in range(1, count + 1):
            if index in touching:
                continue
            member = components == index
            nearest = float(distance[member].min()) if true_mask.any() else float("inf")
            strays.append(StrayComponent(int(label), int(member.sum()), nearest,
                                         int((member & in_empty_slice).sum())))
    return strays


def component_count(prediction: np.ndarray, label: int) -> int:
    """Number of connected components of class ``label`` in ``prediction`` (full connectivity, as above)."""
    prediction = np.asarray(prediction)
    return int(ndimage.label(prediction == label, structure=ndimage.generate_binary_structure(
        prediction.ndim, prediction.ndim))[1])


def stray_mask(prediction: np.ndarray, truth: np.ndarray, label: int) -> np.ndarray:
    """Boolean mask of the voxels of the stray components of class ``label`` (see the module docstring)."""
    prediction, truth = np.asarray(prediction), np.asarray(truth)
    if prediction.shape != truth.shape:
        raise ValueError(f"prediction {prediction.shape} and truth {truth.shape} must share a shape.")
    predicted = prediction == label
    structure = ndimage.generate_binary_structure(truth.ndim, truth.ndim)
    components, _ = ndimage.label(predicted, structure=structure)
    touching = np.unique(components[predicted & (truth == label)])
    return predicted & ~np.isin(components, touching)


def keep_largest_component_per_class(prediction: np.ndarray, labels: Sequence[int]) -> np.ndarray:
    """``prediction`` with only the largest connected component of each class in ``labels`` kept.

    The rest becomes background (0). This is nnU-Net's post-processing
    (``nnunetv2.postprocessing.remove_connected_components.remove_all_but_largest_component_from_segmentation``),
    which ``nnUNetv2_find_best_configuration`` may choose per class; it is applied here class by class.
    """
    result = np.asarray(prediction)
    for label in labels:
        result = remove_all_but_largest_component_from_segmentation(result, int(label))
    return result
