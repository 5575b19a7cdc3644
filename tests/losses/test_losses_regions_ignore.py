"""Region (sigmoid) mode and ignore masks of the losses against the formulas of docs/conventions.md#regions, computed
here independently."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from nnunet_lossplug.losses import (
    CrossEntropyLoss,
    DeepSupervisionLoss,
    DiceLoss,
    FocalLoss,
    LossMixture,
    OneSidedHausdorffLoss,
    RegionWiseLoss,
    RWWeightedCrossEntropyLoss,
    call_loss,
)
from nnunet_lossplug.losses.regions import region_rectified_map

torch.set_num_threads(1)
SHAPE = (2, 3, 6, 5)  # B, R, H, W


def _region_case(dtype: torch.dtype = torch.float64, seed: int = 0):
    """Random logits, nested binary regions (region 0 ⊃ 1 ⊃ 2) and an RRW-like two-class map per region."""
    generator = torch.Generator().manual_seed(seed)
    logits = torch.randn(SHAPE, generator=generator, dtype=dtype) * 2
    labels = torch.randint(0, 4, (SHAPE[0], 1, *SHAPE[2:]), generator=generator)
    target = torch.cat([(labels >= r + 1) for r in range(SHAPE[1])], dim=1).to(dtype)
    depth = torch.rand(SHAPE, generator=generator, dtype=dtype) * 0.99 + 0.01  # own side's -z in (0, 1]
    own = -depth
    z_in = torch.where(target == 1, own, torch.ones_like(own))
    z_out = torch.where(target == 0, own, torch.ones_like(own))
    return logits, target, own, torch.stack((z_out, z_in), dim=2)


def test_region_rw_equals_the_two_class_softmax_rw_with_logits_0_x() -> None:
    logits, target, own, dense = _region_case()
    p = torch.sigmoid(logits)
    z_out, z_in = dense[:, :, 0], dense[:, :, 1]
    formula = ((p * z_in + (1 - p) * z_out) / 2).mean()  # docs/conventions.md#regions
    ours = RegionWiseLoss(regions=True)(logits, dense)
    rectified = RegionWiseLoss(regions=True)(logits, region_rectified_map(target, own, 1.0))
    # the two-class softmax problem of each region, built here by hand, through the softmax RW loss
    two_class = torch.cat([torch.stack((torch.zeros_like(logits[:, r]), logits[:, r]), 1) for r in range(3)])
    two_class_map = torch.cat([dense[:, r] for r in range(3)])
    softmax_rw = RegionWiseLoss()(two_class, two_class_map)
    assert ours.item() == pytest.approx(formula.item(), rel=1e-12)
    assert rectified.item() == pytest.approx(formula.item(), rel=1e-12)
    assert softmax_rw.item() == pytest.approx(formula.item(), rel=1e-12)


@pytest.mark.parametrize("rectified", [False, True])
def test_region_rw_gradient_is_negative_inside_and_positive_outside(rectified: bool) -> None:
    for seed in range(5):
        logits, target, own, dense = _region_case(seed=seed)
        logits = (logits * 3).requires_grad_(True)
        rw_map = region_rectified_map(target, own) if rectified else dense
        RegionWiseLoss(regions=True)(logits, rw_map).backward()
        grad = logits.grad
        assert bool(torch.all(grad[target == 1] < 0)) and bool(torch.all(grad[target == 0] > 0))
        # docs/conventions.md#regions: ∂L/∂x = p(1 − p)(z_in − z_out)/2/numel
        p = torch.sigmoid(logits.detach())
        expected = p * (1 - p) * (dense[:, :, 1] - dense[:, :, 0]) / 2 / logits.numel()
        torch.testing.assert_close(grad, expected, rtol=1e-10, atol=1e-15)


def test_region_cross_entropy_and_focal_are_their_binary_forms() -> None:
    logits, target, _, _ = _region_case()
    bce = F.binary_cross_entropy_with_logits(logits, target)
    assert CrossEntropyLoss(regions=True)(logits, target).item() == pytest.approx(bce.item(), rel=1e-12)
    p = torch.sigmoid(logits)
    focal = (-target * (1 - p) ** 2 * torch.log(p) - (1 - target) * p**2 * torch.log(1 - p)).mean()
    assert FocalLoss(gamma=2.0, regions=True)(logits, target).item() == pytest.approx(focal.item(), rel=1e-10)


@pytest.mark.parametrize("batch_dice", [True, False])
@pytest.mark.parametrize("masked", [False, True])
def test_region_dice_equals_nnunet_region_based_memory_efficient_soft_dice(batch_dice: bool, masked: bool) -> None:
    nnunet_dice = pytest.importorskip("nnunetv2.training.loss.dice")
    logits, target, _, _ = _region_case()
    mask = (torch.rand(SHAPE[0], 1, *SHAPE[2:], generator=torch.Generator().manual_seed(5)) > 0.3) if masked else None
    reference = nnunet_dice.MemoryEfficientSoftDiceLoss(
        apply_nonlin=torch.sigmoid, batch_dice=batch_dice, do_bg=True, smooth=1e-5, ddp=False
    )
    x_ref = logits.clone().requires_grad_(True)
    x_ours = logits.clone().requires_grad_(True)
    value_ref = reference(x_ref, target, loss_mask=mask.double() if masked else None)
    value_ours = DiceLoss(batch_dice=batch_dice, do_bg=False, smooth=1e-5, regions=True, ddp=False)(
        x_ours, target, mask=mask
    )
    value_ref.backward()
    value_ours.backward()
    assert value_ours.item() == pytest.approx(1.0 + value_ref.item(), abs=1e-6)
    torch.testing.assert_close(x_ours.grad, x_ref.grad, rtol=1e-5, atol=1e-7)


def test_region_class_weighted_dice_weights_each_region() -> None:
    logits, target, _, _ = _region_case()
    p = torch.sigmoid(logits)
    dice = 2 * (p * target).sum((2, 3)) / (p.sum((2, 3)) + target.sum((2, 3)))  # (B, R) per image
    weights = torch.tensor([0.5, 1.0, 4.0], dtype=torch.float64)
    expected = ((1 - dice) * weights).mean()
    ours = DiceLoss(batch_dice=False, class_weights=weights, regions=True)(logits, target)
    assert ours.item() == pytest.approx(expected.item(), rel=1e-12)
    with pytest.raises(ValueError, match="R=3 regions"):
        DiceLoss(class_weights=[1.0, 2.0], regions=True)(logits, target)
    one_region = DiceLoss(batch_dice=False, class_weights=[4.0], regions=True)  # a single region is allowed
    assert one_region(logits[:, 2:], target[:, 2:]).item() == pytest.approx(4 * (1 - dice[:, 2]).mean().item())


def _gradcheck(function, logits: torch.Tensor) -> None:
    assert torch.autograd.gradcheck(function, (logits.clone().requires_grad_(True),), eps=1e-6, atol=1e-7)


def test_finite_differences_in_float64() -> None:
    logits, target, own, dense = _region_case()
    mask = torch.rand(SHAPE[0], 1, *SHAPE[2:], generator=torch.Generator().manual_seed(1)) > 0.4
    rectified = region_rectified_map(target, own)
    distance = dense.abs()
    functions = [
        lambda x, m: RegionWiseLoss(regions=True)(x, dense, mask=m),
        lambda x, m: RegionWiseLoss(regions=True)(x, rectified, mask=m),
        lambda x, m: DiceLoss(batch_dice=True, regions=True)(x, target, mask=m),
        lambda x, m: CrossEntropyLoss(regions=True)(x, target, mask=m),
        lambda x, m: FocalLoss(regions=True)(x, target, mask=m),
        lambda x, m: RWWeightedCrossEntropyLoss(regions=True)(x, target, rectified, mask=m),
        lambda x, m: OneSidedHausdorffLoss(regions=True)(x, target, distance, mask=m),
    ]
    for function in functions:
        for mask_or_none in (None, mask):
            _gradcheck(lambda x, f=function, m=mask_or_none: f(x, m), logits)


def _softmax_case(seed: int = 0, ignore: int = 255):
    """Softmax logits (B, K=3), labels with an ignore value outside a centre box, a random RW map."""
    generator = torch.Generator().manual_seed(seed)
    logits = torch.randn(2, 3, 7, 6, generator=generator, dtype=torch.float64) * 2
    labels = torch.randint(0, 3, (2, 1, 7, 6), generator=generator)
    mask = torch.zeros(2, 1, 7, 6, dtype=torch.bool)
    mask[..., 1:5, 2:6] = True  # the annotated sub-volume: a box, the same in both images
    labels_with_ignore = torch.where(mask, labels, torch.full_like(labels, ignore))
    rw_map = torch.rand(2, 3, 7, 6, generator=generator, dtype=torch.float64) * 2 - 1
    return logits, labels, labels_with_ignore, mask, rw_map


def _box(tensor: torch.Tensor) -> torch.Tensor:
    return tensor[..., 1:5, 2:6]


SOFTMAX_LOSSES = {
    "rw": (RegionWiseLoss(), "map"),
    "rw_shifted": (RegionWiseLoss(shift_to_nonnegative=True), "map"),
    "dice_image": (DiceLoss(batch_dice=False), "target"),
    "dice_sa": (DiceLoss(batch_dice=True, do_bg=False, smooth=1e-5), "target"),
    "dice_squared_weighted": (DiceLoss(squared=True, class_weights=[0.2, 1.0, 3.0]), "target"),
    "ce": (CrossEntropyLoss(), "target"),
    "focal": (FocalLoss(), "target"),
    "rw_ce": (RWWeightedCrossEntropyLoss(), "both"),
    "hd": (OneSidedHausdorffLoss(), "both"),
    "mixture": (LossMixture(DiceLoss(), RegionWiseLoss(), schedule="equal"), "both"),
}


def _call(loss, kind: str, logits, labels, rw_map, mask=None):
    if kind == "map":
        return loss(logits, rw_map, mask=mask) if mask is not None else loss(logits, rw_map)
    if kind == "target":
        return loss(logits, labels, mask=mask) if mask is not None else loss(logits, labels)
    return loss(logits, labels, rw_map, mask=mask) if mask is not None else loss(logits, labels, rw_map)


@pytest.mark.parametrize("name", list(SOFTMAX_LOSSES))
def test_masked_loss_equals_the_unmasked_loss_on_the_annotated_box_and_ignores_the_rest(name: str) -> None:
    loss, kind = SOFTMAX_LOSSES[name]
    logits, labels, labels_with_ignore, mask, rw_map = _softmax_case()
    if name == "hd":
        rw_map = rw_map.abs()
    x = logits.clone().requires_grad_(True)
    masked = _call(loss, kind, x, labels_with_ignore, rw_map, mask)
    masked.backward()
    on_box = _call(loss, kind, _box(logits), _box(labels), _box(rw_map))
    assert masked.item() == pytest.approx(on_box.item(), rel=1e-12, abs=1e-15)
    assert bool(torch.all(x.grad.masked_select(~mask.expand_as(x)) == 0))  # exactly zero at ignored voxels
    assert bool(torch.any(x.grad.masked_select(mask.expand_as(x)) != 0))


def test_masked_rectified_rw_equals_dense_and_ignores_the_rest() -> None:
    from nnunet_lossplug.losses import RectifiedMap

    logits, labels, labels_with_ignore, mask, _ = _softmax_case()
    own = -torch.rand(labels.shape, dtype=torch.float64) * 0.9 - 0.1
    rectified = RectifiedMap(labels_with_ignore, own, 1.0, 3)  # ignore value in the labels: masked away
    dense = RectifiedMap(labels, own, 1.0, 3).dense(torch.float64)
    x = logits.clone().requires_grad_(True)
    value = RegionWiseLoss()(x, rectified, mask=mask)
    value.backward()
    expected = RegionWiseLoss()(_box(logits), _box(dense))
    assert value.item() == pytest.approx(expected.item(), rel=1e-12)
    assert bool(torch.all(x.grad.masked_select(~mask.expand_as(x)) == 0))


def test_masked_region_losses_zero_gradient_at_ignored_voxels_and_box_equality() -> None:
    logits, target, own, dense = _region_case()
    mask = torch.zeros(SHAPE[0], 1, *SHAPE[2:], dtype=torch.bool)
    mask[..., 1:5, 2:5] = True
    box = (..., slice(1, 5), slice(2, 5))
    losses = {
        "rw": lambda x, m, b: RegionWiseLoss(regions=True)(x, dense[..., 1:5, 2:5] if b else dense, mask=m),
        "dice": lambda x, m, b: DiceLoss(batch_dice=True, regions=True)(x, target[box] if b else target, mask=m),
        "ce": lambda x, m, b: CrossEntropyLoss(regions=True)(x, target[box] if b else target, mask=m),
    }
    for name, function in losses.items():
        x = logits.clone().requires_grad_(True)
        value = function(x, mask, False)
        value.backward()
        assert bool(torch.all(x.grad.masked_select(~mask.expand_as(x)) == 0)), name
        assert value.item() == pytest.approx(function(logits[box], None, True).item(), rel=1e-12), name


def test_an_image_without_annotation_is_left_out_of_the_mean() -> None:
    logits, labels, _, mask, rw_map = _softmax_case()
    mask[1] = False
    value = RegionWiseLoss()(logits, rw_map, mask=mask)
    expected = RegionWiseLoss()(_box(logits[:1]), _box(rw_map[:1]))
    assert value.item() == pytest.approx(expected.item(), rel=1e-12)
    nothing = torch.zeros_like(mask)
    x = logits.clone().requires_grad_(True)
    empty = CrossEntropyLoss()(x, labels, mask=nothing)
    empty.backward()
    assert empty.item() == 0.0 and bool(torch.all(x.grad == 0))


def test_call_loss_and_deep_supervision_forward_masks_and_refuse_losses_without_mask_support() -> None:
    logits, labels, labels_with_ignore, mask, rw_map = _softmax_case()

    class PlainLoss(torch.nn.Module):
        def forward(self, logits, target):
            return logits.mean()

    with pytest.raises(ValueError, match="PlainLoss cannot skip ignored voxels"):
        call_loss(PlainLoss(), logits, labels, mask=mask)
    mixture = LossMixture(CrossEntropyLoss(), RegionWiseLoss())
    criterion = DeepSupervisionLoss(mixture, weights=(1.0, 0.5), num_outputs=2)
    half = (..., slice(None, None, 2), slice(None, None, 2))
    value = criterion([logits, logits[half]], [labels_with_ignore, labels_with_ignore[half]],
                      [rw_map, rw_map[half]], masks=[mask, mask[half]])
    expected = mixture(logits, labels_with_ignore, rw_map, mask=mask) + 0.5 * mixture(
        logits[half], labels_with_ignore[half], rw_map[half], mask=mask[half])
    assert value.item() == pytest.approx(expected.item(), rel=1e-12)


def test_bad_region_inputs_get_one_clear_error() -> None:
    logits, target, _, dense = _region_case()
    with pytest.raises(ValueError, match=r"\(B, R, 2, \*spatial\)"):
        RegionWiseLoss(regions=True)(logits, dense[:, :, 0])
    with pytest.raises(ValueError, match="0 \\(outside\\) and 1 \\(inside\\)"):
        CrossEntropyLoss(regions=True)(logits, target * 2)
    with pytest.raises(ValueError, match="mask must be a"):
        DiceLoss(regions=True)(logits, target, mask=torch.ones(2, 3, 6, 5, dtype=torch.bool))
