"""Input checks and conversions shared by every loss in this package.

Every loss takes raw logits ``(B, K, *spatial)`` and, depending on its ``inputs``, a target and/or a
per-voxel float map. This module turns those into the tensors the formulas need:

- :func:`prepare_logits` checks the shape and upcasts float16/bfloat16 to float32 (float64 is kept so that
  ``torch.autograd.gradcheck`` can run in double precision);
- :func:`one_hot_target` accepts a label map ``(B, 1, *spatial)`` (nnU-Net's form) or a one-hot target
  ``(B, K, *spatial)`` and returns a one-hot tensor in the logits' compute dtype. It REFUSES the two
  nnU-Net target forms that need a loss option instead of computing something silently wrong:
  region-based targets (overlapping channels; the losses' ``regions=True``) and the ignore label (label
  values outside ``[0, K)``; the losses' ``mask=``, see :mod:`~nnunet_lossplug.losses.regions`);
- :func:`prepare_map` checks a precomputed RW / distance map ``(B, K, *spatial)``;
- :func:`full_precision` disables autocast so that the loss arithmetic runs in the dtype chosen above.

**Checks without a host round-trip.** Refusing a bad target needs its values on the host (``bool(tensor)``):
on a GPU that stalls the device in the middle of a training step, and under ``torch.compile`` it breaks the
graph. Inside :func:`deferred_input_checks` (the trainer's ``train_step``) and while ``torch.compile`` traces,
the checks stay on the device instead: a bad target makes the loss NaN (:func:`check_or_poison`), which the
caller reads anyway (nnU-Net reads every training loss) and then repeats the step's checks eagerly to name the
problem. Called eagerly outside that block, a loss refuses a bad target at once with a ``ValueError``.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator
from typing import NoReturn

import torch
from torch import Tensor

__all__ = [
    "check_or_poison",
    "checks_deferred",
    "deferred_input_checks",
    "full_precision",
    "one_hot_target",
    "prepare_logits",
    "prepare_map",
]

_LOW_PRECISION = (torch.float16, torch.bfloat16)
# tolerance for "the channels of a one-hot target sum to 1" (covers float16 targets)
_ONE_HOT_SUM_ATOL = 1e-3
#: how many :func:`deferred_input_checks` blocks are open (a training step runs in one thread)
_deferred_depth = 0


@contextlib.contextmanager
def deferred_input_checks() -> Iterator[None]:
    """Within the block, a bad target makes the loss NaN instead of raising (no host round-trip; module docstring)."""
    global _deferred_depth
    _deferred_depth += 1
    try:
        yield
    finally:
        _deferred_depth -= 1


def checks_deferred() -> bool:
    """``True`` inside :func:`deferred_input_checks` and while ``torch.compile`` traces the loss."""
    return torch.compiler.is_compiling() or _deferred_depth > 0  # compiling first: no guard on the global


def check_or_poison(values: Tensor, bad: Tensor, refuse: Callable[[], NoReturn]) -> Tensor:
    """Return floating ``values`` unchanged if no entry of the boolean ``bad`` is set; otherwise refuse them.

    Eagerly, refusing is ``refuse()`` (which raises). With :func:`checks_deferred` nothing is read on the host:
    every entry of the result becomes NaN when any entry of ``bad`` is set, so the loss computed from it is NaN.
    """
    if not checks_deferred():
        if bool(torch.any(bad)):
            refuse()
        return values
    return values + torch.where(torch.any(bad), float("nan"), 0.0).to(values.dtype)


def compute_dtype(dtype: torch.dtype) -> torch.dtype:
    """Return the dtype the losses compute in: float32 for float16/bfloat16 inputs, else ``dtype``."""
    return torch.float32 if dtype in _LOW_PRECISION else dtype


@contextlib.contextmanager
def full_precision(device: torch.device) -> Iterator[None]:
    """Disable autocast on ``device`` for the enclosed block (losses are computed in float32 or higher).

    Under ``torch.autocast`` some operations would otherwise run in float16/bfloat16 again even on float32
    tensors; a softmax of logits of magnitude 1e4 or a sum over a 3D patch does not survive that.
    """
    try:
        context = torch.autocast(device_type=device.type, enabled=False)
    except RuntimeError:  # a device type autocast does not know: nothing to disable
        context = contextlib.nullcontext()
    with context:
        yield


def prepare_logits(logits: Tensor) -> Tensor:
    """Check that ``logits`` is a floating tensor ``(B, K, *spatial)`` with ``K >= 2``; return it upcast.

    float16 and bfloat16 are upcast to float32 (mixed-precision training); float32 and float64 are returned
    unchanged. The cast is differentiable, so gradients flow back in the input's dtype.
    """
    if not isinstance(logits, Tensor):
        raise TypeError(
            f"logits must be a torch.Tensor of shape (B, K, *spatial), got {type(logits).__name__}."
        )
    if logits.ndim < 3:
        raise ValueError(
            f"logits must have shape (B, K, *spatial) with at least one spatial dimension (2D: (B, K, H, W), "
            f"3D: (B, K, D, H, W)), got shape {tuple(logits.shape)}."
        )
    if logits.shape[1] < 2:
        raise ValueError(
            f"logits must have K >= 2 channels (the losses apply a softmax over classes, background "
            f"included), got shape {tuple(logits.shape)} with K={logits.shape[1]}. For a single foreground "
            f"class use two output channels (background, foreground)."
        )
    if not logits.is_floating_point():
        raise TypeError(f"logits must be a floating-point tensor, got dtype {logits.dtype}.")
    return logits.to(compute_dtype(logits.dtype))


def one_hot_target(target: Tensor, logits: Tensor) -> Tensor:
    """Convert ``target`` to a one-hot tensor shaped like ``logits``, in ``logits.dtype``; refuse bad targets.

    Accepted forms:

    - a label map ``(B, 1, *spatial)`` of integer class indices in ``[0, K)`` (integer or integral float
      dtype, as nnU-Net's data loader produces);
    - a one-hot (or soft) target ``(B, K, *spatial)`` with values in ``[0, 1]`` whose channels sum to 1 at
      every voxel.

    Refused, with an explicit error: label values outside ``[0, K)`` (nnU-Net's ignore label, e.g. 255 or -1),
    non-integral label values, and ``(B, K, *spatial)`` targets whose channels do not sum to 1 (nnU-Net's
    region-based training, where channels overlap and the network is trained with sigmoids). The returned
    tensor carries no gradient.
    """
    if not isinstance(target, Tensor):
        raise TypeError(f"target must be a torch.Tensor, got {type(target).__name__}.")
    num_classes = logits.shape[1]
    expected_label = (logits.shape[0], 1, *logits.shape[2:])
    same_layout = (
        target.ndim == logits.ndim
        and target.shape[0] == logits.shape[0]
        and target.shape[2:] == logits.shape[2:]
    )
    if not same_layout or target.shape[1] not in (1, num_classes):
        hint = ""
        if tuple(target.shape) == (logits.shape[0], *logits.shape[2:]):
            hint = " The target lacks the channel axis: pass target.unsqueeze(1)."
        raise ValueError(
            f"target must be a label map of shape {expected_label} or one-hot of shape {tuple(logits.shape)} "
            f"(logits have shape {tuple(logits.shape)}), got shape {tuple(target.shape)}.{hint}"
        )
    with torch.no_grad():
        target = target.to(logits.device)
        if target.shape[1] == 1:
            return _label_map_to_one_hot(target, num_classes, logits.dtype)
        return _checked_one_hot(target, logits.dtype)


def _label_map_to_one_hot(labels: Tensor, num_classes: int, dtype: torch.dtype) -> Tensor:
    if labels.dtype == torch.bool or labels.is_complex():
        raise TypeError(f"a label map must hold integer class indices, got dtype {labels.dtype}.")
    outside = (labels < 0) | (labels >= num_classes)
    bad = outside | (labels != torch.round(labels)) if labels.is_floating_point() else outside

    def refuse() -> NoReturn:
        if labels.is_floating_point() and not bool(torch.all(labels == torch.round(labels))):
            raise ValueError(
                "the label map holds non-integral values; a label map (B, 1, *spatial) must contain integer "
                "class indices in [0, K). Pass soft targets as (B, K, *spatial) instead."
            )
        found = torch.unique(labels[outside])[:5].tolist()
        raise ValueError(
            f"label values must lie in [0, K) = [0, {num_classes}), found {found}. For nnU-Net's ignore label "
            f"(a label outside the classes) pass mask=(target != ignore_label) to the loss: its voxels are then "
            f"skipped (docs/conventions.md, Ignore labels)."
        )

    shape = (labels.shape[0], num_classes, *labels.shape[2:])
    one_hot = torch.zeros(shape, dtype=dtype, device=labels.device)
    if not checks_deferred():
        if bool(torch.any(bad)):
            refuse()
        return one_hot.scatter_(1, labels.long(), 1.0)
    # deferred: a bad voxel gets NaN in the channel its clamped label points at (no out-of-bounds write)
    value = torch.where(bad, float("nan"), 1.0).to(dtype)
    return one_hot.scatter_(1, labels.long().clamp(0, num_classes - 1), value)


def _checked_one_hot(target: Tensor, dtype: torch.dtype) -> Tensor:
    target = target.to(compute_dtype(target.dtype) if target.is_floating_point() else dtype)
    out_of_range = (target < 0) | (target > 1)
    deviation = (target.sum(dim=1) - 1).abs()

    def refuse() -> NoReturn:
        if bool(torch.any(out_of_range)):
            raise ValueError(
                f"a one-hot target (B, K, *spatial) must hold values in [0, 1], found values in "
                f"[{float(target.min())}, {float(target.max())}]."
            )
        raise ValueError(
            f"the channels of a one-hot target must sum to 1 at every voxel (one class per voxel), but they "
            f"deviate from 1 by up to {float(deviation.max()):g}. Region-based targets (overlapping channels, "
            f"trained with sigmoids as in nnU-Net's region-based mode) need the loss's region mode: regions=True "
            f"(docs/conventions.md, Regions)."
        )

    bad = torch.any(out_of_range) | torch.any(deviation > _ONE_HOT_SUM_ATOL)
    return check_or_poison(target.to(dtype), bad, refuse)


def prepare_map(rw_map: Tensor, logits: Tensor, name: str = "rw_map") -> Tensor:
    """Check that a per-voxel map has the logits' shape ``(B, K, *spatial)``; cast it to their dtype.

    The map depends on the ground truth only, so it is detached: no gradient flows into it.
    """
    if not isinstance(rw_map, Tensor):
        raise TypeError(
            f"{name} must be a torch.Tensor of shape {tuple(logits.shape)}, got {type(rw_map).__name__}."
        )
    if rw_map.shape != logits.shape:
        raise ValueError(
            f"{name} must have the logits' shape (B, K, *spatial) = {tuple(logits.shape)}, "
            f"got {tuple(rw_map.shape)}. Compute one map channel per class from the ground truth at the "
            f"resolution of this output."
        )
    if rw_map.is_complex() or rw_map.dtype == torch.bool:
        raise TypeError(f"{name} must be a real-valued tensor, got dtype {rw_map.dtype}.")
    return rw_map.detach().to(device=logits.device, dtype=logits.dtype)
