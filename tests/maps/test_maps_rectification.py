"""Rectification principle (Valverde & Tohka 2022 Sec. 3.3-3.4): exact criterion, Fig. 2 reproduction, class values."""

from __future__ import annotations

import math

import numpy as np
import pytest
from helpers.label_maps import random_labels

from nnunet_lossplug.maps import (
    gradient_sign_counts,
    max_negative_components,
    rectification_report,
    rw_logit_gradient,
    rw_map,
    simplex_grid,
    unstable_share,
)

SHAPES = [(20, 24), (6, 14, 12)]


@pytest.mark.parametrize("shape", SHAPES)
@pytest.mark.parametrize("num_classes", [3, 4])
@pytest.mark.parametrize("kind", ["rrw", "ac", "cao"])
def test_rectified_maps_are_stable(shape, num_classes, kind):
    labels = random_labels(shape, num_classes, seed=num_classes, dtype=np.int64)
    report = rectification_report(
        rw_map(labels, num_classes, kind, spacing=(2.0,) + (1.0,) * (len(shape) - 1)), labels
    )
    assert report.fraction_unstable == 0.0 and report.n_unstable == 0
    assert report.n_voxels == labels.size
    assert report.max_negative_histogram == {1: labels.size}  # exactly one negative component possible
    assert set(report.per_class) == set(range(num_classes))


@pytest.mark.parametrize("shape", SHAPES)
@pytest.mark.parametrize("num_classes", [3, 4])
def test_boundary_map_is_unstable_with_three_or_more_classes(shape, num_classes):
    labels = random_labels(shape, num_classes, seed=num_classes, dtype=np.int64)
    report = rectification_report(rw_map(labels, num_classes, "boundary"), labels)
    assert report.fraction_unstable > 0.5  # distances to the other classes differ almost everywhere
    assert all(value > 0 for value in report.per_class.values())


def test_any_two_class_map_is_stable():
    # With K = 2 at most one component can lie strictly below the voxel maximum, so no softmax can make
    # two components negative: the boundary map (and even random values) report 0.
    labels = random_labels((20, 24), 2, seed=5, dtype=np.int64)
    assert rectification_report(rw_map(labels, 2, "boundary"), labels).fraction_unstable == 0.0
    noise = np.random.default_rng(0).normal(size=(2, 20, 24))
    assert rectification_report(noise, labels).fraction_unstable == 0.0


def test_hand_computed_report_on_three_voxels():
    # labels 1 | 0 | 2 -> boundary values (hand): voxel 0: z=(1,-1,2) two below max -> unstable;
    # voxel 1: z=(-1,1,1) only the true class below the max -> stable; voxel 2: z=(1,2,-1) unstable.
    labels = np.array([[1, 0, 2]])
    z = rw_map(labels, 3, "boundary")
    np.testing.assert_array_equal(z[:, 0, :], [[1, -1, 1], [-1, 1, 2], [2, 1, -1]])
    report = rectification_report(z, labels)
    assert report.fraction_unstable == pytest.approx(2 / 3)
    assert report.per_class == {0: 0.0, 1: 1.0, 2: 1.0}
    assert report.max_negative_histogram == {1: 1, 2: 2}


def test_criterion_matches_dense_softmax_sampling():
    # Independent check of the derivation: the largest number of negative components found by sweeping a
    # fine simplex lattice equals the count of components strictly below the maximum (ties included).
    rng = np.random.default_rng(1)
    grid4 = simplex_grid(4, 48)
    grid3 = simplex_grid(3, 120)
    for _ in range(40):
        k = int(rng.integers(3, 5))
        z = rng.integers(-3, 4, size=k).astype(np.float64)
        grid = grid3 if k == 3 else grid4
        sampled = gradient_sign_counts(z, grid).max()
        assert max_negative_components(z) == sampled, z


def test_rw_logit_gradient_matches_autograd():
    torch = pytest.importorskip("torch")  # imported here: the maps package itself never uses torch
    torch.manual_seed(0)
    z = torch.tensor([0.7, -1.0, 2.5, 1.0], dtype=torch.float64)
    x = torch.randn(5, 4, dtype=torch.float64, requires_grad=True)
    (torch.softmax(x, dim=1) * z).sum().backward()
    s = torch.softmax(x, dim=1).detach().numpy()
    np.testing.assert_allclose(rw_logit_gradient(z.numpy(), s), x.grad.numpy(), rtol=1e-12, atol=1e-14)


def test_simplex_grid_counts_and_rows():
    grid = simplex_grid(3, 10)
    assert grid.shape == (math.comb(9, 2), 3)
    assert (grid > 0).all()
    np.testing.assert_allclose(grid.sum(axis=1), 1.0)
    assert len({tuple(row) for row in np.round(grid * 10).astype(int)}) == grid.shape[0]
    closed = simplex_grid(4, 6, interior=False)
    assert closed.shape == (math.comb(9, 3), 4) and (closed >= 0).all() and (closed == 0).any()


def test_fig2_boundary_voxel_has_two_negative_components_for_most_softmax_vectors():
    # Valverde & Tohka 2022 Fig. 2: a voxel of true class 3 (index 2) in a 3-class task. Labels 0 | 2 2 2 2 | 1: at
    # the second voxel the RW-Boundary values are (distance to class 1, distance to class 2, -depth)
    # = (1, 4, -1) and the RRW values are (1, 1, -1/2).
    labels = np.array([[0, 2, 2, 2, 2, 1]])
    z_boundary = rw_map(labels, 3, "boundary")[:, 0, 1]
    z_rrw = rw_map(labels, 3, "rrw")[:, 0, 1]
    np.testing.assert_array_equal(z_boundary, [1, 4, -1])
    np.testing.assert_array_equal(z_rrw, [1, 1, -0.5])

    grid = simplex_grid(3, 300)
    share = unstable_share(z_boundary, grid)
    # exact area: z_1 < z̄  <=>  s_1 (a - c) + s_2 (b - c) > a - c, a triangle of share (b - a)/(b - c)
    a, b, c = 1.0, 4.0, -1.0
    assert share == pytest.approx((b - a) / (b - c), abs=0.01)
    assert share > 0.5  # "more than half of the gradient vectors ... contained two negative components"
    # the two negative components are the true class and class 1, never class 2 (the largest value)
    signs = rw_logit_gradient(z_boundary, grid) < 0
    assert not signs[:, 1].any() and signs[:, 2].all()

    assert unstable_share(z_rrw, grid) == 0.0  # "correct sign across all softmax vectors"
    assert (gradient_sign_counts(z_rrw, grid) == 1).all()


def test_per_true_class_values_keep_rectification_but_per_channel_reading_breaks_it():
    labels = random_labels((18, 20), 3, seed=2, dtype=np.int64)
    values = np.array([1.0, 2.0, 5.0])
    ours = rw_map(labels, 3, "rrw", class_values=values)
    assert rectification_report(ours, labels).fraction_unstable == 0.0

    # the rejected reading: channel k gets c_k outside class k, so a voxel's non-true values differ
    per_channel = rw_map(labels, 3, "rrw")
    for k in range(3):
        per_channel[k][labels != k] = values[k]
    report = rectification_report(per_channel, labels)
    # voxels of class 0 and 1 see non-true values (2, 5) / (1, 5): two below the max -> unstable;
    # voxels of class 2 see (1, 2) with the true value -d/max below both: also two below the max
    assert report.fraction_unstable == 1.0
    assert report.per_class == {0: 1.0, 1: 1.0, 2: 1.0}


def test_batch_input_pools_images_and_ambiguity_is_reported():
    labels = np.stack([random_labels((12, 10), 3, seed=s, dtype=np.int64) for s in range(2)])  # B=2 != K=3
    maps = np.stack([rw_map(lab, 3, "boundary") for lab in labels])
    pooled = rectification_report(maps, labels)
    singles = [rectification_report(m, lab) for m, lab in zip(maps, labels, strict=True)]
    assert pooled.n_voxels == labels.size
    assert pooled.n_unstable == sum(r.n_unstable for r in singles)

    square_labels = np.zeros((3, 3, 3), dtype=np.int64)
    square_map = rw_map(np.zeros((3, 3), dtype=np.int64), 3, "rrw")[None].repeat(3, axis=0)
    with pytest.raises(ValueError, match="ambiguous"):
        rectification_report(square_map, square_labels)
    assert rectification_report(square_map, square_labels, batch=True).fraction_unstable == 0.0


def test_report_rejects_bad_inputs():
    labels = np.zeros((4, 4), dtype=np.int64)
    with pytest.raises(ValueError, match=r"rw_map must be \(K, \*spatial\)"):
        rectification_report(np.zeros((3, 4, 5)), labels)
    with pytest.raises(ValueError, match="NaN or inf"):
        rectification_report(np.full((3, 4, 4), np.nan), labels)
    with pytest.raises(ValueError, match=r"\[0, 2\)"):
        rectification_report(np.zeros((2, 4, 4)), labels + 2)
    with pytest.raises(ValueError, match=r"softmax_grid"):
        gradient_sign_counts(np.zeros(3), np.ones((4, 2)))
