"""Checks of the rectification principle of Valverde & Tohka 2022 (Sec. 3.3-3.4, Fig. 2-3) on RW maps (numpy only).

The RW loss ``L = Σ_k s_k z_k`` (per voxel, ``s = softmax(x)``) has the logit gradient (Valverde & Tohka 2022 eq. 2)

    ``dL/dx_k = s_k (z_k - z̄)``,   ``z̄ = Σ_j s_j z_j``  (the softmax-weighted mean of the map values).

Softmax values are strictly positive, so component ``k`` is negative iff ``z_k < z̄``. A map is stable
when, for every softmax vector, only the true class has a negative component (only one softmax value is
pushed up). This module decides that exactly for whole maps (:func:`rectification_report`) and samples it
over the probability simplex for one voxel, to reproduce the paper's Fig. 2 (:func:`gradient_sign_counts`).
"""

from __future__ import annotations

import itertools
import math
from dataclasses import dataclass, field

import numpy as np

from nnunet_lossplug.maps.validation import validate_labels

__all__ = [
    "RectificationReport",
    "gradient_sign_counts",
    "max_negative_components",
    "rectification_report",
    "rw_logit_gradient",
    "simplex_grid",
    "unstable_share",
]


def max_negative_components(
    z: np.ndarray,
    axis: int = 0,
    rtol: float = 1e-6,
    atol: float = 1e-6,
) -> np.ndarray:
    """Largest number of negative logit-gradient components any softmax vector can produce, per voxel.

    Exact criterion (derived from Valverde & Tohka 2022 eq. 2): with ``M = max_k z_k`` at the voxel,

    - a component with ``z_k = M`` is never negative, because ``z̄`` is a convex combination of the
      ``z_j`` and so ``z̄ <= M``;
    - every component with ``z_k < M`` can be made negative simultaneously: concentrate the softmax on
      an argmax of ``z`` (``s -> e_argmax``, always reachable by a softmax in the limit), then
      ``z̄ -> M > z_k``.

    Hence the maximum number of negative components equals the number of components strictly below the
    voxel's maximum. A voxel is unstable (can push two softmax values up at once) iff that count >= 2.
    "Strictly below" uses the tolerance ``z_k < M - (atol + rtol |M|)`` so float32 round-off of equal
    values does not count. ``axis`` is the class axis of ``z``. Returns an int array without that axis.
    """
    values = np.asarray(z)
    top = values.max(axis=axis, keepdims=True)
    threshold = top - (atol + rtol * np.abs(top))
    return np.count_nonzero(values < threshold, axis=axis)


@dataclass(frozen=True)
class RectificationReport:
    """How far an RW map is from rectified (Valverde & Tohka 2022 Sec. 3.3-3.4), see :func:`rectification_report`.

    Attributes:
        fraction_unstable: share of voxels at which some softmax vector gives more than one negative logit
            gradient component (0 for a rectified map).
        n_voxels: voxels examined (all images of a batch together).
        n_unstable: number of those unstable voxels.
        per_class: for each class present in ``labels``, the unstable share among its voxels (true class).
        max_negative_histogram: number of voxels by the largest count of negative components a softmax
            can produce there (``{1: ..., 2: ...}``; a count of 0 means all map values are equal).
    """

    fraction_unstable: float
    n_voxels: int
    n_unstable: int
    per_class: dict[int, float] = field(hash=False)
    max_negative_histogram: dict[int, int] = field(hash=False)


def _as_class_first(rw_map: np.ndarray, labels: np.ndarray, batch: bool | None) -> np.ndarray:
    """Return ``rw_map`` with the class axis first and the remaining axes matching ``labels``."""
    single_ok = rw_map.ndim == labels.ndim + 1 and rw_map.shape[1:] == labels.shape
    batch_ok = (
        rw_map.ndim == labels.ndim + 1
        and labels.ndim >= 1
        and rw_map.shape[0] == labels.shape[0]
        and rw_map.shape[2:] == labels.shape[1:]
    )
    if batch is None:
        if single_ok and batch_ok:
            raise ValueError(
                f"ambiguous shapes: rw_map {rw_map.shape} with labels {labels.shape} reads both as one image "
                f"(K, *spatial) and as a batch (B, K, *spatial); pass batch=False or batch=True."
            )
        batch = batch_ok
    if batch:
        if not batch_ok:
            raise ValueError(
                f"batch=True expects rw_map (B, K, *spatial) and labels (B, *spatial); got rw_map "
                f"{rw_map.shape} and labels {labels.shape}."
            )
        return np.moveaxis(rw_map, 1, 0)
    if not single_ok:
        raise ValueError(
            f"rw_map must be (K, *spatial) with labels (*spatial), or (B, K, *spatial) with labels "
            f"(B, *spatial); got rw_map {rw_map.shape} and labels {labels.shape}."
        )
    return rw_map


def rectification_report(
    rw_map: np.ndarray,
    labels: np.ndarray,
    *,
    batch: bool | None = None,
    rtol: float = 1e-6,
    atol: float = 1e-6,
) -> RectificationReport:
    """Fraction of voxels whose RW-loss gradient CAN have more than one negative component.

    For the logit gradient ``dL/dx_k = s_k (z_k - Σ_j s_j z_j)`` (Valverde & Tohka 2022 eq. 2), component ``k`` is
    negative iff ``z_k`` lies below the softmax-weighted mean of the voxel's map values. Concentrating the
    softmax on the largest value makes every strictly smaller component negative, and a component equal
    to the maximum is never negative; so a voxel is unstable for some softmax vector iff at least two
    components are strictly below the voxel's maximum (:func:`max_negative_components`, tolerance
    ``atol + rtol |max|``). The criterion is exact, needs no sampling of softmax vectors, and depends only
    on the map; ``labels`` serve the per-class breakdown.

    Expected values (tests): 0 for RRW (with or without per-true-class ``class_values``), AC and Cao maps
    (all non-true components equal and above the true one); > 0 for RW-Boundary with >= 3 classes
    (Valverde & Tohka 2022 Fig. 3); 0 for ANY map with 2 classes (at most one component can be below the maximum).

    Args:
        rw_map: ``(K, *spatial)`` with ``labels`` ``(*spatial)``, or a batch ``(B, K, *spatial)`` with
            ``labels`` ``(B, *spatial)``.
        labels: true class per voxel, integers in ``[0, K)``.
        batch: force the reading of the shapes; ``None`` infers it and raises if both readings fit.
        rtol, atol: tolerance for "strictly below the maximum".
    """
    z = np.asarray(rw_map)
    lab = np.asarray(labels)
    if z.ndim < 2:
        raise ValueError(f"rw_map must have a class axis and spatial axes; got shape {z.shape}.")
    z = _as_class_first(z, lab, batch)
    num_classes = z.shape[0]
    lab = validate_labels(lab, num_classes, allowed_ndims=(lab.ndim,))
    if not np.isfinite(z).all():
        raise ValueError("rw_map contains NaN or inf values; an RW map must be finite.")
    counts = max_negative_components(z, axis=0, rtol=rtol, atol=atol)
    unstable = counts >= 2
    n_voxels = int(unstable.size)
    n_unstable = int(np.count_nonzero(unstable))
    voxels_per_class = np.bincount(lab.ravel(), minlength=num_classes)
    unstable_per_class = np.bincount(lab.ravel(), weights=unstable.ravel(), minlength=num_classes)
    per_class = {
        int(k): float(unstable_per_class[k] / voxels_per_class[k])
        for k in range(num_classes)
        if voxels_per_class[k] > 0
    }
    values, frequency = np.unique(counts, return_counts=True)
    histogram = {int(v): int(f) for v, f in zip(values, frequency, strict=True)}
    return RectificationReport(
        fraction_unstable=n_unstable / n_voxels,
        n_voxels=n_voxels,
        n_unstable=n_unstable,
        per_class=per_class,
        max_negative_histogram=histogram,
    )


def simplex_grid(num_classes: int, steps: int, interior: bool = True) -> np.ndarray:
    """Regular lattice on the probability simplex: all ``s`` with ``s_k = n_k / steps``, ``Σ n_k = steps``.

    Returns float64 ``(P, num_classes)``. ``interior=True`` keeps only points with every ``n_k >= 1``
    (softmax outputs are strictly positive), ``P = C(steps - 1, K - 1)``; otherwise
    ``P = C(steps + K - 1, K - 1)``. Used to sweep "all possible softmax vectors" as in Valverde & Tohka 2022
    Fig. 2; the share of lattice points in a region converges to its area share as ``steps`` grows.
    """
    if num_classes < 1 or steps < 1:
        raise ValueError(f"num_classes and steps must be >= 1; got num_classes={num_classes}, steps={steps}.")
    low = 1 if interior else 0
    total = steps - num_classes * low
    if total < 0:
        raise ValueError(
            f"an interior grid needs steps >= num_classes; got steps={steps}, num_classes={num_classes}."
        )
    n_points = math.comb(total + num_classes - 1, num_classes - 1)
    if n_points > 5_000_000:
        raise ValueError(f"simplex_grid would have {n_points} points; reduce steps={steps}.")
    # stars and bars: K-1 bar positions among total + K - 1 slots give the K part sizes.
    bars = np.array(
        list(itertools.combinations(range(total + num_classes - 1), num_classes - 1)), dtype=np.int64
    ).reshape(n_points, num_classes - 1)
    edges = np.concatenate(
        [np.full((n_points, 1), -1), bars, np.full((n_points, 1), total + num_classes - 1)], axis=1
    )
    parts = np.diff(edges, axis=1) - 1 + low
    return parts / float(steps)


def rw_logit_gradient(z: np.ndarray, softmax: np.ndarray) -> np.ndarray:
    """Logit gradient of the per-voxel RW loss, Valverde & Tohka 2022 eq. 2: ``g_k = s_k (z_k - Σ_j s_j z_j)``.

    ``z``: map values of one voxel ``(K,)``; ``softmax``: one or many softmax vectors ``(..., K)``.
    Returns ``(..., K)`` in float64.
    """
    zz = np.asarray(z, dtype=np.float64)
    s = np.asarray(softmax, dtype=np.float64)
    mean = s @ zz
    return s * (zz - mean[..., None])


def _check_voxel_inputs(z: np.ndarray, softmax: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    zz = np.asarray(z, dtype=np.float64)
    s = np.asarray(softmax, dtype=np.float64)
    if zz.ndim != 1 or s.ndim != 2 or s.shape[1] != zz.shape[0]:
        raise ValueError(
            f"expected z of shape (K,) and softmax_grid of shape (P, K); got z {zz.shape} and "
            f"softmax_grid {s.shape}."
        )
    if (s < 0).any() or not np.allclose(s.sum(axis=1), 1.0, atol=1e-6):
        raise ValueError("softmax_grid rows must be probability vectors (non-negative, summing to 1).")
    return zz, s


def gradient_sign_counts(z: np.ndarray, softmax_grid: np.ndarray, tol: float = 1e-9) -> np.ndarray:
    """Number of negative RW-loss gradient components for each softmax vector (Valverde & Tohka 2022 Fig. 2).

    For one voxel's map values ``z`` ``(K,)`` and softmax vectors ``softmax_grid`` ``(P, K)`` (e.g.
    :func:`simplex_grid`), returns ``(P,)`` integers: how many ``g_k = s_k (z_k - z̄)`` are negative.
    A component counts as negative when ``s_k > 0`` and ``z_k - z̄ < -tol · max(1, max|z|)``; the
    tolerance keeps exact ties (e.g. the equal non-true values of a rectified map, ``z_k = z̄`` up to
    round-off) from being counted. More than one negative component means several softmax values are
    pushed up at once: the instability of Sec. 3.4.
    """
    zz, s = _check_voxel_inputs(z, softmax_grid)
    scale = max(1.0, float(np.abs(zz).max()))
    below_mean = (zz[None, :] - (s @ zz)[:, None]) < -tol * scale
    return np.count_nonzero(below_mean & (s > 0), axis=1)


def unstable_share(z: np.ndarray, softmax_grid: np.ndarray, tol: float = 1e-9) -> float:
    """Share of the softmax vectors with more than one negative gradient component (Valverde & Tohka 2022 Fig. 2).

    For a 3-class voxel of true class 3 with RW-Boundary values ``z = (a, b, c)``, ``c < a < b``, the
    exact share over the simplex is ``(b - a) / (b - c)``; for RRW values it is 0.
    """
    return float(np.mean(gradient_sign_counts(z, softmax_grid, tol) > 1))
