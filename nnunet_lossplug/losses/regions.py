"""Region (sigmoid) mode and ignore masks shared by the losses; docs/conventions.md#regions.

**Regions.** nnU-Net's region-based datasets (BraTS: whole tumour ⊃ tumour core ⊃ enhancing tumour) have one
logit ``x_r`` per region and a binary target ``y_r`` per region, ``(B, R, *spatial)``. The conventions
(docs/conventions.md#regions) treat each region as a two-class problem {outside, inside}: a softmax over the logits
``(0, x_r)``, whose class 1
probability is ``sigmoid(x_r)``. :func:`two_class_logits` builds exactly that problem, batch-major
(problem index ``b·R + r``), so every voxel-wise loss of the package (RW, RW-weighted CE, CE, focal, HD)
keeps its softmax formula and its normalisation; averaged over the ``B·R`` problems it is the region loss::

    L_RW = mean_{b,r,i} ( p_r · z_r^in + (1 − p_r) · z_r^out ) / 2,     p_r = sigmoid(x_r)

A region's two-class map has channel 0 = ``z^out`` (the "outside" class) and channel 1 = ``z^in``; a dense
region map has shape ``(B, R, 2, *spatial)``; a rectified one is a
:class:`~nnunet_lossplug.losses.RectifiedMap` of the ``B·R`` two-class problems
(:func:`region_rectified_map`).

**Ignore mask.** ``mask`` ``(B, 1, *spatial)``, ``True`` where a voxel is annotated. Voxel means run over the
annotated voxels of each image, then over the images that have any (:func:`masked_voxel_mean`); an ignored
voxel contributes nothing to the value and receives exactly zero gradient.
"""

from __future__ import annotations

from typing import NoReturn

import torch
from torch import Tensor

from ._inputs import check_or_poison
from .rectified_map import RectifiedMap

__all__ = [
    "masked_voxel_mean",
    "prepare_mask",
    "region_labels",
    "region_problem",
    "region_rectified_map",
    "repeat_per_region",
    "two_class_logits",
    "two_class_map",
    "unmasked_labels",
    "voxelwise_problem",
]


def _check_region_logits(logits: Tensor) -> None:
    if not isinstance(logits, Tensor) or logits.ndim < 3 or not logits.is_floating_point():
        raise ValueError(
            f"region logits must be a floating tensor (B, R, *spatial) with one logit per region, got "
            f"{tuple(logits.shape) if isinstance(logits, Tensor) else type(logits).__name__}."
        )


def two_class_logits(logits: Tensor) -> Tensor:
    """Region logits ``(B, R, *spatial)`` -> two-class logits ``(B·R, 2, *spatial)`` = ``(0, x_r)``.

    ``softmax((0, x))[1] = sigmoid(x)``: the two-class softmax problem of each region (docs/conventions.md#regions).
    """
    _check_region_logits(logits)
    batch, regions, *spatial = logits.shape
    stacked = torch.stack((torch.zeros_like(logits), logits), dim=2)
    return stacked.reshape(batch * regions, 2, *spatial)


def region_labels(target: Tensor, logits: Tensor) -> Tensor:
    """Binary region target ``(B, R, *spatial)`` -> label maps ``(B·R, 1, *spatial)`` (0 outside, 1 inside).

    A value other than 0 and 1 is refused (eagerly) or makes the labels NaN (with deferred checks; see
    :func:`~nnunet_lossplug.losses._inputs.check_or_poison`).
    """
    if not isinstance(target, Tensor) or tuple(target.shape) != tuple(logits.shape):
        shape = tuple(target.shape) if isinstance(target, Tensor) else type(target).__name__
        raise ValueError(
            f"a region target must have the logits' shape (B, R, *spatial) = {tuple(logits.shape)} (one binary "
            f"channel per region, as nnU-Net's ConvertSegmentationToRegionsTransform makes), got {shape}."
        )
    with torch.no_grad():
        target = target.to(logits.device)
        batch, regions, *spatial = target.shape

        def refuse() -> NoReturn:
            raise ValueError("a region target must hold 0 (outside) and 1 (inside) only.")

        labels = check_or_poison(target.float(), (target != 0) & (target != 1), refuse)
        return labels.reshape(batch * regions, 1, *spatial)


def two_class_map(rw_map: Tensor, logits: Tensor, name: str = "rw_map") -> Tensor:
    """Dense region map ``(B, R, 2, *spatial)`` (``z^out``, ``z^in``) -> ``(B·R, 2, *spatial)``."""
    batch, regions, *spatial = logits.shape
    expected = (batch, regions, 2, *spatial)
    if not isinstance(rw_map, Tensor) or tuple(rw_map.shape) != expected:
        shape = tuple(rw_map.shape) if isinstance(rw_map, Tensor) else type(rw_map).__name__
        raise ValueError(
            f"in region mode {name} must hold each region's two-class map (z_out, z_in) with shape "
            f"(B, R, 2, *spatial) = {expected}, got {shape}. Compute it with "
            f"nnunet_lossplug.maps.region_maps."
        )
    return rw_map.reshape(batch * regions, 2, *spatial)


def region_rectified_map(
    target: Tensor, own_value: Tensor | float, other_value: Tensor | float = 1.0
) -> RectifiedMap:
    """The rectified two-class maps of ``R`` regions in the ``(B·R)`` layout of :func:`two_class_logits`.

    ``target`` ``(B, R, *spatial)`` binary; ``own_value`` ``(B, R, *spatial)``: the value of each voxel's own
    side, ``z^in`` inside and ``z^out`` outside (RRW: ``−d/max d`` of that side; AC: 0; Cao: −1), or a number;
    ``other_value`` the value of the other side (1 for RRW, AC and Cao).
    """
    batch, regions, *spatial = target.shape
    labels = target.reshape(batch * regions, 1, *spatial).long()
    own = own_value.reshape(batch * regions, 1, *spatial) if isinstance(own_value, Tensor) else own_value
    if isinstance(other_value, Tensor):
        other_value = other_value.reshape(batch * regions, 1, *spatial)
    return RectifiedMap(labels, own, other_value, 2)


def prepare_mask(mask: Tensor | None, logits: Tensor) -> Tensor | None:
    """Check an annotation mask ``(B, 1, *spatial)`` (``True`` = annotated) against ``logits``; return it bool."""
    if mask is None:
        return None
    expected = (logits.shape[0], 1, *logits.shape[2:])
    if not isinstance(mask, Tensor) or tuple(mask.shape) != expected:
        shape = tuple(mask.shape) if isinstance(mask, Tensor) else type(mask).__name__
        raise ValueError(
            f"mask must be a (B, 1, *spatial) = {expected} tensor, True (or 1) at annotated voxels, got {shape}."
        )
    return mask.detach().to(logits.device).bool()


def repeat_per_region(mask: Tensor | None, regions: int) -> Tensor | None:
    """Mask ``(B, 1, *spatial)`` -> ``(B·R, 1, *spatial)`` in the layout of :func:`two_class_logits`."""
    return None if mask is None else mask.repeat_interleave(regions, dim=0)


def masked_voxel_mean(values: Tensor, mask: Tensor | None) -> Tensor:
    """Mean of ``values`` ``(B, C, *spatial)`` over channels and voxels; with a mask, over annotated voxels.

    With ``mask`` ``(B, 1, *spatial)``: per image ``b``, ``Σ_{c, annotated i} v / (C · #annotated_b)``, then the
    mean over the images with at least one annotated voxel (without a mask: ``values.mean()``, every image
    having ``N`` voxels). A batch without any annotated voxel gives 0 (and zero gradients). Ignored voxels
    are selected away with ``torch.where``: their gradient is exactly 0 even where ``values`` is not finite.
    Nothing is read on the host (no boolean indexing), so the mean neither stalls a GPU nor breaks a graph.
    """
    if mask is None:
        return values.mean()
    kept = torch.where(mask, values, values.new_zeros(()))
    per_image = kept.flatten(1).sum(1)
    counts = mask.flatten(1).sum(1).to(values.dtype) * values.shape[1]
    annotated = counts > 0
    # multiplications by the mask instead of per_image[annotated]: no host round-trip for the selection
    per_image_mean = per_image / torch.where(annotated, counts, torch.ones_like(counts))
    return (per_image_mean * annotated).sum() / annotated.sum().clamp_min(1)


def region_problem(logits: Tensor, mask: Tensor | None) -> tuple[Tensor, Tensor | None]:
    """Region logits ``(B, R, *spatial)`` and a mask ``(B, 1, *spatial)`` -> the ``B·R`` two-class problems."""
    _check_region_logits(logits)
    mask = prepare_mask(mask, logits)
    return two_class_logits(logits), repeat_per_region(mask, logits.shape[1])


def unmasked_labels(target: Tensor, mask: Tensor | None) -> Tensor:
    """A label map ``(B, 1, *spatial)`` with its ignored voxels set to class 0 (their value is masked anyway).

    One-hot targets ``(B, K, *spatial)`` are returned unchanged: they must be valid at every voxel.
    """
    if mask is None or not isinstance(target, Tensor) or target.ndim < 2 or target.shape[1] != 1:
        return target
    target = target.to(mask.device)
    return torch.where(mask, target, torch.zeros((), dtype=target.dtype, device=target.device))


def voxelwise_problem(
    logits: Tensor, target: Tensor, mask: Tensor | None, regions: bool
) -> tuple[Tensor, Tensor, Tensor | None]:
    """``(logits, target, mask)`` of a voxel-wise softmax loss: the ``B·R`` two-class problems in region mode.

    Region mode: ``target`` ``(B, R, *spatial)`` binary becomes the label maps ``(B·R, 1, *spatial)``.
    Otherwise the mask is checked and a label map's ignored voxels are set to class 0 (masked away later).
    """
    if regions:
        labels = region_labels(target, logits)
        logits, mask = region_problem(logits, mask)
        return logits, labels, mask
    mask = prepare_mask(mask, logits)
    return logits, unmasked_labels(target, mask), mask
