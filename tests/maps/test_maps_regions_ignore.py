"""Region maps and ignore-aware maps (docs/conventions.md#regions) against scipy's EDT, computed here independently."""

from __future__ import annotations

import numpy as np
import pytest
from scipy.ndimage import distance_transform_edt

from nnunet_lossplug.maps.regions import (
    compute_with_ignore,
    region_maps,
    region_masks,
    region_rrw_own_values,
)

SPACING = (1.5, 0.7)
REGIONS = [(1, 2, 3), (2, 3), 3]  # BraTS-like nesting: whole tumour ⊃ tumour core ⊃ enhancing


def _nested_labels() -> np.ndarray:
    labels = np.zeros((24, 26), dtype=np.int16)
    labels[3:20, 4:22] = 1
    labels[6:16, 7:18] = 2
    labels[9:13, 10:14] = 3
    return labels


def _rrw_side(inside: np.ndarray) -> np.ndarray:
    """docs/conventions.md#region-wise-loss for one class: −d/max d on the class (d: EDT with spacing), 1 elsewhere;
    absent -> 1."""
    if not inside.any():
        return np.ones(inside.shape)
    depth = distance_transform_edt(inside, sampling=SPACING)
    return np.where(inside, -depth / depth[inside].max(), 1.0)


def test_region_masks_follow_nnunet_region_definition() -> None:
    labels = _nested_labels()
    masks = region_masks(labels, REGIONS)
    np.testing.assert_array_equal(masks[0], labels > 0)
    np.testing.assert_array_equal(masks[1], labels >= 2)
    np.testing.assert_array_equal(masks[2], labels == 3)


def test_region_rrw_maps_are_the_two_class_rrw_maps_of_each_region() -> None:
    labels = _nested_labels()
    maps = region_maps("rrw", labels, REGIONS, SPACING)
    assert maps.shape == (3, 2, *labels.shape)
    own = region_rrw_own_values(labels, REGIONS, SPACING)
    for r, inside in enumerate(region_masks(labels, REGIONS)):
        np.testing.assert_allclose(maps[r, 1], _rrw_side(inside), rtol=1e-6, atol=1e-7)
        np.testing.assert_allclose(maps[r, 0], _rrw_side(~inside), rtol=1e-6, atol=1e-7)
        np.testing.assert_allclose(own[r], np.where(inside, maps[r, 1], maps[r, 0]), rtol=1e-6, atol=1e-7)
        assert own[r].min() == pytest.approx(-1.0) and own[r].max() < 0


def test_ignored_voxels_count_as_outside_every_class_for_distances() -> None:
    labels = _nested_labels()
    ignore = 4
    labels[:, 20:] = ignore  # a stripe without annotation, cutting into classes 0 and 1
    annotated = labels != ignore
    maps = compute_with_ignore("rrw", labels, 4, SPACING, ignore_label=ignore)
    assert maps.shape == (4, *labels.shape)
    for k in range(4):
        expected = _rrw_side((labels == k) & annotated)
        np.testing.assert_allclose(maps[k][annotated], expected[annotated], rtol=1e-6, atol=1e-7)
    # the depth of class 1 is measured to the unannotated stripe too: smaller than without the stripe
    clean = _nested_labels()
    assert np.abs(maps[1][9, 19]) < np.abs(compute_with_ignore("rrw", clean, 4, SPACING)[1][9, 19])


def test_region_maps_with_ignore_measure_both_sides_to_the_ignored_voxels() -> None:
    labels = _nested_labels()
    labels[:, 20:] = 4
    annotated = labels != 4
    maps = region_maps("rrw", labels, REGIONS, SPACING, ignore_label=4)
    own = region_rrw_own_values(labels, REGIONS, SPACING, ignore_label=4)
    for r, inside in enumerate(region_masks(labels, REGIONS)):
        inside = inside & annotated
        outside = ~inside & annotated
        np.testing.assert_allclose(maps[r, 1][annotated], _rrw_side(inside)[annotated], rtol=1e-6, atol=1e-7)
        np.testing.assert_allclose(maps[r, 0][annotated], _rrw_side(outside)[annotated], rtol=1e-6, atol=1e-7)
        np.testing.assert_allclose(own[r][annotated], np.where(inside, maps[r, 1], maps[r, 0])[annotated],
                                   rtol=1e-6, atol=1e-7)


def test_region_boundary_and_ac_maps_are_their_two_class_maps() -> None:
    labels = _nested_labels()
    boundary = region_maps("boundary", labels, REGIONS, SPACING)
    ac = region_maps("ac", labels, REGIONS)
    for r, inside in enumerate(region_masks(labels, REGIONS)):
        np.testing.assert_array_equal(ac[r, 1], 1.0 - inside)
        np.testing.assert_array_equal(ac[r, 0], inside.astype(np.float32))
        depth_in = distance_transform_edt(inside, sampling=SPACING)
        np.testing.assert_allclose(boundary[r, 1][inside], -depth_in[inside], rtol=1e-6)
        depth_out = distance_transform_edt(~inside, sampling=SPACING)
        np.testing.assert_allclose(boundary[r, 0][~inside], -depth_out[~inside], rtol=1e-6)
