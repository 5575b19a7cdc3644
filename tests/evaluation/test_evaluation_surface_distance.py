"""Hausdorff distance / HD95 in mm: known answers on anisotropic grids, brute force, SimpleITK, edge cases."""

from __future__ import annotations

import math

import numpy as np
import pytest
import SimpleITK as sitk  # noqa: N813
import torch
from scipy.spatial.distance import cdist

from nnunet_lossplug.evaluation.surface_distance import (
    drop_singleton_axes,
    hausdorff_distances_mm,
    image_diagonal_mm,
)

torch.set_num_threads(1)

SPACING = (2.9, 1.3, 0.7)  # deliberately different along every axis


def _boundary_brute_force(mask: np.ndarray) -> np.ndarray:
    """Voxels of ``mask`` with a face neighbour outside the mask or outside the image (loop over axes)."""
    padded = np.pad(mask, 1, constant_values=False)
    interior = np.ones_like(mask)
    for axis in range(mask.ndim):
        for step in (-1, 1):
            shifted = np.roll(padded, step, axis=axis)
            interior &= shifted[tuple(slice(1, -1) for _ in range(mask.ndim))]
    return mask & ~interior


def _brute_force_hd(a: np.ndarray, b: np.ndarray, spacing, percentile=95.0) -> tuple[float, float]:
    pa = np.argwhere(_boundary_brute_force(a)) * np.asarray(spacing)
    pb = np.argwhere(_boundary_brute_force(b)) * np.asarray(spacing)
    distances = cdist(pa, pb)
    a_to_b, b_to_a = distances.min(axis=1), distances.min(axis=0)
    hd = max(a_to_b.max(), b_to_a.max())
    hd_p = max(np.percentile(a_to_b, percentile), np.percentile(b_to_a, percentile))
    return float(hd), float(hd_p)


def _blob(shape, seed: int, threshold: float = 0.55) -> np.ndarray:
    """A random, smooth-ish non-empty mask."""
    rng = np.random.default_rng(seed)
    noise = rng.random(shape)
    from scipy.ndimage import uniform_filter

    mask = uniform_filter(noise, size=3) > threshold - 0.1
    mask[tuple(s // 2 for s in shape)] = True
    return mask


@pytest.mark.parametrize("axis", [0, 1, 2])
@pytest.mark.parametrize("k", [1, 3])
def test_box_shifted_by_k_voxels_has_hd_k_times_spacing_of_that_axis(axis: int, k: int) -> None:
    shape = (12, 14, 16)
    a = np.zeros(shape, bool)
    a[3:8, 4:10, 5:11] = True
    b = np.roll(a, k, axis=axis)
    hd, _ = hausdorff_distances_mm(b, a, SPACING)
    assert hd == pytest.approx(k * SPACING[axis], rel=1e-6)


@pytest.mark.parametrize("axis", [0, 1, 2])
def test_one_voxel_thick_plate_shifted_has_hd95_equal_to_shift(axis: int) -> None:
    # every voxel of a one-voxel-thick plate is a boundary voxel, and each is exactly k*s from the other plate
    shape = (9, 10, 11)
    a = np.zeros(shape, bool)
    index = [slice(2, 7)] * 3
    index[axis] = slice(3, 4)
    a[tuple(index)] = True
    b = np.roll(a, 2, axis=axis)
    hd, hd95 = hausdorff_distances_mm(a, b, SPACING)
    assert hd == pytest.approx(2 * SPACING[axis], rel=1e-6)
    assert hd95 == pytest.approx(2 * SPACING[axis], rel=1e-6)


@pytest.mark.parametrize("seed", [0, 1, 2, 3])
def test_matches_brute_force_boundary_distances_on_random_masks(seed: int) -> None:
    shape = (7, 9, 11)
    a = _blob(shape, seed)
    b = _blob(shape, seed + 100)
    expected_hd, expected_hd95 = _brute_force_hd(a, b, SPACING)
    hd, hd95 = hausdorff_distances_mm(a, b, SPACING)
    assert hd == pytest.approx(expected_hd, rel=1e-5)
    assert hd95 == pytest.approx(expected_hd95, rel=1e-5)


def test_is_symmetric() -> None:
    a, b = _blob((8, 8, 8), 5), _blob((8, 8, 8), 6)
    assert hausdorff_distances_mm(a, b, SPACING) == pytest.approx(hausdorff_distances_mm(b, a, SPACING))


def test_nested_objects_use_boundary_voxels_not_all_voxels() -> None:
    # A inside B: every voxel of A is in B, so a distance between voxel *sets* is 0 from A to B; between
    # boundaries it is the gap between the two surfaces. Both directions: B's corner to A's corner.
    a = np.zeros((1, 21, 21), bool)
    b = np.zeros_like(a)
    b[0, 2:19, 2:19] = True  # 17 x 17
    a[0, 8:13, 8:13] = True  # 5 x 5 in the centre, 6 voxels inside B's boundary on each side
    spacing = (10.0, 1.0, 1.0)
    hd, hd95 = hausdorff_distances_mm(a, b, spacing)
    assert hd == pytest.approx(6 * math.sqrt(2), rel=1e-6)
    assert hd95 == pytest.approx(_brute_force_hd(a[0], b[0], spacing[1:])[1], rel=1e-6)
    # every boundary voxel of A is 6 voxels from B's boundary, so even the 1st percentile is 6, not 0
    _, hd_low = hausdorff_distances_mm(a, b, spacing, percentile=1.0)
    assert hd_low >= 6.0 - 1e-6


def test_agrees_with_simpleitk_on_a_shift_in_physical_space() -> None:
    # SimpleITK's HausdorffDistanceImageFilter works on voxel sets in physical (x, y, z) space; for a pure
    # shift the set and boundary definitions agree, which also checks our (z, y, x) spacing order.
    a = np.zeros((10, 12, 14), np.uint8)
    a[2:7, 3:9, 4:10] = 1
    b = np.roll(a, 2, axis=0)  # along z, the axis with the largest spacing
    images = []
    for arr in (a, b):
        img = sitk.GetImageFromArray(arr)
        img.SetSpacing(SPACING[::-1])  # SimpleITK takes (x, y, z)
        images.append(img)
    itk_filter = sitk.HausdorffDistanceImageFilter()
    itk_filter.Execute(images[0], images[1])
    hd, _ = hausdorff_distances_mm(a.astype(bool), b.astype(bool), SPACING)
    assert hd == pytest.approx(itk_filter.GetHausdorffDistance(), rel=1e-6)
    assert hd == pytest.approx(2 * 2.9, rel=1e-6)


def test_singleton_axis_of_2d_images_is_ignored() -> None:
    # nnU-Net reads a 2D image as (1, y, x) with a placeholder spacing of 999 x the in-plane spacing
    a2 = _blob((12, 13), 7)
    b2 = _blob((12, 13), 8)
    spacing2 = (1.3, 0.7)
    expected = _brute_force_hd(a2, b2, spacing2)
    got = hausdorff_distances_mm(a2[None], b2[None], (999 * 1.3, *spacing2))
    assert got == pytest.approx(expected, rel=1e-5)


def test_drop_singleton_axes_keeps_matching_spacing() -> None:
    mask = np.zeros((1, 4, 1, 5), bool)
    squeezed, spacing = drop_singleton_axes(mask, (9.0, 2.0, 7.0, 3.0))
    assert squeezed.shape == (4, 5)
    assert spacing == (2.0, 3.0)


def test_identical_masks_have_zero_distance() -> None:
    a = _blob((6, 7, 8), 9)
    assert hausdorff_distances_mm(a, a.copy(), SPACING) == (0.0, 0.0)


def test_image_diagonal_hand_value() -> None:
    # (n - 1) * s per axis: 9*2.9, 11*1.3, 13*0.7; the singleton axis contributes 0
    expected = math.sqrt((9 * 2.9) ** 2 + (11 * 1.3) ** 2 + (13 * 0.7) ** 2)
    assert image_diagonal_mm((10, 12, 14), SPACING) == pytest.approx(expected)
    assert image_diagonal_mm((1, 5, 5), (999.0, 1.0, 2.0)) == pytest.approx(math.sqrt(16 + 64))


@pytest.mark.parametrize(
    ("a", "b", "spacing", "match"),
    [
        (np.zeros((4, 4), bool), np.ones((4, 4), bool), (1.0, 1.0), "empty"),
        (np.ones((4, 4), bool), np.ones((4, 5), bool), (1.0, 1.0), "shape"),
        (np.ones((4, 4), bool), np.ones((4, 4), bool), (1.0,), "one value per array axis"),
        (np.ones((4, 4), bool), np.ones((4, 4), bool), (1.0, 0.0), "positive"),
    ],
)
def test_bad_input_is_rejected_with_a_clear_message(a, b, spacing, match) -> None:
    with pytest.raises(ValueError, match=match):
        hausdorff_distances_mm(a, b, spacing)


@pytest.mark.parametrize("percentile", [0.0, -1.0, 100.5])
def test_percentile_outside_0_100_is_rejected(percentile: float) -> None:
    # MONAI treats percentile 0 as "no percentile" (the maximum); the wrapper refuses it instead
    with pytest.raises(ValueError, match="percentile"):
        hausdorff_distances_mm(np.ones((3, 3), bool), np.ones((3, 3), bool), (1.0, 1.0), percentile)


@pytest.mark.filterwarnings("ignore::FutureWarning")  # MONAI's own deprecated internal argument
@pytest.mark.parametrize("seed", [10, 11])
def test_equals_monai_compute_hausdorff_distance(seed: int) -> None:
    # one pass over MONAI's edge distances must give what its public HD function gives with two calls
    from monai.metrics import compute_hausdorff_distance

    a, b = _blob((6, 9, 10), seed), _blob((6, 9, 10), seed + 50)
    kwargs = {"include_background": True, "spacing": SPACING}
    expected_hd = float(compute_hausdorff_distance(a[None, None], b[None, None], **kwargs)[0, 0])
    expected_hd95 = float(compute_hausdorff_distance(a[None, None], b[None, None], percentile=95, **kwargs)[0, 0])
    hd, hd95 = hausdorff_distances_mm(a, b, SPACING)
    assert hd == pytest.approx(expected_hd, rel=1e-6)
    assert hd95 == pytest.approx(expected_hd95, rel=1e-5)


def test_single_row_and_single_voxel_images() -> None:
    a = np.zeros((1, 1, 6), bool)
    b = np.zeros_like(a)
    a[0, 0, 1] = True
    b[0, 0, 4] = True
    assert hausdorff_distances_mm(a, b, (9.0, 9.0, 0.5)) == pytest.approx((1.5, 1.5))
    one = np.ones((1, 1, 1), bool)
    assert hausdorff_distances_mm(one, one, (1.0, 2.0, 3.0)) == (0.0, 0.0)
