"""One-sided Hausdorff-distance loss of Karimi & Salcudean 2019, as restated by Valverde & Tohka 2022, Prop. 3."""

from __future__ import annotations

import math
from typing import NoReturn

import torch
from torch import Tensor

from ._inputs import check_or_poison, full_precision, one_hot_target, prepare_logits, prepare_map
from .regions import masked_voxel_mean, two_class_map, voxelwise_problem
from .segmentation_loss import SegmentationLoss

__all__ = ["OneSidedHausdorffLoss"]


class OneSidedHausdorffLoss(SegmentationLoss):
    """One-sided HD loss: squared softmax error weighted by the ground-truth boundary distance to the power α.

    Valverde & Tohka 2022, Prop. 3 (Karimi & Salcudean 2019, *Reducing the Hausdorff distance ...*, one-sided
    variant)::

        L_HD = mean_{b,k,i} ( (s[b,k,i] − y[b,k,i])² · D[b,k,i]^α )

    with ``s = softmax(logits)``, ``y`` the one-hot target and ``D`` (``rw_map``) the unsigned Euclidean
    distance of each voxel to the ground-truth boundary of class ``k`` (``≡ 0`` for a class absent from the
    image or filling it; docs/conventions.md, "Empty and full structures"). Valverde & Tohka 2022 show that
    this equals an RW loss on the squared softmax. The normalisation by the number of elements matches
    :class:`~nnunet_lossplug.losses.RegionWiseLoss`.

    Args:
        alpha: exponent of the distance map, ``α >= 0``. Default 2, Karimi & Salcudean's choice.
        regions: region mode (:class:`~nnunet_lossplug.losses.SegmentationLoss`, "Regions and ignore mask"):
            ``rw_map`` is the regions' two-class distance maps ``(B, R, 2, *spatial)`` and the loss
            ``mean_{b,r,i}((p − y)² (D_in^α + D_out^α)) / 2``.

    Shape:
        ``logits`` and ``rw_map`` ``(B, K, *spatial)``, ``rw_map`` non-negative; ``target`` label map
        ``(B, 1, *spatial)`` or one-hot ``(B, K, *spatial)``; optional keyword ``mask`` ``(B, 1, *spatial)``,
        ``True`` at annotated voxels.

    Returns:
        A non-negative scalar, float32 (float64 for float64 logits).
    """

    inputs = ("target", "rw_map")
    nonnegative = True
    accepts_mask = True
    supports_regions = True

    def __init__(self, alpha: float = 2.0, regions: bool = False) -> None:
        super().__init__(regions=regions)
        if not (isinstance(alpha, (int, float)) and math.isfinite(alpha) and alpha >= 0):
            raise ValueError(f"alpha must be a finite number >= 0 (Karimi & Salcudean use 2), got {alpha!r}.")
        self.alpha = float(alpha)

    def forward(self, logits: Tensor, target: Tensor, rw_map: Tensor, mask: Tensor | None = None) -> Tensor:
        """Return ``mean((softmax(logits) − y)² · rw_map^alpha)``; ``rw_map`` is the distance map ``D``."""
        if self.regions:
            rw_map = two_class_map(rw_map, logits, name="rw_map (the distance map D)")
        logits, target, mask = voxelwise_problem(logits, target, mask, self.regions)
        logits = prepare_logits(logits)
        with full_precision(logits.device):
            onehot = one_hot_target(target, logits)
            distance = prepare_map(rw_map, logits, name="rw_map (the distance map D)")

            def refuse() -> NoReturn:
                raise ValueError(
                    f"the distance map of OneSidedHausdorffLoss must be non-negative (unsigned distances "
                    f"to the ground-truth boundary), found a minimum of {float(distance.min()):g}. Signed "
                    f"maps belong to RegionWiseLoss (RW-Boundary)."
                )

            distance = check_or_poison(distance, distance < 0, refuse)
            probs = torch.softmax(logits, dim=1)
            return masked_voxel_mean((probs - onehot) ** 2 * distance**self.alpha, mask)
