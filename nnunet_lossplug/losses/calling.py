"""The calling convention of the loss library: ``inputs`` names what ``forward`` takes after the logits.

Every loss module declares a class attribute ``inputs: ClassVar[tuple[str, ...]]`` listing, in order, the
positional arguments its ``forward`` takes after ``logits``, from the vocabulary :data:`INPUT_VOCABULARY`:

- ``"target"``: the ground truth, a label map ``(B, 1, *spatial)`` or one-hot ``(B, K, *spatial)``;
- ``"rw_map"``: a per-voxel float map ``(B, K, *spatial)`` precomputed from the ground truth (an RW map, or
  for the one-sided HD loss the distance map).

A loss without the attribute (e.g. a user's own ``nn.Module``) is treated as ``inputs = ("target",)``.
An ignore mask ``(B, 1, *spatial)`` (``True`` = annotated, SPEC §4) is not an input: it is passed as the
keyword ``mask=`` to losses declaring ``accepts_mask = True``; any other loss refuses a mask.
A map may arrive as a :class:`~nnunet_lossplug.losses.RectifiedMap` (``O(N)`` form of RRW, AC and Cao maps);
it is handed over as such only to losses declaring ``accepts_rectified = True`` and as its dense
``(B, K, *spatial)`` tensor to every other loss.
:func:`call_loss` dispatches on it; the nnU-Net glue and :class:`DeepSupervisionLoss` use it.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import torch
from torch import Tensor

from .rectified_map import RectifiedMap

__all__ = ["INPUT_VOCABULARY", "call_loss", "loss_inputs", "order_inputs"]

INPUT_VOCABULARY: tuple[str, ...] = ("target", "rw_map")


def loss_inputs(loss: Callable[..., Tensor]) -> tuple[str, ...]:
    """Return ``loss.inputs`` (default ``("target",)``) after checking it against the vocabulary."""
    inputs = tuple(getattr(loss, "inputs", ("target",)))
    unknown = [name for name in inputs if name not in INPUT_VOCABULARY]
    if unknown or len(set(inputs)) != len(inputs):
        raise ValueError(
            f"{type(loss).__name__}.inputs must list distinct names from {INPUT_VOCABULARY}, got {inputs}."
        )
    return inputs


def order_inputs(names: Sequence[str]) -> tuple[str, ...]:
    """Deduplicate ``names`` and sort them in vocabulary order (``"target"`` before ``"rw_map"``)."""
    return tuple(name for name in INPUT_VOCABULARY if name in names)


def call_loss(
    loss: Callable[..., Tensor],
    logits: Tensor,
    target: Tensor | None = None,
    rw_map: Tensor | None = None,
    mask: Tensor | None = None,
) -> Tensor:
    """Call ``loss(logits, *required)`` with the inputs named by ``loss.inputs``, in that order.

    Raises ``ValueError`` naming the loss and the missing input when a required input is ``None``.
    Inputs the loss does not declare are ignored, so callers can always pass everything they have.
    A ``mask`` is passed as ``mask=`` to a loss with ``accepts_mask = True`` and refused by any other.
    """
    available = {"target": target, "rw_map": rw_map}
    arguments = []
    for name in loss_inputs(loss):
        value = available[name]
        if value is None:
            raise ValueError(
                f"{type(loss).__name__} needs {name!r} (its inputs are {loss_inputs(loss)}), but "
                f"{name}=None was passed. Provide it, e.g. an RW/distance map computed from the ground truth "
                f"for 'rw_map'."
            )
        if isinstance(value, RectifiedMap) and not getattr(loss, "accepts_rectified", False):
            value = value.dense(logits.dtype if logits.is_floating_point() else torch.float32)
        arguments.append(value)
    if mask is None:
        return loss(logits, *arguments)
    if not getattr(loss, "accepts_mask", False):
        raise ValueError(
            f"{type(loss).__name__} cannot skip ignored voxels (it does not declare accepts_mask = True), but the "
            f"dataset has an ignore label. Give its forward a mask=None keyword (True at annotated voxels) and set "
            f"accepts_mask = True, or remove the ignore label from the dataset."
        )
    return loss(logits, *arguments, mask=mask)
