"""Region-wise (RW) loss of Valverde & Tohka 2022, eq. 1-2."""

from __future__ import annotations

import torch
from torch import Tensor

from ._inputs import compute_dtype, full_precision, prepare_logits, prepare_map
from .rectified_map import RectifiedMap, true_class_log_softmax
from .regions import masked_voxel_mean, prepare_mask, region_problem, two_class_map, unmasked_labels
from .segmentation_loss import SegmentationLoss

__all__ = ["RegionWiseLoss"]


class RegionWiseLoss(SegmentationLoss):
    """Region-wise loss: the mean of the element-wise product of the softmax and a precomputed RW map.

    Valverde & Tohka 2022, eq. 1, normalised by the number of elements as their reference code
    (``torch.mean``)::

        L_RW = mean_{b,k,i} ( s[b,k,i] · z[b,k,i] ),      s = softmax(logits, dim=1)

    ``z`` (``rw_map``) depends only on the ground truth (RRW, RW-Boundary, AC, Cao et al.; see
    :mod:`nnunet_lossplug.maps`). Gradient, their eq. 2, per voxel::

        ∂L/∂x_k = s_k · (z_k − Σ_j s_j z_j) / numel

    For a map that is constant across classes at a voxel the gradient there is zero (Valverde & Tohka 2022,
    Sec. 3.1).

    Sign. The paper's value can be negative: with RRW maps (``z ∈ [−1, 0)`` on the true class, ``1``
    elsewhere) each voxel contributes ``Σ_k s_k z_k ∈ [z_true, 1] ⊂ [−1, 1]``, so ``L_RW ∈ [−1/K, 1/K]``;
    with RW-Boundary maps it is unbounded below. Because ``Σ_k s_k = 1``, subtracting any per-voxel
    constant ``c_{b,i}`` from every class of the map changes the loss by ``mean_{b,i}(c)/K`` and leaves the
    gradient unchanged. ``shift_to_nonnegative=True`` uses ``c = min_k z_k``::

        L = mean_{b,k,i}( s · (z − min_k z) ) = L_RW − mean_{b,i}(min_k z_{b,k,i}) / K   ≥ 0

    which has exactly the gradients of ``L_RW`` and is non-negative for any map. It is needed where a
    positive loss is assumed, e.g. the homoscedastic-uncertainty weighting of
    :class:`~nnunet_lossplug.losses.DeepSupervisionLoss` (``weights="trainable"``). For an RRW map the
    shift at a voxel is ``|z_true| ∈ (0, 1]`` and the shifted value lies in ``[0, 2/K]``.

    Rectified maps in ``O(N)``. ``rw_map`` may also be a :class:`~nnunet_lossplug.losses.RectifiedMap`
    ``(t, z_t, c_t)`` (RRW, AC, Cao; see :mod:`~nnunet_lossplug.losses.rectified_map`). Then, with
    ``s_t = exp(x_t − logsumexp x)``, the same value and gradient are computed without any ``K``-channel map::

        L_RW = mean_{b,i}( c_t + s_t (z_t − c_t) ) / K
        shifted: subtract min(z_t, c_t) per voxel (= min_k z_k)

    With a ``mask`` the mean runs over the annotated voxels of each image,
    ``Σ_{annotated i} Σ_k s·z / (K·#annotated)``, then over the images that have any.

    Args:
        shift_to_nonnegative: ``False`` (default) returns the paper's and reference code's value;
            ``True`` returns the shifted, non-negative form above (same gradients).
        regions: region mode (:class:`~nnunet_lossplug.losses.SegmentationLoss`, "Regions and ignore mask"):
            one logit ``x_r`` per region, ``p_r = sigmoid(x_r)``, each region the two-class softmax problem with
            logits ``(0, x_r)``::

                L_RW = mean_{b,r,i} ( p_r · z_r^in + (1 − p_r) · z_r^out ) / 2
                ∂L/∂x_r = p_r (1 − p_r) (z_r^in − z_r^out) / 2 / numel

            ``rw_map``: the regions' two-class maps, dense ``(B, R, 2, *spatial)`` (channel 0 ``z^out``,
            channel 1 ``z^in``, :func:`nnunet_lossplug.maps.region_maps`) or a ``RectifiedMap`` of the ``B·R``
            problems (:func:`~nnunet_lossplug.losses.regions.region_rectified_map`). A two-class map is always
            rectified: the gradient is negative inside the region and positive outside for every ``p``.

    Shape:
        ``logits`` and ``rw_map`` ``(B, K, *spatial)`` (2D or 3D; ``rw_map`` dense or a ``RectifiedMap`` of that
        shape); optional keyword ``mask`` ``(B, 1, *spatial)``, ``True`` at annotated voxels.

    Returns:
        A scalar, float32 (float64 for float64 logits); non-negative with ``shift_to_nonnegative=True``.
    """

    inputs = ("rw_map",)
    accepts_mask = True
    accepts_rectified = True
    supports_regions = True

    def __init__(self, shift_to_nonnegative: bool = False, regions: bool = False) -> None:
        super().__init__(regions=regions)
        self.shift_to_nonnegative = bool(shift_to_nonnegative)

    @property
    def nonnegative(self) -> bool:
        """Whether the returned value is guaranteed ``>= 0`` (only with ``shift_to_nonnegative=True``)."""
        return self.shift_to_nonnegative

    def forward(self, logits: Tensor, rw_map: Tensor | RectifiedMap, mask: Tensor | None = None) -> Tensor:
        """Return ``mean(softmax(logits) * rw_map)`` (shifted to ``>= 0`` if configured; masked if given)."""
        if self.regions and isinstance(rw_map, RectifiedMap):
            return self._rectified_regions(logits, rw_map, mask)
        if self.regions:
            region_logits = logits
            logits, mask = region_problem(logits, mask)
            rw_map = two_class_map(rw_map, region_logits)
        else:
            mask = prepare_mask(mask, logits)
        logits = prepare_logits(logits)
        with full_precision(logits.device):
            if isinstance(rw_map, RectifiedMap):
                return self._rectified(logits, rw_map, mask)
            rw_map = prepare_map(rw_map, logits)
            if self.shift_to_nonnegative:
                rw_map = rw_map - rw_map.amin(dim=1, keepdim=True)
            probs = torch.softmax(logits, dim=1)
            return masked_voxel_mean(probs * rw_map, mask)

    def _rectified_regions(self, logits: Tensor, rw_map: RectifiedMap, mask: Tensor | None) -> Tensor:
        """Region mode with a rectified map, without building the two-class logits.

        For the two-class problem with logits ``(0, x)``, the own side's probability is ``s_t = sigmoid(±x)``
        (``+`` inside, ``−`` outside); the value is ``mean_{b,r,i}(c_t + s_t (z_t − c_t)) / 2`` as in
        :meth:`_rectified`, with the same gradient.
        """
        mask = prepare_mask(mask, logits)
        logits = logits.to(compute_dtype(logits.dtype))
        batch, regions, *spatial = logits.shape
        if tuple(rw_map.shape) != (batch * regions, 2, *spatial):
            raise ValueError(
                f"in region mode rw_map (a rectified map of shape {tuple(rw_map.shape)}) must describe the "
                f"{batch}·{regions} two-class problems of logits {tuple(logits.shape)}: shape "
                f"{(batch * regions, 2, *spatial)} (see region_rectified_map)."
            )
        with full_precision(logits.device):
            true_value, other_value = rw_map.values(logits.dtype, logits.device)
            inside = rw_map.labels.to(logits.device).reshape(logits.shape) == 1
            s_t = torch.sigmoid(torch.where(inside, logits, -logits))
            true_value, other_value = true_value.reshape(logits.shape), other_value.reshape(logits.shape)
            per_voxel = other_value + s_t * (true_value - other_value)
            if self.shift_to_nonnegative:
                per_voxel = per_voxel - torch.minimum(true_value, other_value)
            return masked_voxel_mean(per_voxel, mask) / 2

    def _rectified(self, logits: Tensor, rw_map: RectifiedMap, mask: Tensor | None) -> Tensor:
        rw_map.check_against(logits)
        true_value, other_value = rw_map.values(logits.dtype, logits.device)
        labels = unmasked_labels(rw_map.labels.to(logits.device), mask)
        s_t = true_class_log_softmax(logits, labels).exp()
        per_voxel = other_value + s_t * (true_value - other_value)
        if self.shift_to_nonnegative:
            per_voxel = per_voxel - torch.minimum(true_value, other_value)
        return masked_voxel_mean(per_voxel, mask) / rw_map.num_classes
