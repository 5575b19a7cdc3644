"""One-sided Hausdorff-distance loss of Karimi & Salcudean, as restated by paper 002 Prop. 3; SPEC §1."""

from __future__ import annotations

import math
from typing import ClassVar

import torch
from torch import Tensor, nn

from ._inputs import full_precision, one_hot_target, prepare_logits, prepare_map
from .regions import masked_voxel_mean, two_class_map, voxelwise_problem

__all__ = ["OneSidedHausdorffLoss"]


class OneSidedHausdorffLoss(nn.Module):
    """One-sided HD loss: squared softmax error weighted by the ground-truth boundary distance to the power α.

    Paper 002, Prop. 3 (Karimi & Salcudean, *Reducing the Hausdorff distance ...*, one-sided variant)::

        L_HD = mean_{b,k,i} ( (s[b,k,i] − y[b,k,i])² · D[b,k,i]^α )

    with ``s = softmax(logits)``, ``y`` the one-hot target and ``D`` (``rw_map``) the unsigned Euclidean
    distance of each voxel to the ground-truth boundary of class ``k`` (SPEC §1: ``≡ 0`` for a class absent
    from the image or filling it). Paper 002 shows this equals an RW loss on the squared softmax.
    The normalisation by the number of elements matches :class:`RegionWiseLoss`.

    Args:
        alpha: exponent of the distance map, ``α >= 0``. Default 2, Karimi et al.'s choice (SPEC §1).

    Shapes: ``logits`` and ``rw_map`` ``(B, K, *spatial)``; ``target`` label map ``(B, 1, *spatial)`` or
    one-hot ``(B, K, *spatial)``. ``rw_map`` must be non-negative. Returns a non-negative scalar.

    Regions and ignore mask (SPEC §4): ``regions=True`` takes logits and a binary target ``(B, R, *spatial)``
    and the regions' two-class distance maps ``(B, R, 2, *spatial)``; each region is the two-class softmax
    problem with logits ``(0, x_r)``, i.e. ``mean_{b,r,i}((p − y)² (D_in^α + D_out^α)) / 2``.
    ``forward(..., mask=m)`` (``(B, 1, *spatial)``, ``True`` = annotated) averages over annotated voxels per
    image, then over the images that have any; ignored voxels get exactly zero gradient.
    """

    inputs: ClassVar[tuple[str, ...]] = ("target", "rw_map")
    nonnegative: ClassVar[bool] = True
    accepts_mask: ClassVar[bool] = True
    supports_regions: ClassVar[bool] = True

    def __init__(self, alpha: float = 2.0, regions: bool = False) -> None:
        super().__init__()
        if not (isinstance(alpha, (int, float)) and math.isfinite(alpha) and alpha >= 0):
            raise ValueError(f"alpha must be a finite number >= 0 (Karimi et al. use 2), got {alpha!r}.")
        self.alpha = float(alpha)
        self.regions = bool(regions)

    def extra_repr(self) -> str:
        return f"alpha={self.alpha}, regions={self.regions}"

    def forward(self, logits: Tensor, target: Tensor, rw_map: Tensor, mask: Tensor | None = None) -> Tensor:
        """Return ``mean((softmax(logits) − y)² · rw_map^alpha)``; ``rw_map`` is the distance map ``D``."""
        if self.regions:
            rw_map = two_class_map(rw_map, logits, name="rw_map (the distance map D)")
        logits, target, mask = voxelwise_problem(logits, target, mask, self.regions)
        logits = prepare_logits(logits)
        with full_precision(logits.device):
            onehot = one_hot_target(target, logits)
            distance = prepare_map(rw_map, logits, name="rw_map (the distance map D)")
            if bool(torch.any(distance < 0)):
                raise ValueError(
                    f"the distance map of OneSidedHausdorffLoss must be non-negative (unsigned distances "
                    f"to the ground-truth boundary), found a minimum of {float(distance.min()):g}. Signed "
                    f"maps belong to RegionWiseLoss (RW-Boundary)."
                )
            probs = torch.softmax(logits, dim=1)
            return masked_voxel_mean((probs - onehot) ** 2 * distance**self.alpha, mask)
