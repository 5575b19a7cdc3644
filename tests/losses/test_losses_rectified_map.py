"""The O(N) form of rectified maps: same value and gradient as the K-channel form, in float64.

The K-channel reference is built here by hand (``torch.where`` on a one-hot made in the test), not with
``RectifiedMap.dense``, and the RW loss of the reference is the paper's formula written out:
``mean_{b,k,i}(softmax(x) * z)`` (Valverde & Tohka 2022 eq. 1).
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

from nnunet_lossplug.losses import (
    DeepSupervisionLoss,
    DiceLoss,
    LossMixture,
    OneSidedHausdorffLoss,
    RectifiedMap,
    RegionWiseLoss,
    RWWeightedCrossEntropyLoss,
    call_loss,
)
from nnunet_lossplug.maps import rrw_map, rrw_true_class_values

B, K = 2, 5
SHAPE = (6, 7)


def _example(seed: int = 0, scalar_other: bool = False):
    gen = torch.Generator().manual_seed(seed)
    labels = torch.randint(0, K, (B, 1, *SHAPE), generator=gen)
    true_value = -torch.rand((B, 1, *SHAPE), generator=gen, dtype=torch.float64)
    emphasis = 0.5 + torch.rand(K, generator=gen, dtype=torch.float64)
    other = 1.0 if scalar_other else emphasis[labels]
    return labels, RectifiedMap(labels, true_value, other, K)


def _dense_by_hand(labels: torch.Tensor, rect: RectifiedMap) -> torch.Tensor:
    one_hot = torch.nn.functional.one_hot(labels[:, 0], K).movedim(-1, 1).bool()
    true_value = rect.true_value.expand(B, K, *SHAPE)
    other = rect.other_value
    other = other.expand(B, K, *SHAPE) if isinstance(other, torch.Tensor) else torch.full_like(true_value, other)
    return torch.where(one_hot, true_value, other)


@pytest.mark.parametrize("scalar_other", [False, True])
@pytest.mark.parametrize(
    "loss",
    [RegionWiseLoss(), RegionWiseLoss(shift_to_nonnegative=True), RWWeightedCrossEntropyLoss(),
     LossMixture(DiceLoss(), RegionWiseLoss(), schedule="gradual")],
    ids=["rw", "rw_shifted", "rw_weighted_ce", "mixture"],
)
def test_rectified_form_has_the_dense_value_and_gradient(loss, scalar_other):
    labels, rect = _example(1, scalar_other)
    dense = _dense_by_hand(labels, rect)
    logits = torch.randn((B, K, *SHAPE), dtype=torch.float64, generator=torch.Generator().manual_seed(2))
    x1 = logits.clone().requires_grad_(True)
    x2 = logits.clone().requires_grad_(True)
    compact = call_loss(loss, x1, labels, rect)
    reference = call_loss(loss, x2, labels, dense)
    (g1,) = torch.autograd.grad(compact, x1)
    (g2,) = torch.autograd.grad(reference, x2)
    assert float(compact.detach()) == pytest.approx(float(reference.detach()), rel=1e-12, abs=1e-15)
    torch.testing.assert_close(g1, g2, rtol=1e-10, atol=1e-15)


def test_rectified_rw_loss_is_the_paper_formula_by_hand():
    labels, rect = _example(3)
    logits = torch.randn((B, K, *SHAPE), dtype=torch.float64)
    expected = (torch.softmax(logits, 1) * _dense_by_hand(labels, rect)).mean()
    assert float(RegionWiseLoss()(logits, rect)) == pytest.approx(float(expected), rel=1e-12)


def test_rectified_rw_loss_finite_differences():
    labels, rect = _example(4)
    logits = torch.randn((1, K, 3, 3), dtype=torch.float64, requires_grad=True)
    small = RectifiedMap(labels[:1, :, :3, :3], rect.true_value[:1, :, :3, :3], rect.other_value[:1, :, :3, :3], K)
    assert torch.autograd.gradcheck(lambda x: RegionWiseLoss()(x, small), (logits,))
    assert torch.autograd.gradcheck(lambda x: RWWeightedCrossEntropyLoss()(x, small.labels, small), (logits,))


def test_deep_supervision_passes_rectified_maps_per_level():
    labels, rect = _example(5)
    low = labels[:, :, ::2, ::2]
    rect_low = RectifiedMap(low, rect.true_value[:, :, ::2, ::2], rect.other_value[:, :, ::2, ::2], K)
    outputs = [torch.randn((B, K, *SHAPE), dtype=torch.float64), torch.randn((B, K, 3, 4), dtype=torch.float64)]
    loss = DeepSupervisionLoss(RegionWiseLoss(), (1.0, 0.5), 2)
    compact = loss(outputs, [labels, low], [rect, rect_low])
    dense = loss(outputs, [labels, low], [_dense_by_hand(labels, rect), rect_low.dense(torch.float64)])
    assert float(compact) == pytest.approx(float(dense), rel=1e-12)


def test_losses_without_the_compact_form_receive_the_dense_map():
    labels, rect = _example(6)
    rect = RectifiedMap(labels, rect.true_value.abs(), rect.other_value, K)  # a distance-like, non-negative map
    logits = torch.randn((B, K, *SHAPE), dtype=torch.float64)
    assert not getattr(OneSidedHausdorffLoss, "accepts_rectified", False)
    value = call_loss(OneSidedHausdorffLoss(), logits, labels, rect)
    assert float(value) == pytest.approx(float(OneSidedHausdorffLoss()(logits, labels, _dense_by_hand(labels, rect))))


def test_shape_mismatch_names_both_shapes():
    labels, rect = _example(7)
    with pytest.raises(ValueError, match=r"\(2, 5, 6, 7\).*\(2, 5, 3, 3\)"):
        RegionWiseLoss()(torch.randn(B, K, 3, 3), rect)


def test_rectified_form_needs_no_k_channel_tensor():
    """Autograd saves O(N) tensors for the compact form: peak extra memory is independent of K."""
    def saved_bytes(num_classes: int) -> int:
        labels = torch.randint(0, num_classes, (1, 1, 32, 32))
        rect = RectifiedMap(labels, -torch.rand(1, 1, 32, 32), 1.0, num_classes)
        logits = torch.randn(1, num_classes, 32, 32, requires_grad=True)
        total = 0

        def pack(tensor):
            nonlocal total
            if tensor.data_ptr() != logits.data_ptr():
                total += tensor.numel() * tensor.element_size()
            return tensor

        with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
            RegionWiseLoss()(logits, rect)
        return total

    assert saved_bytes(100) == saved_bytes(4)


def test_rrw_true_class_values_is_the_true_channel_of_the_rrw_map():
    rng = np.random.default_rng(0)
    for shape, spacing in (((9, 11), (1.0, 2.5)), ((5, 8, 7), (3.0, 1.0, 1.2))):
        labels = np.zeros(shape, dtype=np.int64)
        labels[(slice(1, -1),) * len(shape)] = rng.integers(0, 4, size=tuple(s - 2 for s in shape))
        expected = np.take_along_axis(rrw_map(labels, 5, spacing=spacing), labels[None], axis=0)[0]
        np.testing.assert_array_equal(rrw_true_class_values(labels, 5, spacing), expected)
    full = np.full((4, 4), 2)
    np.testing.assert_array_equal(rrw_true_class_values(full, 3), -np.ones((4, 4), dtype=np.float32))
