"""Soft Dice losses of Nguyen et al. 2019, Shen et al. 2018 and Liu & Fu 2018 in one module with uniform arguments."""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
from torch import Tensor

from ._inputs import compute_dtype, full_precision, one_hot_target, prepare_logits
from .distributed import global_sum, resolve_ddp
from .regions import prepare_mask, region_labels, unmasked_labels
from .segmentation_loss import SegmentationLoss

__all__ = ["DiceLoss"]


class DiceLoss(SegmentationLoss):
    """Soft Dice loss on the softmax: per-image or SA (batch) Dice, squared denominator, class weights.

    With ``s = softmax(logits)`` and ``y`` the one-hot target, for each class ``k`` of the summed classes
    ``C`` (all ``K`` classes, or ``1..K-1`` when ``do_bg=False``)::

        D_{b,k} = (2 Σ_i s·y + smooth) / (Σ_i s + Σ_i y + smooth)      # sums over the voxels i of image b
        L       = mean_b (1/|C|) Σ_{k∈C} w_k (1 − D_{b,k})             # w_k = 1 unless class_weights

    - ``batch_dice=False``: **stochastic (per-image) Dice**, Nguyen et al. 2019, eq. 1-2: ``D_{b,k}`` per
      image, averaged over the ``B`` images and the classes.
    - ``batch_dice=True``: **Stochastic Aggregated Dice (SA Dice)**, Nguyen et al. 2019, eq. 4-5: the sums run
      over the batch *and* the voxels before the ratio, ``D_k = 2 Σ_b Σ_i s y / (Σ_b Σ_i s + Σ_b Σ_i y)``, and
      ``L = (1/|C|) Σ_k w_k (1 − D_k)``. An image without target in a batch with targets still receives a
      gradient (Nguyen et al. 2019, Sec. III-B/C); with per-image Dice and ``smooth=0`` it receives none.
      Under ``torch.distributed`` the sums run over the global batch (all ranks), see ``ddp``.
    - ``squared=True``: the V-Net denominator of the DSC loss of Liu & Fu 2018,
      ``1 − 2 Σ s y / (Σ s² + Σ y²)``.
    - ``class_weights``: the multi-class Dice of Shen et al. 2018, eq. 6, ``L_MD = (1/L) Σ_l w_l L_DSC,l``,
      with the weights of their eq. 3-5 from :func:`~nnunet_lossplug.losses.dice_class_weights`. Shen et al.
      write ``L_DSC = −D``; the "1 − D" form used here differs by the constant ``(1/L) Σ_l w_l`` only (same
      gradients) and keeps the loss non-negative.

    Empty class: with ``smooth=0`` a class absent from an image (per-image) or from the batch (SA Dice)
    has ``D = 0`` whenever the prediction puts any mass on it, so its term is the constant ``w_k`` with zero
    gradient; with ``smooth > 0`` its term ``1 − smooth/(Σ s + smooth)`` pushes its probabilities down.

    Args:
        batch_dice: ``False`` (default): per-image Dice, Nguyen et al. 2019, eq. 1-2, the formula of Shen et al.
            2018, Valverde & Tohka 2022 and Liu & Fu 2018. ``True``: SA Dice, Nguyen et al. 2019, eq. 4-5
            (nnU-Net's ``batch_dice``).
        do_bg: include the background channel 0 in the class average. Default ``True``: the ``L`` of Shen et
            al. 2018 counts the background and the reference Dice of Valverde & Tohka 2022 includes it (nnU-Net
            uses ``False``).
        smooth: added to numerator and denominator. Default ``0``: the papers' exact formula (Nguyen et al.
            2019 report that smoothing does not cure the flat gradient of no-target images). nnU-Net uses 1e-5.
            When a denominator is exactly 0 (class absent and its softmax underflowed to 0, only possible
            with ``smooth=0``) the Dice of that term is defined as 1, the limit for ``smooth → 0`` of two
            empty sets agreeing; no NaN is produced in the forward or backward pass.
        squared: square ``s`` and ``y`` in the denominator (Liu & Fu 2018 / V-Net). Default ``False``.
        class_weights: ``None`` (default, uniform weights ``w_k = 1``) or a tensor/sequence of ``K``
            non-negative weights indexed by class label (entry 0 = background; it is dropped with
            ``do_bg=False``).
        ddp: all-reduce the SA Dice sums over ``torch.distributed`` ranks. ``None`` (default): do so when
            a process group with more than one rank is initialised; ``False``: never (e.g. evaluation on a
            single rank); ``True``: always (error without a process group). Ignored for per-image Dice,
            whose mean over the global batch is the average of the ranks' means (DDP's gradient
            averaging). See :mod:`nnunet_lossplug.losses.distributed` for the gradient scaling.
        regions: region mode (:class:`~nnunet_lossplug.losses.SegmentationLoss`, "Regions and ignore mask"):
            ``p_r = sigmoid(x_r)`` against the binary target ``y_r`` in the formulas above, every region a
            class (there is no background channel, so ``do_bg`` has no effect; ``class_weights`` has ``R``
            entries, e.g. region voxel counts over the training set). This is nnU-Net's own region-based
            ``MemoryEfficientSoftDiceLoss`` with ``apply_nonlin=sigmoid``. With a ``mask`` the ignored voxels
            are dropped from every sum (``s`` and ``y`` are multiplied by it).

    Shape:
        ``logits`` ``(B, K, *spatial)`` (2D or 3D); ``target`` label map ``(B, 1, *spatial)`` or one-hot
        ``(B, K, *spatial)``; optional keyword ``mask`` ``(B, 1, *spatial)``, ``True`` at annotated voxels.

    Returns:
        A non-negative scalar, float32 (float64 for float64 logits).
    """

    nonnegative = True
    accepts_mask = True
    supports_regions = True

    class_weights: Tensor | None

    def __init__(
        self,
        batch_dice: bool = False,
        do_bg: bool = True,
        smooth: float = 0.0,
        squared: bool = False,
        class_weights: Tensor | Sequence[float] | None = None,
        ddp: bool | None = None,
        regions: bool = False,
    ) -> None:
        super().__init__(regions=regions)
        if not (isinstance(smooth, (int, float)) and math.isfinite(smooth) and smooth >= 0):
            raise ValueError(f"smooth must be a finite number >= 0, got {smooth!r}.")
        self.batch_dice = bool(batch_dice)
        self.do_bg = bool(do_bg)
        self.smooth = float(smooth)
        self.squared = bool(squared)
        self.ddp = ddp
        weights = None
        if class_weights is not None:
            weights = torch.as_tensor(class_weights).detach().to(torch.float64).clone()
            if weights.ndim != 1 or weights.numel() < 1:  # the count is checked against the logits in forward
                raise ValueError(
                    f"class_weights must be 1-D with one weight per class (K entries, background first; R entries "
                    f"in region mode), got shape {tuple(weights.shape)}."
                )
            if not bool(torch.all(torch.isfinite(weights))) or bool(torch.any(weights < 0)):
                raise ValueError(f"class_weights must be finite and non-negative, got {weights.tolist()}.")
        # not persistent: the weights are configuration, not state to restore from a checkpoint
        self.register_buffer("class_weights", weights, persistent=False)

    def forward(self, logits: Tensor, target: Tensor, mask: Tensor | None = None) -> Tensor:
        """Return the Dice loss of ``logits`` ``(B, K, *spatial)`` against a label map or one-hot target."""
        mask = prepare_mask(mask, logits)
        if self.regions:
            return self._dice(*self._region_inputs(logits, target), mask)
        logits = prepare_logits(logits)
        target = unmasked_labels(target, mask)
        with full_precision(logits.device):
            onehot = one_hot_target(target, logits)
            probs = torch.softmax(logits, dim=1)
            if not self.do_bg:
                probs, onehot = probs[:, 1:], onehot[:, 1:]
            return self._dice(probs, onehot, mask)

    @staticmethod
    def _region_inputs(logits: Tensor, target: Tensor) -> tuple[Tensor, Tensor]:
        """``(sigmoid(logits), y)`` of the regions, in the compute dtype."""
        labels = region_labels(target, logits)  # checked shape; binary values (NaN if not, with deferred checks)
        logits = logits.to(compute_dtype(logits.dtype))
        with full_precision(logits.device):
            return torch.sigmoid(logits), labels.reshape(logits.shape).to(logits.dtype)

    def _dice(self, probs: Tensor, onehot: Tensor, mask: Tensor | None) -> Tensor:
        """The Dice loss of probabilities against targets, both ``(B, C, *spatial)`` over the summed classes."""
        summed_classes = probs.shape[1]
        num_classes = summed_classes + (0 if self.do_bg or self.regions else 1)
        if self.class_weights is not None and self.class_weights.numel() != num_classes:
            found = f"R={num_classes} regions" if self.regions else f"K={num_classes} classes"
            each = "region" if self.regions else "class, background first"
            raise ValueError(
                f"class_weights has {self.class_weights.numel()} entries but the logits have {found}; give "
                f"one weight per {each}."
            )
        with full_precision(probs.device):
            if mask is not None:
                probs, onehot = probs * mask, onehot * mask
            spatial = tuple(range(2, probs.ndim))
            intersect = (probs * onehot).sum(spatial)
            pred_volume = (probs * probs if self.squared else probs).sum(spatial)
            true_volume = (onehot * onehot if self.squared else onehot).sum(spatial)
            if self.batch_dice:
                sums = torch.stack((intersect.sum(0), pred_volume.sum(0), true_volume.sum(0)))
                if resolve_ddp(self.ddp):
                    sums = global_sum(sums)
                intersect, pred_volume, true_volume = sums.unbind(0)
            dice = _dice_ratio(intersect, pred_volume + true_volume, self.smooth)
            per_class_loss = 1.0 - dice  # (B, C) per-image or (C,) aggregated
            if self.class_weights is not None:
                weights = self.class_weights.to(device=probs.device, dtype=probs.dtype)
                per_class_loss = per_class_loss * (weights if self.do_bg or self.regions else weights[1:])
            return per_class_loss.mean()


def _dice_ratio(intersect: Tensor, volume_sum: Tensor, smooth: float) -> Tensor:
    """``(2·I + smooth) / (volume_sum + smooth)``, defined as 1 where the denominator is exactly 0."""
    numerator = 2.0 * intersect + smooth
    denominator = volume_sum + smooth
    empty = denominator <= 0
    safe_denominator = torch.where(empty, torch.ones_like(denominator), denominator)
    return torch.where(empty, torch.ones_like(numerator), numerator / safe_denominator)
