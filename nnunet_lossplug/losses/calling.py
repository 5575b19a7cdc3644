"""The calling convention of the loss library: ``inputs`` names what ``forward`` takes after the logits.

The protocol flags are declared, with their defaults, on
:class:`~nnunet_lossplug.losses.SegmentationLoss`; this module reads them, from any callable:

- ``inputs`` lists, in order, the positional arguments ``forward`` takes after ``logits``, from the
  vocabulary :data:`INPUT_VOCABULARY` (``"target"``: the ground truth, a label map ``(B, 1, *spatial)`` or
  one-hot ``(B, K, *spatial)``; ``"rw_map"``: a per-voxel float map ``(B, K, *spatial)`` precomputed from the
  ground truth, an RW map or, for the one-sided HD loss, the distance map);
- an ignore mask ``(B, 1, *spatial)`` (``True`` = annotated; docs/conventions.md, Ignore labels) is not an
  input: it is passed as the keyword ``mask=`` to losses declaring ``accepts_mask = True``; any other loss
  refuses a mask;
- a map may arrive as a :class:`~nnunet_lossplug.losses.RectifiedMap` (``O(N)`` form of RRW, AC and Cao
  maps); it is handed over as such only to losses declaring ``accepts_rectified = True`` and as its dense
  ``(B, K, *spatial)`` tensor to every other loss.

A loss without the attributes (e.g. a user's own plain ``nn.Module``) gets the base class's defaults: it is
called with the target only and refuses masks and rectified maps. :func:`call_loss` dispatches on the flags;
the nnU-Net glue, :class:`~nnunet_lossplug.losses.LossMixture` and
:class:`~nnunet_lossplug.losses.DeepSupervisionLoss` use it.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import torch
from torch import Tensor

from .rectified_map import RectifiedMap
from .segmentation_loss import INPUT_VOCABULARY, SegmentationLoss, check_inputs

__all__ = ["INPUT_VOCABULARY", "call_loss", "loss_inputs", "order_inputs"]


def loss_inputs(loss: Callable[..., Tensor]) -> tuple[str, ...]:
    """Return ``loss.inputs`` (default ``SegmentationLoss.inputs``) after checking it against the vocabulary."""
    return check_inputs(type(loss).__name__, getattr(loss, "inputs", SegmentationLoss.inputs))


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
    takes_rectified = getattr(loss, "accepts_rectified", SegmentationLoss.accepts_rectified)
    arguments = []
    for name in loss_inputs(loss):
        value = available[name]
        if value is None:
            raise ValueError(
                f"{type(loss).__name__} needs {name!r} (its inputs are {loss_inputs(loss)}), but "
                f"{name}=None was passed. Provide it, e.g. an RW/distance map computed from the ground truth "
                f"for 'rw_map'."
            )
        if isinstance(value, RectifiedMap) and not takes_rectified:
            value = value.dense(logits.dtype if logits.is_floating_point() else torch.float32)
        arguments.append(value)
    if mask is None:
        return loss(logits, *arguments)
    if not getattr(loss, "accepts_mask", SegmentationLoss.accepts_mask):
        raise ValueError(
            f"{type(loss).__name__} cannot skip ignored voxels (it does not declare accepts_mask = True), but the "
            f"dataset has an ignore label. Give its forward a mask=None keyword (True at annotated voxels) and set "
            f"accepts_mask = True, or remove the ignore label from the dataset."
        )
    return loss(logits, *arguments, mask=mask)
