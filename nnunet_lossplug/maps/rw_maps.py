"""Region-wise (RW) maps of Valverde & Tohka 2022 (Pattern Recognition 2022): label map -> ``z``.

The RW loss is ``L = mean(softmax(x) * z)`` with a map ``z`` of shape ``(K, *spatial)`` that depends only
on the ground truth. This module computes the maps of docs/conventions.md#region-wise-loss for one image (2D or 3D)
in numpy:

===============  ====================================================  ==========================
kind             ``z_k(i)``                                            Valverde & Tohka 2022
===============  ====================================================  ==========================
``"rrw"``        ``-d_k(i) / max_{j∈Ω_k} d_k(j)`` in ``Ω_k``, else 1   eq. 4 (the proposal)
``"boundary"``   ``-d_k(i)`` in ``Ω_k``, ``+d_k(i)`` outside           eq. 3 (= Boundary loss)
``"ac"``         ``1 - y_k(i)``                                        Prop. 1 (Active Contour)
``"cao"``        ``1 - 2 y_k(i)``                                      Prop. 4 (Cao et al. [25])
===============  ====================================================  ==========================

``d_k`` is the exact Euclidean distance of :mod:`nnunet_lossplug.maps.distances` (with the voxel spacing;
a voxel touching the boundary has distance = its spacing). All functions return float32 arrays of shape
``(num_classes, *labels.shape)`` and never touch torch.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from scipy.ndimage import distance_transform_edt

from nnunet_lossplug.maps.distances import distance_to_other_label, signed_distance_stack
from nnunet_lossplug.maps.validation import (
    validate_class_values,
    validate_labels,
    validate_spacing,
)

__all__ = [
    "ac_map",
    "boundary_map",
    "cao_map",
    "rrw_map",
    "rrw_reference_map",
    "rrw_true_class_values",
]


def _true_class_index(labels: np.ndarray) -> np.ndarray:
    """Labels as an ``(1, *spatial)`` intp index for ``np.put_along_axis`` along the class axis."""
    return labels[None].astype(np.intp)


def rrw_map(
    labels: np.ndarray,
    num_classes: int,
    spacing: Sequence[float] | None = None,
    class_values: Sequence[float] | None = None,
) -> np.ndarray:
    """Rectified Region-wise (RRW) map, Valverde & Tohka 2022 eq. 4 (docs/conventions.md#region-wise-loss), float32
    ``(K, *spatial)``.

    ``z_k(i) = -d_k(i) / max_{j ∈ Ω_k} d_k(j)`` for ``i ∈ Ω_k`` (values in ``[-1, 0)``, ``-1`` reached at
    the deepest voxel of each present class) and ``z_k(i) = 1`` for ``i ∉ Ω_k``, where ``d_k(i)`` is the
    Euclidean distance (with ``spacing``) from ``i`` to the nearest voxel not in class ``k``.

    Edge cases (docs/conventions.md#region-wise-loss): a class absent from the image gives ``z_k ≡ 1``. A class that
    fills the whole
    array has no boundary; its values are the limit of ``-d/max d`` for constant depth, ``z_k ≡ -1``
    (the reference code instead returns scipy's ramp from a phantom border, see
    :func:`rrw_reference_map`).

    Class emphasis (Valverde & Tohka 2022 Sec. 3.3, ``class_values = (c_0, ..., c_{K-1})``, all ``> 0``): at a voxel
    whose TRUE class is ``t``, every other channel gets ``c_t`` instead of 1::

        z_k(i) = c_{t(i)}   for k ≠ t(i).

    Why per true class and not per channel: the rectification principle (Sec. 3.3-3.4) requires all
    non-true components of a voxel to be equal, so that the logit gradient
    ``dL/dx_k = s_k (z_k - Σ_j s_j z_j)`` has exactly one negative component (the true class) for every
    softmax. Reading ``c_k`` per channel ("channel k gets ``c_k`` outside class k") would give the
    non-true components of one voxel different values ``c_k ≠ c_l``, and a softmax concentrated on the
    largest of them makes two components negative: the map would no longer be rectified (shown in
    ``tests/maps/test_maps_rectification.py`` with :func:`~nnunet_lossplug.maps.rectification_report`). With
    the per-true-class reading, a larger ``c_t`` scales up the loss and the gradient on voxels of class
    ``t`` (the paper's "more important pixels"). ``None`` means ``c ≡ 1`` (eq. 4 exactly).

    Args:
        labels: integer class indices ``(*spatial)``, 2D or 3D, values in ``[0, num_classes)``.
        num_classes: K, background included.
        spacing: voxel size per axis of ``labels``; ``None`` = unit spacing. Anisotropic spacing changes
            the shape of the distance field, not only its scale.
        class_values: optional per-class emphasis ``c_t > 0`` (see above).
    """
    lab = validate_labels(labels, num_classes)
    sp = validate_spacing(spacing, lab.ndim)
    shape = (num_classes, *lab.shape)
    if class_values is None:
        out = np.ones(shape, dtype=np.float32)
    else:
        values = validate_class_values(class_values, num_classes)
        out = np.empty(shape, dtype=np.float32)
        out[...] = values[lab][None]
    true_values = _rrw_true_values(lab, num_classes, sp)
    np.put_along_axis(out, _true_class_index(lab), true_values[None], axis=0)
    return out


def _rrw_true_values(lab: np.ndarray, num_classes: int, sp: tuple[float, ...]) -> np.ndarray:
    """``-d_t(i) / max_{j∈Ω_t} d_t(j)`` for validated input; see :func:`rrw_true_class_values`."""
    inside = distance_to_other_label(lab, sp)
    if inside is None:
        return np.full(lab.shape, -1.0, dtype=np.float32)
    class_max = np.zeros(num_classes, dtype=np.float32)
    np.maximum.at(class_max, lab.ravel(), inside.ravel())  # per-class maximum depth, one reduction
    inside /= class_max[lab]
    np.negative(inside, out=inside)
    return inside


def rrw_true_class_values(
    labels: np.ndarray,
    num_classes: int,
    spacing: Sequence[float] | None = None,
) -> np.ndarray:
    """Each voxel's own-class value of the RRW map, ``z_t(i) = -d_t(i) / max_{j∈Ω_t} d_t(j)``, float32 ``(*spatial)``.

    The only channel of :func:`rrw_map` that is not a constant (every other channel of voxel ``i`` is 1, or
    ``c_t``): ``rrw_map(...)[t(i), i]``, computed without the ``K``-channel array. One multi-label EDT pass
    gives ``d_t`` for every voxel at once and one reduction over the labels gives the per-class maxima, so
    time and memory do not grow with ``K`` (``benchmarks/bench_maps.py``). Same edge cases as
    :func:`rrw_map` (a class filling the array: ``-1``).
    """
    lab = validate_labels(labels, num_classes)
    return _rrw_true_values(lab, num_classes, validate_spacing(spacing, lab.ndim))


def rrw_reference_map(
    labels: np.ndarray,
    num_classes: int,
    spacing: Sequence[float] | None = None,
) -> np.ndarray:
    """RRW map exactly as the reference code computes it (jmlipman/RegionWiseLoss, ``RWLoss``).

    Per class ``k``: ``d = scipy.ndimage.distance_transform_edt(y_k)`` stored in float32,
    ``z = -1 * (d / max(d + 1e-15))`` in float32, then ``z[z == 0] = 1`` over the whole stack.

    This equals :func:`rrw_map` except for a class that fills the whole array: scipy then finds no
    background and measures the distance to a phantom voxel at index ``(-1, 0, ..., 0)``, i.e.
    ``d(i) = |(i_0 + 1, i_1, ..., i_n) * spacing|``, a ramp from one corner (normalised to ``[-1, 0)``),
    instead of the convention's (docs/conventions.md#region-wise-loss) ``-1`` everywhere. That is an artefact,
    reproduced only for exact-reproduction runs (e.g. 2D training on slices that are all background).
    Also slower (one scipy pass per class) and float32 rounding may differ from :func:`rrw_map` in the
    last bit. The reference uses unit spacing; a given ``spacing`` is passed as scipy's ``sampling``.
    """
    lab = validate_labels(labels, num_classes)
    sampling = None if spacing is None else validate_spacing(spacing, lab.ndim)
    out = np.empty((num_classes, *lab.shape), dtype=np.float32)
    for k in range(num_classes):
        out[k] = distance_transform_edt(lab == k, sampling=sampling)
        out[k] = -1 * (out[k] / np.max(out[k] + 1e-15))
    out[out == 0] = 1
    return out


def boundary_map(
    labels: np.ndarray,
    num_classes: int,
    spacing: Sequence[float] | None = None,
) -> np.ndarray:
    """RW-Boundary map (signed distance), Valverde & Tohka 2022 eq. 3 = Boundary loss of Kervadec et al.

    ``z_k(i) = -d_k(i)`` for ``i ∈ Ω_k`` (distance to the nearest voxel outside class ``k``) and
    ``z_k(i) = +d_k(i)`` for ``i ∉ Ω_k`` (distance to the nearest voxel of class ``k``), Euclidean with
    ``spacing``. Float32 ``(K, *spatial)``.

    Edge cases (docs/conventions.md#region-wise-loss): an absent class and a class filling the whole array give 0
    everywhere, and each
    channel depends only on its own class. The reference code (``BoundaryLoss`` in jmlipman/RegionWiseLoss)
    skips the distance computation for an absent class but still writes the map from variables left
    over from the previous loop iteration, so an absent class silently receives a copy of the preceding
    class's map (and a NameError if the very first class is absent); it also returns scipy's corner
    ramp for a class that fills the array. Neither is reproduced here.

    With three or more classes this map is NOT rectified (Valverde & Tohka 2022 Sec. 3.4): the non-true components of
    a voxel differ, and the gradient can have several negative components.
    """
    lab = validate_labels(labels, num_classes)
    sp = validate_spacing(spacing, lab.ndim)
    return signed_distance_stack(lab, num_classes, sp, inside_sign=-1.0)


def _one_hot_affine(labels: np.ndarray, num_classes: int, true_value: float) -> np.ndarray:
    """``1`` on non-true channels, ``true_value`` on the true-class channel, float32 ``(K, *spatial)``."""
    lab = validate_labels(labels, num_classes)
    out = np.ones((num_classes, *lab.shape), dtype=np.float32)
    fill = np.full((1, *lab.shape), true_value, dtype=np.float32)
    np.put_along_axis(out, _true_class_index(lab), fill, axis=0)
    return out


def ac_map(
    labels: np.ndarray,
    num_classes: int,
    spacing: Sequence[float] | None = None,
) -> np.ndarray:
    """Active Contour map ``z = 1 - y`` (Valverde & Tohka 2022 Prop. 1; AC loss without its length term).

    ``y`` is the one-hot ground truth: 0 on the true class, 1 elsewhere. ``spacing`` is validated but
    unused (the map has no distances); it is accepted so all map functions share one signature.
    """
    if spacing is not None:
        validate_spacing(spacing, np.ndim(labels))
    return _one_hot_affine(labels, num_classes, 0.0)


def cao_map(
    labels: np.ndarray,
    num_classes: int,
    spacing: Sequence[float] | None = None,
) -> np.ndarray:
    """Map of Cao et al. [25], ``z = 1 - 2y`` (Valverde & Tohka 2022 Prop. 4): -1 on the true class, +1 elsewhere.

    AC (:func:`ac_map`) is its 0-1 normalisation. ``spacing`` is validated but unused.
    """
    if spacing is not None:
        validate_spacing(spacing, np.ndim(labels))
    return _one_hot_affine(labels, num_classes, -1.0)
