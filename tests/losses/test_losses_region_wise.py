"""RegionWiseLoss (Valverde & Tohka 2022 eq. 1-2, rectification principle) and OneSidedHausdorffLoss (Prop. 3)."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from scipy.ndimage import distance_transform_edt

from nnunet_lossplug.losses import OneSidedHausdorffLoss, RegionWiseLoss

torch.set_num_threads(1)

# One image, two classes, two voxels. softmax = class 0: (0.25, 0.6), class 1: (0.75, 0.4).
PROBS = [[0.25, 0.6], [0.75, 0.4]]
# voxel 0 belongs to class 1, voxel 1 to class 0
LABELS = torch.tensor([1, 0]).reshape(1, 1, 1, 2)
# an RRW-like map: true class in [-1, 0), 1 elsewhere
RW_MAP = torch.tensor([[1.0, -1.0], [-0.5, 1.0]], dtype=torch.float64).reshape(1, 2, 1, 2)


def _logits(probs: list[list[float]]) -> torch.Tensor:
    return torch.log(torch.tensor(probs, dtype=torch.float64)).reshape(1, 2, 1, -1)


def test_rw_loss_is_the_mean_of_softmax_times_map() -> None:
    total = 0.25 * 1.0 + 0.6 * (-1.0) + 0.75 * (-0.5) + 0.4 * 1.0
    assert RegionWiseLoss()(_logits(PROBS), RW_MAP).item() == pytest.approx(total / 4, rel=1e-12)


def test_shifted_rw_loss_is_non_negative_with_hand_value() -> None:
    # per voxel subtract min_k z: voxel 0 (z0, z1) = (1, -0.5) -> (1.5, 0); voxel 1 (-1, 1) -> (0, 2)
    total = 0.25 * 1.5 + 0.6 * 0.0 + 0.75 * 0.0 + 0.4 * 2.0
    loss = RegionWiseLoss(shift_to_nonnegative=True)(_logits(PROBS), RW_MAP)
    assert loss.item() == pytest.approx(total / 4, rel=1e-12)


def test_rw_gradient_equals_eq2() -> None:
    torch.manual_seed(0)
    logits = torch.randn(2, 3, 4, 5, dtype=torch.float64, requires_grad=True)
    rw_map = torch.randn(2, 3, 4, 5, dtype=torch.float64)
    RegionWiseLoss()(logits, rw_map).backward()
    s = torch.softmax(logits.detach(), dim=1)
    expected = s * (rw_map - (s * rw_map).sum(dim=1, keepdim=True)) / rw_map.numel()
    torch.testing.assert_close(logits.grad, expected, rtol=1e-12, atol=1e-15)


def test_shift_to_nonnegative_keeps_the_gradient_and_the_sign() -> None:
    torch.manual_seed(1)
    logits = torch.randn(2, 4, 3, 3, 2, dtype=torch.float64) * 3
    rw_map = torch.randn(2, 4, 3, 3, 2, dtype=torch.float64) * 10  # unbounded like RW-Boundary maps
    gradients, values = [], []
    for shift in (False, True):
        x = logits.clone().requires_grad_(True)
        value = RegionWiseLoss(shift_to_nonnegative=shift)(x, rw_map)
        value.backward()
        gradients.append(x.grad)
        values.append(value.item())
    torch.testing.assert_close(gradients[0], gradients[1], rtol=1e-10, atol=1e-15)
    assert values[1] >= 0.0
    num_classes = rw_map.shape[1]
    assert values[1] == pytest.approx(values[0] - rw_map.amin(dim=1).mean().item() / num_classes, rel=1e-12)


def test_rw_loss_gradcheck_2d_and_3d() -> None:
    torch.manual_seed(2)
    for shape in ((2, 3, 3, 2), (1, 2, 2, 2, 3)):
        logits = torch.randn(*shape, dtype=torch.float64, requires_grad=True)
        rw_map = torch.randn(*shape, dtype=torch.float64)
        for loss in (RegionWiseLoss(), RegionWiseLoss(shift_to_nonnegative=True)):
            assert torch.autograd.gradcheck(lambda x, loss=loss, rw_map=rw_map: loss(x, rw_map), (logits,))


def _negative_components_per_voxel(logits: torch.Tensor, rw_map: torch.Tensor) -> torch.Tensor:
    logits = logits.clone().requires_grad_(True)
    RegionWiseLoss()(logits, rw_map).backward()
    return (logits.grad < 0).sum(dim=1)


def test_rrw_like_maps_give_exactly_one_negative_gradient_component_per_voxel() -> None:
    """Rectification principle (Sec. 3.3-3.4): equal non-true components -> one negative component."""
    torch.manual_seed(3)
    labels = torch.randint(0, 4, (3, 1, 6, 7))
    true_class = torch.zeros(3, 4, 6, 7, dtype=torch.bool).scatter_(1, labels, True)
    true_values = -(torch.rand(3, 4, 6, 7, dtype=torch.float64) * 0.999 + 0.001)  # in [-1, 0)
    rw_map = torch.where(true_class, true_values, torch.ones_like(true_values))
    for _ in range(5):
        logits = torch.randn(3, 4, 6, 7, dtype=torch.float64) * 3
        x = logits.clone().requires_grad_(True)
        RegionWiseLoss()(x, rw_map).backward()
        negative = x.grad < 0
        assert bool(torch.all(negative.sum(dim=1) == 1))
        assert bool(torch.all(negative == true_class))  # and it is the true class


def _signed_distance_maps(labels: np.ndarray, num_classes: int) -> np.ndarray:
    """RW-Boundary maps (Valverde & Tohka 2022 eq. 3) computed here with scipy: -d inside class k, +d outside."""
    maps = []
    for k in range(num_classes):
        inside = labels == k
        maps.append(np.where(inside, -distance_transform_edt(inside), distance_transform_edt(~inside)))
    return np.stack(maps)


def test_rw_boundary_maps_with_three_classes_violate_the_principle() -> None:
    """docs/conventions.md#region-wise-loss: for RW-Boundary maps with K >= 3 some voxels get more than one negative
    component."""
    labels = np.zeros((10, 10), dtype=np.int64)
    labels[2:6, 1:5] = 1
    labels[3:8, 6:9] = 2
    rw_map = torch.from_numpy(_signed_distance_maps(labels, 3)).unsqueeze(0)
    torch.manual_seed(4)
    logits = torch.randn(1, 3, 10, 10, dtype=torch.float64)
    counts = _negative_components_per_voxel(logits, rw_map)
    assert bool(torch.any(counts > 1))
    # the same logits with the rectified map of the same labels: exactly one everywhere
    inside = torch.from_numpy(np.stack([labels == k for k in range(3)])).unsqueeze(0)
    depth = rw_map.clamp(max=0).abs()
    rrw = torch.where(inside, -depth / depth.amax(dim=(2, 3), keepdim=True), torch.ones_like(depth))
    assert bool(torch.all(_negative_components_per_voxel(logits, rrw) == 1))


# ---- one-sided Hausdorff loss ----

DISTANCES = torch.tensor([[2.0, 0.0], [1.0, 3.0]], dtype=torch.float64).reshape(1, 2, 1, 2)


@pytest.mark.parametrize(("alpha", "powered"), [(2.0, [4.0, 0.0, 1.0, 9.0]), (1.0, [2.0, 0.0, 1.0, 3.0])])
def test_hausdorff_loss_matches_hand_computation(alpha: float, powered: list[float]) -> None:
    # (s - y)^2: class 0 (0.25 - 0)^2, (0.6 - 1)^2; class 1 (0.75 - 1)^2, (0.4 - 0)^2
    squared_errors = [0.0625, 0.16, 0.0625, 0.16]
    expected = sum(e * d for e, d in zip(squared_errors, powered, strict=True)) / 4
    loss = OneSidedHausdorffLoss(alpha=alpha)(_logits(PROBS), LABELS, DISTANCES)
    assert loss.item() == pytest.approx(expected, rel=1e-12)


def test_hausdorff_loss_default_alpha_is_two() -> None:
    assert OneSidedHausdorffLoss().alpha == 2.0


def test_hausdorff_loss_gradcheck() -> None:
    torch.manual_seed(5)
    logits = torch.randn(2, 3, 3, 3, dtype=torch.float64, requires_grad=True)
    labels = torch.randint(0, 3, (2, 1, 3, 3))
    distances = torch.rand(2, 3, 3, 3, dtype=torch.float64) * 4
    loss = OneSidedHausdorffLoss()
    assert torch.autograd.gradcheck(lambda x: loss(x, labels, distances), (logits,))


def test_hausdorff_loss_refuses_signed_distance_maps() -> None:
    with pytest.raises(ValueError, match="non-negative"):
        OneSidedHausdorffLoss()(_logits(PROBS), LABELS, -DISTANCES)
    with pytest.raises(ValueError, match="alpha"):
        OneSidedHausdorffLoss(alpha=-1.0)
