"""Every shipped loss keeps its gradient through float16 at the scale its trainer's GradScaler starts with.

On a GPU nnU-Net trains under float16 autocast: the network's output is float16, the losses compute in float32,
and their gradient flows back into the network as float16, multiplied by the GradScaler's scale
(:mod:`~nnunet_lossplug.nnunet.trainer.mixed_precision`). Emulated here on a CPU at ACDC-like magnitudes: class
weights from the voxel counts of an ACDC-sized training set (6e7 voxels, background 89 %, the smallest class
1 %), a batch of two 2D patches of ACDC's 256 x 224 with the same class fractions, maps from
:mod:`nnunet_lossplug.maps`. The per-voxel gradient of every shipped loss is then of the size it has in
training (it scales with the class weights and with one over the voxels of a patch, not with the training set's
size), so the float16 gradient ``fp16(S · g) / S`` at the trainer's starting scale ``S`` must match the float32
gradient ``g`` of the same (float16-rounded) logits within 1e-3 relative L2.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
from helpers.shipped_losses import disc_labels, loss_arguments, shipped_losses

from nnunet_lossplug.losses import call_loss
from nnunet_lossplug.nnunet.trainer.mixed_precision import NNUNET_START_SCALE, grad_scaler_for, starting_grad_scale

FRACTIONS = (0.89, 0.05, 0.05, 0.01)  # background first; the smallest class 1 %
TRAINING_SET_VOXELS = 6e7
PATCH = (2, 256, 224)  # nnU-Net's ACDC 2d patch, two images
TOLERANCE = 1e-3


@pytest.fixture(scope="module")
def acdc_like():
    counts = np.asarray(FRACTIONS) * TRAINING_SET_VOXELS
    labels = disc_labels(PATCH[0], PATCH[1:], FRACTIONS[1:], seed=2)
    logits = (torch.randn((PATCH[0], len(FRACTIONS), *PATCH[1:]), generator=torch.Generator().manual_seed(2)) * 2)
    return counts, labels, logits.half()


def relative_error(loss, logits16: torch.Tensor, arguments: dict, scale: float) -> float:
    """Relative L2 error of the float16 logit gradient at GradScaler scale ``scale`` against float32."""
    reference = logits16.detach().float().requires_grad_(True)
    call_loss(loss, reference, **arguments).backward()
    low = logits16.detach().clone().requires_grad_(True)
    (call_loss(loss, low, **arguments) * scale).backward()
    return float((low.grad.float() / scale - reference.grad).norm() / reference.grad.norm())


def test_every_shipped_loss_keeps_its_float16_gradient_at_its_starting_scale(acdc_like):
    counts, labels, logits = acdc_like
    failures = []
    for case in shipped_losses("classes", counts):
        arguments = loss_arguments(case, labels, len(FRACTIONS), torch.Generator().manual_seed(0))
        scale = starting_grad_scale(case.loss)
        error = relative_error(case.loss, logits, arguments, scale)
        if not error < TOLERANCE:
            failures.append(f"{case}: {error:.2e} at 2^{np.log2(scale):.0f}")
    assert not failures, "\n".join(failures)


def test_square_weights_lose_their_gradient_at_nnunets_start_and_get_a_higher_one(acdc_like):
    counts, labels, logits = acdc_like
    case = next(c for c in shipped_losses("classes", counts) if c.trainer == "nnUNetTrainerDiceSquare")
    arguments = loss_arguments(case, labels, len(FRACTIONS), torch.Generator().manual_seed(0))
    assert relative_error(case.loss, logits, arguments, NNUNET_START_SCALE) > 1e-2  # what the raised start fixes
    scale = starting_grad_scale(case.loss)
    assert scale > NNUNET_START_SCALE
    scaler = grad_scaler_for(case.loss, torch.amp.GradScaler("cpu"), "cpu")
    assert scaler.get_scale() == scale
    uniform = next(c for c in shipped_losses("classes", counts) if c.trainer == "nnUNetTrainerDiceUniform")
    kept = torch.amp.GradScaler("cpu")
    assert grad_scaler_for(uniform.loss, kept, "cpu") is kept  # nnU-Net's own scaler where 2^16 suffices
    assert grad_scaler_for(case.loss, None, "cuda") is None  # no mixed precision (CPU training): nothing to scale
