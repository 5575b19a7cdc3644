"""RW map properties, AC/Cao values, class emphasis, reference reproduction and input errors."""

from __future__ import annotations

import numpy as np
import pytest
from helpers.label_maps import random_labels
from scipy.ndimage import distance_transform_edt

from nnunet_lossplug.maps import available_map_kinds, rw_map


def reference_rrw(labels: np.ndarray, num_classes: int) -> np.ndarray:
    """The reference code's recipe, written out with scipy (jmlipman/RegionWiseLoss, RWLoss.forward)."""
    one_hot = np.stack([(labels == k).astype(np.float32) for k in range(num_classes)])[None]
    rrwmap = np.zeros_like(one_hot)
    for b in range(rrwmap.shape[0]):
        for c in range(rrwmap.shape[1]):
            rrwmap[b, c] = distance_transform_edt(one_hot[b, c])
            rrwmap[b, c] = -1 * (rrwmap[b, c] / (np.max(rrwmap[b, c] + 1e-15)))
    rrwmap[rrwmap == 0] = 1
    return rrwmap[0]


@pytest.mark.parametrize(
    ("shape", "spacing"),
    [((24, 20), (1.0, 1.0)), ((24, 20), (0.6, 1.7)), ((6, 16, 14), (4.0, 1.2, 1.2))],
)
@pytest.mark.parametrize("num_classes", [2, 4])
def test_rrw_value_range_and_extremes(shape, spacing, num_classes):
    labels = random_labels(shape, num_classes, seed=sum(shape) + num_classes)
    z = rw_map(labels, num_classes, "rrw", spacing=spacing)
    assert z.dtype == np.float32 and z.shape == (num_classes, *shape)
    for k in range(num_classes):
        inside = labels == k
        assert inside.any()
        assert np.all(z[k][~inside] == 1.0)
        assert np.all(z[k][inside] < 0) and np.all(z[k][inside] >= -1)
        assert z[k][inside].min() == -1.0  # reached at the deepest voxel of every present class


def test_rrw_absent_and_full_classes():
    labels = np.zeros((5, 6), dtype=np.int64)
    labels[2:4, 2:5] = 1
    z = rw_map(labels, 4, "rrw")
    assert np.all(z[2] == 1) and np.all(z[3] == 1)
    full = rw_map(np.full((3, 5, 4), 2), 3, "rrw", spacing=(5.0, 1.0, 1.0))
    assert np.all(full[2] == -1.0)  # docs/conventions.md: no corner ramp
    assert np.all(full[:2] == 1.0)


def test_ac_and_cao_values():
    labels = np.array([[0, 1, 2], [2, 2, 0]])
    one_hot = np.stack([(labels == k) for k in range(3)]).astype(np.float32)
    np.testing.assert_array_equal(rw_map(labels, 3, "ac"), 1 - one_hot)
    np.testing.assert_array_equal(rw_map(labels, 3, "cao"), 1 - 2 * one_hot)
    # AC is the 0-1 normalisation of Cao's map (Valverde & Tohka 2022 Sec. 3.2)
    cao = rw_map(labels, 3, "cao")
    np.testing.assert_array_equal((cao + 1) / 2, rw_map(labels, 3, "ac"))


@pytest.mark.parametrize("shape", [(20, 18), (5, 12, 11)])
def test_rrw_reference_reproduces_scipy_recipe_exactly(shape):
    labels = random_labels(shape, 4, seed=3)
    labels[labels == 3] = 1  # class 3 absent: reference gives all ones
    got = rw_map(labels, 4, "rrw_reference")
    np.testing.assert_array_equal(got, reference_rrw(labels, 4))
    # away from the full-class artefact it agrees with the map of docs/conventions.md up to float32 rounding
    np.testing.assert_allclose(got, rw_map(labels, 4, "rrw"), rtol=1e-6, atol=1e-6)


def test_rrw_reference_reproduces_corner_ramp_on_full_class():
    labels = np.zeros((4, 5), dtype=np.int64)  # an all-background 2D slice
    got = rw_map(labels, 3, "rrw_reference")
    np.testing.assert_array_equal(got, reference_rrw(labels, 3))
    # the artefact: scipy measures to a phantom voxel at index (-1, 0), a ramp from one corner
    rows, cols = np.indices(labels.shape)
    ramp = np.sqrt((rows + 1) ** 2 + cols**2)
    np.testing.assert_allclose(got[0], -ramp / ramp.max(), rtol=1e-6)
    assert np.all(rw_map(labels, 3, "rrw")[0] == -1.0)


def test_class_values_apply_per_true_class():
    labels = random_labels((16, 15), 3, seed=11)
    values = (0.5, 2.0, 4.0)
    z = rw_map(labels, 3, "rrw", class_values=values)
    plain = rw_map(labels, 3, "rrw")
    for k in range(3):
        inside = labels == k
        np.testing.assert_array_equal(z[k][inside], plain[k][inside])  # true-class values unchanged
        for t in range(3):
            if t != k:
                # at voxels of true class t, the other channels hold c_t
                assert np.all(z[k][labels == t] == np.float32(values[t]))


def test_class_values_scale_the_loss_of_emphasised_class():
    # uniform softmax on a voxel of class t: loss = (sum_k z_k) / K grows with c_t
    labels = np.array([[0, 0, 1, 2, 2, 2]])
    s = np.full(3, 1 / 3)
    base = np.einsum("k,khw->hw", s, rw_map(labels, 3, "rrw"))
    emph = np.einsum("k,khw->hw", s, rw_map(labels, 3, "rrw", class_values=(1.0, 1.0, 3.0)))
    is_2 = labels == 2
    np.testing.assert_allclose(emph[~is_2], base[~is_2])
    np.testing.assert_allclose(emph[is_2] - base[is_2], 2 * (3.0 - 1.0) / 3, rtol=1e-6)


@pytest.mark.parametrize(
    ("labels", "kwargs", "match"),
    [
        (np.array([[0, -1], [1, 1]]), {}, r"-1.*background"),
        (np.array([[0, 3], [1, 1]]), {}, r"\[0, 3\).*\[3\]"),
        (np.array([[0.0, 0.5], [1.0, 1.0]]), {}, r"integer-valued.*0\.5"),
        (np.array([[0, np.nan], [1, 1]]), {}, r"finite"),
        (np.zeros((2, 2, 2, 2), dtype=int), {}, r"2 or 3 dimensions.*\(2, 2, 2, 2\)"),
        (np.zeros(5, dtype=int), {}, r"2 or 3 dimensions"),
        (np.array([["a", "b"]]), {}, r"dtype"),
        (np.zeros((2, 3), dtype=int), {"spacing": (1.0, 1.0, 1.0)}, r"expected 2 values"),
        (np.zeros((2, 3), dtype=int), {"spacing": (1.0, 0.0)}, r"> 0"),
        (np.zeros((2, 3), dtype=int), {"kind": "bondary"}, r"unknown map kind 'bondary'.*'boundary'"),
        (np.zeros((2, 3), dtype=int), {"class_values": (1.0, 2.0)}, r"expected shape \(3,\)"),
        (np.zeros((2, 3), dtype=int), {"class_values": (1.0, 0.0, 2.0)}, r"> 0"),
        (np.zeros((2, 3), dtype=int), {"kind": "boundary", "class_values": (1, 1, 1)},
         r"'boundary'.*boundary_map.*cannot be called.*class_values"),
        (np.zeros((2, 3), dtype=int), {"kind": "rrw_reference", "class_values": (1, 1, 1)}, r"cannot be called"),
    ],
)
def test_bad_input_raises_clear_error(labels, kwargs, match):
    with pytest.raises(ValueError, match=match):
        rw_map(labels, 3, **kwargs)


@pytest.mark.parametrize("kind", available_map_kinds())
def test_every_kind_validates_num_classes(kind):
    with pytest.raises(ValueError, match="num_classes"):
        rw_map(np.zeros((2, 2), dtype=int), 0, kind)


def test_bool_and_small_dtypes_accepted():
    labels = np.zeros((4, 4), dtype=bool)
    labels[1:3, 1:3] = True
    z_bool = rw_map(labels, 2, "rrw")
    np.testing.assert_array_equal(z_bool, rw_map(labels.astype(np.int8), 2, "rrw"))
    # many classes use a wider label dtype internally (uint16 for K >= 255)
    many = np.arange(16 * 20).reshape(16, 20) % 300
    z = rw_map(many, 300, "rrw")
    assert z.shape == (300, 16, 20)
    assert np.all(z[np.unique(many)].min(axis=(1, 2)) == -1.0)
