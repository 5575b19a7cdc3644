"""The scale nnU-Net's GradScaler starts at, raised for losses whose gradients float16 would flush to zero.

On a GPU nnU-Net trains under float16 autocast with ``GradScaler("cuda")``, which starts at ``2^16`` and doubles
only after 2000 steps without overflow. The losses compute in float32, but their gradient flows back into the
network as float16 (the network's output is float16), scaled by the GradScaler's current scale. Float16 keeps
full precision only from about 6.1e-5 on (its smallest normal number) and flushes to zero below about 6e-8.

The multi-class Dice of Shen et al. 2018 with square weights ``W_q = N / (L·|R_l|² + 1)`` (eq. 5) has weights of
about 1e-9 to 1e-5 on ACDC-sized training sets (``N`` ≈ 6e7 voxels): its value is about 1e-4 and its logit
gradients about 1e-9, so at ``2^16`` most of them fall below float16's range (the gradient that reaches the
network is off by several per cent). Unweighted Dice (``w = 1``) keeps its gradients within 1e-3 at ``2^16``,
and the weighted loss is a sum of such terms, each multiplied by its class weight. :func:`starting_grad_scale`
therefore starts the GradScaler at ``2^16 / w_max`` (rounded up to a power of two), ``w_max`` the largest class
weight of the loss when it is below 1: the dominant class's gradient then reaches float16 at the magnitude
unweighted Dice has at ``2^16``. Losses without weights below 1 keep nnU-Net's ``2^16``.

Why the GradScaler's starting scale and not a constant factor on the loss: the GradScaler divides the gradients
by its scale before clipping and before the optimiser step (nnU-Net's ``train_step``: ``unscale_``, then
``clip_grad_norm_(…, 12)``, then ``step``), so the float32 training is exactly unchanged: same clipping, same
optimiser dynamics, same logged loss. A constant factor ``c`` on the loss would change all three: the clipping
norm of 12 would act on ``c`` times the gradient, SGD's steps would grow by ``c`` (it is not scale-invariant),
and even Adam, invariant to a gradient scale in exact arithmetic, is not here: its ``eps`` (1e-8) is of the order
of these gradients' second-moment square root, so ``c`` would change its steps too; and ``train_loss`` in the log
would be ``c`` times the paper's value. If the raised start overflows in some step, the GradScaler skips that
step and halves its scale, as it always does; a checkpoint restores the scale it saved.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import torch
from torch import Tensor, nn

__all__ = ["NNUNET_START_SCALE", "grad_scaler_for", "starting_grad_scale"]

#: the scale ``torch.amp.GradScaler`` (nnU-Net's) starts at
NNUNET_START_SCALE = 2.0**16


def starting_grad_scale(criterion: nn.Module) -> float:
    """``2^16``, or ``2^16 · 2^⌈log2(1 / w_max)⌉`` for a loss whose largest class weight ``w_max`` is below 1.

    Class weights are the ``class_weights`` tensors of the modules inside ``criterion``; with several weighted
    losses the one with the smallest ``w_max`` decides.
    """
    largest = math.inf
    for module in criterion.modules():
        weights = getattr(module, "class_weights", None)
        if isinstance(weights, Tensor) and weights.numel() > 0:
            largest = min(largest, float(weights.max()))
    if not 0 < largest < 1:
        return NNUNET_START_SCALE
    return NNUNET_START_SCALE * 2.0 ** math.ceil(math.log2(1.0 / largest))


def grad_scaler_for(criterion: nn.Module, scaler, device_type: str, log: Callable[[str], object] | None = None):
    """``scaler`` (nnU-Net's GradScaler, or None without mixed precision) or one starting at a raised scale."""
    if scaler is None:
        return None
    scale = starting_grad_scale(criterion)
    if scale == NNUNET_START_SCALE:
        return scaler
    if log is not None:
        log(f"Mixed precision: the GradScaler starts at 2^{math.log2(scale):.0f} instead of 2^16: the loss's largest "
            f"class weight is below 1, and its float16 gradients would flush to zero at 2^16 (the scale is divided "
            f"out before clipping and the optimiser step, so float32 training is unchanged)")
    amp_scaler = getattr(torch.amp, "GradScaler", None)
    if amp_scaler is not None:
        return amp_scaler(device_type, init_scale=scale)
    return torch.cuda.amp.GradScaler(init_scale=scale)  # torch < 2.3
