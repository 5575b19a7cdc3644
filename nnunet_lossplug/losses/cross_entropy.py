"""Voxel-wise cross-entropy family: plain, focal (γ = 2, no α) and weighted by an RW map (Valverde & Tohka 2022)."""

from __future__ import annotations

import math

import torch
from torch import Tensor

from ._inputs import full_precision, one_hot_target, prepare_logits, prepare_map
from .rectified_map import RectifiedMap, true_class_log_softmax
from .regions import masked_voxel_mean, two_class_map, voxelwise_problem
from .segmentation_loss import SegmentationLoss

__all__ = ["CrossEntropyLoss", "FocalLoss", "RWWeightedCrossEntropyLoss"]


def focal_cross_entropy(logits: Tensor, target: Tensor, mask: Tensor | None, regions: bool,
                        gamma: float = 0.0) -> Tensor:
    """``mean_{b,i}( −Σ_k y · (1 − s)^γ · log s )`` over the (annotated) voxels; ``γ = 0``: cross-entropy.

    The one body of :class:`CrossEntropyLoss` and :class:`FocalLoss`. At ``γ = 0`` the modulation is not
    computed at all: ``(1 − s)^0`` has a NaN derivative at ``s = 1`` in autograd (``0 · 0^(−1)``).
    """
    logits, target, mask = voxelwise_problem(logits, target, mask, regions)
    logits = prepare_logits(logits)
    with full_precision(logits.device):
        onehot = one_hot_target(target, logits)
        log_probs = torch.log_softmax(logits, dim=1)
        if gamma:
            log_probs = (-torch.expm1(log_probs)) ** gamma * log_probs
        return masked_voxel_mean(-(onehot * log_probs).sum(dim=1, keepdim=True), mask)


class CrossEntropyLoss(SegmentationLoss):
    """Voxel-wise softmax cross-entropy, averaged over the voxels of all images.

    ::

        L_CE = mean_{b,i} ( − Σ_k y[b,k,i] · log s[b,k,i] ),      log s = log_softmax(logits, dim=1)

    The baseline of Valverde & Tohka 2022, Sec. 4.4 (their reference code: ``−mean(Σ_k y log(s + 1e-15))``;
    here the log-softmax is computed directly, which is exact and finite for any logits) and the voxel-wise
    term Nguyen et al. 2019 add to SA Dice. For a label-map target it equals
    ``torch.nn.functional.cross_entropy``. Soft one-hot targets (channels in ``[0, 1]`` summing to 1) are
    accepted.

    Args:
        regions: region mode (:class:`~nnunet_lossplug.losses.SegmentationLoss`, "Regions and ignore mask"):
            the binary cross-entropy ``mean_{b,r,i}( −y_r log p_r − (1 − y_r) log(1 − p_r) )``.

    Shape:
        ``logits`` ``(B, K, *spatial)``; ``target`` label map ``(B, 1, *spatial)`` or one-hot
        ``(B, K, *spatial)``; optional keyword ``mask`` ``(B, 1, *spatial)``, ``True`` at annotated voxels.

    Returns:
        A non-negative scalar, float32 (float64 for float64 logits).
    """

    nonnegative = True
    accepts_mask = True
    supports_regions = True

    def forward(self, logits: Tensor, target: Tensor, mask: Tensor | None = None) -> Tensor:
        """Return the mean voxel-wise cross-entropy of ``logits`` against ``target``."""
        return focal_cross_entropy(logits, target, mask, self.regions, gamma=0.0)


class FocalLoss(SegmentationLoss):
    """Softmax focal loss without α-balancing (Lin et al. 2017), the baseline of Valverde & Tohka 2022, Sec. 4.1.

    ::

        L_FL = mean_{b,i} ( − Σ_k y[b,k,i] · (1 − s[b,k,i])^γ · log s[b,k,i] )

    ``(1 − s)`` is computed as ``−expm1(log s)`` so that confident predictions keep their precision.
    ``γ = 0`` gives :class:`CrossEntropyLoss`. Normalised per voxel (summed over classes, averaged over
    voxels) like the reference code of Valverde & Tohka 2022; MONAI's ``FocalLoss`` averages over classes as
    well, i.e. it returns this value divided by ``K``.

    Args:
        gamma: focusing parameter ``γ >= 0``. Default 2: Lin et al.'s best setting, the focal-loss baseline of
            Valverde & Tohka 2022, Sec. 4.1 (``γ = 2``, no α-balancing). For ``0 < γ < 1`` the derivative of
            ``(1 − s)^γ`` is unbounded at ``s = 1``; prefer ``γ = 0`` or ``γ >= 1``.
        regions: region mode (:class:`~nnunet_lossplug.losses.SegmentationLoss`, "Regions and ignore mask"):
            the binary focal loss ``−y (1 − p)^γ log p − (1 − y) p^γ log(1 − p)``, averaged.

    Shape:
        As :class:`CrossEntropyLoss`.

    Returns:
        A non-negative scalar, float32 (float64 for float64 logits).
    """

    nonnegative = True
    accepts_mask = True
    supports_regions = True

    def __init__(self, gamma: float = 2.0, regions: bool = False) -> None:
        super().__init__(regions=regions)
        if not (isinstance(gamma, (int, float)) and math.isfinite(gamma) and gamma >= 0):
            raise ValueError(f"gamma must be a finite number >= 0 (Valverde & Tohka 2022 use 2), got {gamma!r}.")
        self.gamma = float(gamma)

    def forward(self, logits: Tensor, target: Tensor, mask: Tensor | None = None) -> Tensor:
        """Return the mean voxel-wise focal loss of ``logits`` against ``target``."""
        return focal_cross_entropy(logits, target, mask, self.regions, gamma=self.gamma)


class RWWeightedCrossEntropyLoss(SegmentationLoss):
    """Cross-entropy weighted voxel-wise by ``|RW map|`` at the true class (Valverde & Tohka 2022, Sec. 3.2, 4.1).

    ::

        L = mean_{b,i} ( − Σ_k |z[b,k,i]| · y[b,k,i] · log s[b,k,i] )
        ∂L/∂x_k = |z_t| · (s_k − y_k) / (B·N)          (t the true class of the voxel, hard targets)

    Valverde & Tohka 2022 evaluate "Cross entropy weighted with our RRW maps as indicated in Section 3.2";
    Sec. 3.2 explains that such a weighting multiplies each voxel's cross-entropy by the map value of its true
    class (``y`` is one-hot), so the values of the other classes never reach the gradient. The formula itself
    was lost from our copy of the paper, and the public reference code
    (``jmlipman/RegionWiseLoss``, ``nnUNet/training/loss_functions/rwexp_loss.py``) contains no weighted
    cross-entropy, so this implementation fixes the one free choice explicitly: the weight is ``|z_t|``.
    With an RRW map (``z_t = −d/max d ∈ [−1, 0)``) a signed weight would turn the loss into a reward for
    misclassification; ``|z_t| = d/max d`` weights voxels deep inside a structure by up to 1 and those at
    its boundary by ``1/max d`` (a class filling the image: ``z_t = −1``, weight 1). Any RW map works; for
    maps whose true-class value is 0 (RW-Boundary at the boundary) those voxels carry no loss.

    A :class:`~nnunet_lossplug.losses.RectifiedMap` ``(t, z_t, c_t)`` is used in ``O(N)`` memory:
    ``L = mean_{b,i}( |z_t| · (logsumexp_k x_k − x_t) )`` with its own true class ``t`` (which must be the
    target's), the same value and gradient as the dense form.

    Args:
        regions: region mode (:class:`~nnunet_lossplug.losses.SegmentationLoss`, "Regions and ignore mask"):
            the binary form averaged over regions; ``rw_map`` is then the regions' two-class maps, as for
            :class:`~nnunet_lossplug.losses.RegionWiseLoss` with ``regions=True``.

    Shape:
        ``logits`` and ``rw_map`` ``(B, K, *spatial)`` (or a ``RectifiedMap`` of that shape); ``target`` label
        map ``(B, 1, *spatial)`` or one-hot ``(B, K, *spatial)``; optional keyword ``mask`` ``(B, 1, *spatial)``,
        ``True`` at annotated voxels.

    Returns:
        A non-negative scalar, float32 (float64 for float64 logits).
    """

    inputs = ("target", "rw_map")
    nonnegative = True
    accepts_mask = True
    accepts_rectified = True
    supports_regions = True

    def forward(
        self, logits: Tensor, target: Tensor, rw_map: Tensor | RectifiedMap, mask: Tensor | None = None
    ) -> Tensor:
        """Return ``mean_{b,i}(−Σ_k |rw_map|·y·log_softmax(logits))`` (over annotated voxels with a mask)."""
        if self.regions and not isinstance(rw_map, RectifiedMap):
            rw_map = two_class_map(rw_map, logits)
        logits, target, mask = voxelwise_problem(logits, target, mask, self.regions)
        logits = prepare_logits(logits)
        with full_precision(logits.device):
            if isinstance(rw_map, RectifiedMap):
                rw_map.check_against(logits)
                true_value, _ = rw_map.values(logits.dtype, logits.device)
                labels = rw_map.labels.to(logits.device)
                if mask is not None:
                    labels = torch.where(mask, labels, torch.zeros((), dtype=labels.dtype, device=labels.device))
                log_s_t = true_class_log_softmax(logits, labels)
                return masked_voxel_mean(-(true_value.abs() * log_s_t), mask)
            onehot = one_hot_target(target, logits)
            weights = prepare_map(rw_map, logits).abs()
            log_probs = torch.log_softmax(logits, dim=1)
            return masked_voxel_mean(-(weights * onehot * log_probs).sum(dim=1, keepdim=True), mask)
