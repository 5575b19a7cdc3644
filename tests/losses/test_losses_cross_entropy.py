"""CrossEntropyLoss, FocalLoss (γ = 2, no α) and RWWeightedCrossEntropyLoss: hand values and gradients."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

from nnunet_lossplug.losses import CrossEntropyLoss, FocalLoss, RWWeightedCrossEntropyLoss

torch.set_num_threads(1)

# softmax = class 0: (0.25, 0.6), class 1: (0.75, 0.4); voxel 0 is class 1, voxel 1 is class 0
LOGITS = torch.log(torch.tensor([[0.25, 0.6], [0.75, 0.4]], dtype=torch.float64)).reshape(1, 2, 1, 2)
LABELS = torch.tensor([1, 0]).reshape(1, 1, 1, 2)
RW_MAP = torch.tensor([[1.0, -1.0], [-0.5, 1.0]], dtype=torch.float64).reshape(1, 2, 1, 2)


def test_cross_entropy_hand_value() -> None:
    expected = (-math.log(0.75) - math.log(0.6)) / 2
    assert CrossEntropyLoss()(LOGITS, LABELS).item() == pytest.approx(expected, rel=1e-12)


def test_cross_entropy_equals_torch_for_label_maps_2d_and_3d() -> None:
    torch.manual_seed(0)
    for shape in ((3, 4, 5, 6), (2, 3, 3, 4, 2)):
        logits = torch.randn(*shape, dtype=torch.float64) * 3
        labels = torch.randint(0, shape[1], (shape[0], 1, *shape[2:]))
        expected = F.cross_entropy(logits, labels[:, 0])
        assert CrossEntropyLoss()(logits, labels).item() == pytest.approx(expected.item(), rel=1e-12)


def test_cross_entropy_accepts_soft_targets() -> None:
    soft = torch.tensor([[0.5, 0.1], [0.5, 0.9]], dtype=torch.float64).reshape(1, 2, 1, 2)
    voxel_0 = -(0.5 * math.log(0.25) + 0.5 * math.log(0.75))
    voxel_1 = -(0.1 * math.log(0.6) + 0.9 * math.log(0.4))
    expected = (voxel_0 + voxel_1) / 2
    assert CrossEntropyLoss()(LOGITS, soft).item() == pytest.approx(expected, rel=1e-12)


def test_focal_loss_hand_value_gamma_two() -> None:
    expected = (-(0.25**2) * math.log(0.75) - (0.4**2) * math.log(0.6)) / 2
    assert FocalLoss()(LOGITS, LABELS).item() == pytest.approx(expected, rel=1e-12)


def test_focal_loss_hand_value_other_gamma() -> None:
    expected = (-(0.25**3.5) * math.log(0.75) - (0.4**3.5) * math.log(0.6)) / 2
    assert FocalLoss(gamma=3.5)(LOGITS, LABELS).item() == pytest.approx(expected, rel=1e-12)
    with pytest.raises(ValueError, match="gamma"):
        FocalLoss(gamma=-1)


def test_rw_weighted_cross_entropy_hand_value() -> None:
    # weights |z| at the true class: voxel 0 (class 1) 0.5, voxel 1 (class 0) 1.0
    expected = (-0.5 * math.log(0.75) - 1.0 * math.log(0.6)) / 2
    assert RWWeightedCrossEntropyLoss()(LOGITS, LABELS, RW_MAP).item() == pytest.approx(expected, rel=1e-12)


def test_rw_weighted_cross_entropy_gradient_uses_only_the_true_class_value() -> None:
    """Valverde & Tohka 2022 Sec. 3.2: dL/dx_k = |z_t| (s_k - y_k); the non-true map values never reach the gradient."""
    torch.manual_seed(1)
    logits = torch.randn(2, 3, 4, 4, dtype=torch.float64, requires_grad=True)
    labels = torch.randint(0, 3, (2, 1, 4, 4))
    y = F.one_hot(labels[:, 0], 3).permute(0, 3, 1, 2).to(torch.float64)
    rw_map = torch.randn(2, 3, 4, 4, dtype=torch.float64)
    RWWeightedCrossEntropyLoss()(logits, labels, rw_map).backward()
    s = torch.softmax(logits.detach(), dim=1)
    true_weight = (rw_map.abs() * y).sum(dim=1, keepdim=True)
    expected = true_weight * (s - y) / (2 * 4 * 4)
    torch.testing.assert_close(logits.grad, expected, rtol=1e-12, atol=1e-15)
    # changing the map away from the true class changes nothing
    other = torch.where(y.bool(), rw_map, torch.randn_like(rw_map))
    changed = RWWeightedCrossEntropyLoss()(logits, labels, other).item()
    assert changed == pytest.approx(RWWeightedCrossEntropyLoss()(logits, labels, rw_map).item(), rel=1e-14)


@pytest.mark.parametrize(
    "loss", [CrossEntropyLoss(), FocalLoss(), FocalLoss(gamma=0.0), FocalLoss(gamma=1.0)], ids=repr
)
def test_gradcheck_target_losses(loss: torch.nn.Module) -> None:
    torch.manual_seed(2)
    logits = torch.randn(2, 3, 3, 2, dtype=torch.float64, requires_grad=True)
    labels = torch.randint(0, 3, (2, 1, 3, 2))
    assert torch.autograd.gradcheck(lambda x: loss(x, labels), (logits,))


def test_gradcheck_rw_weighted_cross_entropy_3d() -> None:
    torch.manual_seed(3)
    logits = torch.randn(1, 3, 2, 3, 2, dtype=torch.float64, requires_grad=True)
    labels = torch.randint(0, 3, (1, 1, 2, 3, 2))
    rw_map = torch.randn(1, 3, 2, 3, 2, dtype=torch.float64)
    loss = RWWeightedCrossEntropyLoss()
    assert torch.autograd.gradcheck(lambda x: loss(x, labels, rw_map), (logits,))


def test_focal_loss_down_weights_confident_voxels_relative_to_cross_entropy() -> None:
    """(1 - s_t)^2 < 1: the focal loss is below CE, most of all for well-classified voxels."""
    torch.manual_seed(4)
    logits = torch.randn(2, 3, 5, 5, dtype=torch.float64) * 4
    labels = torch.randint(0, 3, (2, 1, 5, 5))
    assert 0.0 < FocalLoss()(logits, labels).item() < CrossEntropyLoss()(logits, labels).item()
