"""Distance-based maps against brute-force distances computed independently (anisotropic, 2D and 3D).

The brute force measures, for every voxel and class, the physical Euclidean distance to every voxel on
the other side of the class boundary and takes the minimum: no EDT, no code under test.
"""

from __future__ import annotations

import numpy as np
import pytest

from nnunet_lossplug.maps import boundary_map, distance_to_boundary, rrw_map, rw_map


def brute_force_distances(labels: np.ndarray, num_classes: int, spacing) -> np.ndarray:
    """(K, *spatial): inside -> distance to nearest non-class voxel, outside -> to nearest class voxel.

    NaN where the set to measure to is empty (absent class outside, full class inside).
    """
    coords = np.stack(np.meshgrid(*[np.arange(n) for n in labels.shape], indexing="ij"), axis=-1)
    phys = coords.reshape(-1, labels.ndim) * np.asarray(spacing, dtype=np.float64)
    pairwise = np.sqrt(((phys[:, None, :] - phys[None, :, :]) ** 2).sum(-1))
    flat = labels.ravel()
    out = np.full((num_classes, flat.size), np.nan)
    for k in range(num_classes):
        in_k = flat == k
        for i in range(flat.size):
            targets = ~in_k if in_k[i] else in_k
            if targets.any():
                out[k, i] = pairwise[i, targets].min()
    return out.reshape((num_classes, *labels.shape))


def expected_rrw(labels: np.ndarray, num_classes: int, spacing) -> np.ndarray:
    dist = brute_force_distances(labels, num_classes, spacing)
    out = np.ones((num_classes, *labels.shape))
    for k in range(num_classes):
        inside = labels == k
        if inside.all():
            out[k] = -1.0  # docs/conventions.md edge case: a class filling the array is -1 everywhere
        elif inside.any():
            out[k][inside] = -dist[k][inside] / dist[k][inside].max()
    return out


def expected_signed(labels: np.ndarray, num_classes: int, spacing) -> np.ndarray:
    dist = brute_force_distances(labels, num_classes, spacing)
    out = np.zeros((num_classes, *labels.shape))
    for k in range(num_classes):
        inside = labels == k
        if inside.any() and not inside.all():
            out[k] = np.where(inside, -dist[k], dist[k])
    return out


LABELS_2D = np.array(
    [
        [0, 0, 0, 0, 0, 0, 0],
        [0, 1, 1, 1, 0, 0, 0],
        [0, 1, 1, 1, 1, 0, 0],
        [0, 1, 1, 2, 2, 2, 0],
        [0, 0, 0, 2, 2, 2, 0],
        [0, 0, 0, 0, 2, 0, 0],
    ]
)


def _labels_3d() -> np.ndarray:
    rng = np.random.default_rng(7)
    labels = np.zeros((4, 5, 6), dtype=np.int64)
    labels[1:3, 1:4, 1:5] = 1
    labels[2:4, 2:5, 3:6] = 2
    labels[0, 0, 5] = 3
    labels[rng.random(labels.shape) < 0.05] = 1
    return labels


CASES = [
    pytest.param(LABELS_2D, 4, (1.0, 1.0), id="2d-unit-absent-class"),
    pytest.param(LABELS_2D, 3, (0.7, 2.5), id="2d-anisotropic"),
    pytest.param(_labels_3d(), 4, (3.0, 1.0, 0.5), id="3d-anisotropic"),
    pytest.param(_labels_3d(), 5, (1.0, 1.0, 1.0), id="3d-unit-absent-class"),
    pytest.param(_labels_3d()[:1], 4, (3.0, 1.0, 0.5), id="3d-single-slice"),
    pytest.param(_labels_3d()[:, :, :1], 4, (3.0, 1.0, 0.5), id="3d-single-column"),
]


@pytest.mark.parametrize(("labels", "num_classes", "spacing"), CASES)
def test_rrw_matches_brute_force(labels, num_classes, spacing):
    got = rrw_map(labels, num_classes, spacing)
    assert got.dtype == np.float32
    assert got.shape == (num_classes, *labels.shape)
    np.testing.assert_allclose(got, expected_rrw(labels, num_classes, spacing), rtol=1e-6, atol=1e-6)


@pytest.mark.parametrize(("labels", "num_classes", "spacing"), CASES)
def test_boundary_map_matches_brute_force(labels, num_classes, spacing):
    got = boundary_map(labels, num_classes, spacing)
    assert got.dtype == np.float32
    np.testing.assert_allclose(got, expected_signed(labels, num_classes, spacing), rtol=1e-6, atol=1e-5)


@pytest.mark.parametrize(("labels", "num_classes", "spacing"), CASES)
def test_distance_to_boundary_is_unsigned_brute_force(labels, num_classes, spacing):
    got = distance_to_boundary(labels, num_classes, spacing)
    expected = np.abs(expected_signed(labels, num_classes, spacing))
    np.testing.assert_allclose(got, expected, rtol=1e-6, atol=1e-5)
    assert (got >= 0).all()


def test_boundary_voxel_inside_has_distance_equal_to_spacing():
    # class 1 is a single voxel; its nearest non-class voxels are one step away along either axis
    labels = np.zeros((3, 3), dtype=np.int64)
    labels[1, 1] = 1
    dist = distance_to_boundary(labels, 2, spacing=(2.0, 0.5))
    assert dist[1, 1, 1] == pytest.approx(0.5)  # no -1 shift: distance = spacing of the nearer axis
    # outside distances of class 1: (0,0) is sqrt(2^2 + 0.5^2) from the centre voxel
    assert dist[1, 0, 0] == pytest.approx(np.hypot(2.0, 0.5))
    assert dist[1, 0, 1] == pytest.approx(2.0)


def test_hand_computed_1d_row_with_spacing():
    labels = np.array([[0, 2, 2, 2, 2, 1]])
    z = rw_map(labels, 3, kind="boundary", spacing=(1.0, 2.0))
    np.testing.assert_allclose(z[0, 0], [-2, 2, 4, 6, 8, 10])
    np.testing.assert_allclose(z[1, 0], [10, 8, 6, 4, 2, -2])
    np.testing.assert_allclose(z[2, 0], [2, -2, -4, -4, -2, 2])
    rrw = rw_map(labels, 3, kind="rrw", spacing=(1.0, 2.0))
    np.testing.assert_allclose(rrw[2, 0], [1, -0.5, -1, -1, -0.5, 1])
    np.testing.assert_allclose(rrw[0, 0], [-1, 1, 1, 1, 1, 1])


def test_boundary_absent_class_is_zero_and_channels_are_independent():
    # The reference code copies the previous class's map into an absent class; here it must be 0,
    # and each present channel must equal the binary map of its own mask.
    labels = LABELS_2D.copy()
    z = boundary_map(labels, 5, spacing=(1.0, 1.5))
    assert np.all(z[3] == 0) and np.all(z[4] == 0)
    for k in range(3):
        binary = boundary_map((labels == k).astype(np.int64), 2, spacing=(1.0, 1.5))[1]
        np.testing.assert_array_equal(z[k], binary)


def test_full_class_and_empty_classes_edge_cases():
    labels = np.zeros((3, 4, 5), dtype=np.int64)
    for kind_map in (boundary_map, distance_to_boundary):
        z = kind_map(labels, 3, (2.0, 1.0, 1.0))
        assert np.all(z == 0), kind_map.__name__
    rrw = rrw_map(labels, 3)
    assert np.all(rrw[0] == -1) and np.all(rrw[1:] == 1)


def test_non_contiguous_and_fortran_inputs_give_same_map():
    labels = _labels_3d()
    expected = rrw_map(labels, 4, (3.0, 1.0, 0.5))
    np.testing.assert_array_equal(rrw_map(np.asfortranarray(labels), 4, (3.0, 1.0, 0.5)), expected)
    wide = np.repeat(labels, 2, axis=2)
    np.testing.assert_array_equal(rrw_map(wide[:, :, ::2], 4, (3.0, 1.0, 0.5)), expected)
    np.testing.assert_array_equal(
        boundary_map(labels.astype(np.float32), 4, (3.0, 1.0, 0.5)), boundary_map(labels, 4, (3.0, 1.0, 0.5))
    )
