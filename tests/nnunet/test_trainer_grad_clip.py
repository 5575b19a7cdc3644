"""``grad_clip`` below nnU-Net's 12 is honoured by an optimiser step pre-hook, without copying ``train_step``."""

from __future__ import annotations

import copy

import pytest
import torch

from nnunet_lossplug.nnunet import GradClipError
from nnunet_lossplug.nnunet.trainer.guards import NNUNET_GRAD_CLIP, check_grad_clip, clip_before_step


def _model_and_step(declared: float | None):
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Linear(8, 16), torch.nn.ReLU(), torch.nn.Linear(16, 3))
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
    if declared is not None:
        clip_before_step(optimizer, model.parameters, declared)
    return model, optimizer


def _loss(model) -> torch.Tensor:
    x = torch.linspace(-3, 3, 64 * 8).reshape(64, 8)
    return 1e3 * model(x).pow(2).mean()  # gradients far above both norms


def test_hook_after_nnunets_clip_at_12_equals_one_clip_at_the_declared_norm():
    model, optimizer = _model_and_step(5.0)
    reference = copy.deepcopy(model)
    reference_optimizer = torch.optim.SGD(reference.parameters(), lr=0.1, momentum=0.9)
    for _ in range(3):
        # nnU-Net's train_step, as it is: backward, clip at 12, step
        optimizer.zero_grad()
        _loss(model).backward()
        norm = torch.nn.utils.clip_grad_norm_(model.parameters(), NNUNET_GRAD_CLIP)
        assert norm > NNUNET_GRAD_CLIP
        optimizer.step()
        # by hand: one clip at the declared 5
        reference_optimizer.zero_grad()
        _loss(reference).backward()
        torch.nn.utils.clip_grad_norm_(reference.parameters(), 5.0)
        reference_optimizer.step()
        for ours, theirs in zip(model.parameters(), reference.parameters()):
            torch.testing.assert_close(ours, theirs, rtol=1e-5, atol=1e-6)
    grads = torch.cat([p.grad.flatten() for p in model.parameters()])
    assert float(grads.norm()) == pytest.approx(5.0, rel=1e-4)


def test_nnunets_own_clip_needs_no_hook():
    model, optimizer = _model_and_step(None)
    assert clip_before_step(optimizer, model.parameters, NNUNET_GRAD_CLIP) is None


@pytest.mark.parametrize("declared", [20.0, 0.0, -1.0])
def test_a_norm_nnunet_cannot_honour_is_refused_in_one_line(declared):
    with pytest.raises(GradClipError, match=r"grad_clip = .*at most|honoured") as raised:
        check_grad_clip(declared, "nnUNetTrainerX")
    assert "nnUNetTrainerX" in str(raised.value) and "\n" not in str(raised.value)
