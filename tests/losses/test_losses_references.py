"""The losses against maintained implementations of the same quantity: nnU-Net v2 and MONAI.

nnU-Net and MONAI are imported here only (never by the library). Both accumulate in float32, so the
comparisons use float32-level tolerances; a different formula would differ by orders of magnitude more.
"""

from __future__ import annotations

import pytest
import torch

from nnunet_lossplug.losses import DiceLoss, FocalLoss

torch.set_num_threads(1)


@pytest.mark.parametrize("do_bg", [True, False])
@pytest.mark.parametrize("smooth", [0.0, 1e-5, 1.0])
def test_sa_dice_equals_nnunet_memory_efficient_soft_dice(do_bg: bool, smooth: float) -> None:
    """nnU-Net returns -mean(D) on softmax probabilities; ours returns 1 - mean(D) on logits."""
    nnunet_dice = pytest.importorskip("nnunetv2.training.loss.dice")
    torch.manual_seed(3)
    logits = torch.randn(3, 4, 6, 5, dtype=torch.float64) * 2
    labels = torch.randint(0, 3, (3, 1, 6, 5))  # class 3 absent from the whole batch
    labels[0] = 0  # and image 0 is background only
    reference = nnunet_dice.MemoryEfficientSoftDiceLoss(
        apply_nonlin=lambda x: torch.softmax(x, 1), batch_dice=True, do_bg=do_bg, smooth=smooth, ddp=False
    )
    ours = DiceLoss(batch_dice=True, do_bg=do_bg, smooth=smooth, ddp=False)
    x_ref = logits.clone().requires_grad_(True)
    x_ours = logits.clone().requires_grad_(True)
    value_ref = reference(x_ref, labels)
    value_ours = ours(x_ours, labels)
    value_ref.backward()
    value_ours.backward()
    # nnU-Net accumulates its sums in float32 (dtype=torch.float32), hence float32-level tolerances
    assert value_ours.item() == pytest.approx(1.0 + value_ref.item(), abs=1e-6)
    torch.testing.assert_close(x_ours.grad, x_ref.grad, rtol=1e-5, atol=1e-7)


def test_per_image_dice_equals_nnunet_with_batch_dice_false() -> None:
    nnunet_dice = pytest.importorskip("nnunetv2.training.loss.dice")
    torch.manual_seed(4)
    logits = torch.randn(2, 3, 2, 4, 3, dtype=torch.float64)
    labels = torch.randint(0, 3, (2, 1, 2, 4, 3))
    reference = nnunet_dice.MemoryEfficientSoftDiceLoss(
        apply_nonlin=lambda x: torch.softmax(x, 1), batch_dice=False, do_bg=False, smooth=1e-5, ddp=False
    )
    value = DiceLoss(batch_dice=False, do_bg=False, smooth=1e-5)(logits, labels)
    assert value.item() == pytest.approx(1.0 + reference(logits, labels).item(), abs=1e-6)


@pytest.mark.parametrize("batch", [False, True])
def test_squared_dice_equals_monai_squared_pred(batch: bool) -> None:
    monai_losses = pytest.importorskip("monai.losses")
    torch.manual_seed(5)
    logits = torch.randn(2, 3, 5, 4, dtype=torch.float64)
    labels = torch.randint(0, 3, (2, 1, 5, 4))
    reference = monai_losses.DiceLoss(
        softmax=True, to_onehot_y=True, squared_pred=True, batch=batch, smooth_nr=0.0, smooth_dr=0.0
    )
    ours = DiceLoss(batch_dice=batch, squared=True, smooth=0.0)
    # MONAI builds its one-hot target in float32, hence a float32-level tolerance
    assert ours(logits, labels).item() == pytest.approx(reference(logits, labels).item(), rel=1e-6)


@pytest.mark.parametrize("gamma", [0.0, 2.0])
def test_focal_loss_equals_monai_softmax_focal_loss_times_k(gamma: float) -> None:
    """MONAI averages over classes as well as voxels; ours sums over classes (Valverde & Tohka's (2022) reference)."""
    monai_losses = pytest.importorskip("monai.losses")
    torch.manual_seed(7)
    num_classes = 3
    logits = torch.randn(2, num_classes, 4, 3, 2, dtype=torch.float64) * 2
    labels = torch.randint(0, num_classes, (2, 1, 4, 3, 2))
    reference = monai_losses.FocalLoss(use_softmax=True, to_onehot_y=True, gamma=gamma, reduction="mean")
    ours = FocalLoss(gamma=gamma)
    expected = num_classes * reference(logits, labels).item()
    assert ours(logits, labels).item() == pytest.approx(expected, rel=1e-6)
