"""Segmentation losses of the four papers as plain PyTorch modules (SPEC §1-3); no nnU-Net import.

Every loss takes raw logits ``(B, K, *spatial)`` (2D or 3D), applies the softmax itself, and declares in
``inputs`` what its ``forward`` takes after the logits (``"target"``: label map ``(B, 1, *spatial)`` or
one-hot ``(B, K, *spatial)``; ``"rw_map"``: a per-voxel map ``(B, K, *spatial)`` precomputed from the ground
truth). :func:`call_loss` dispatches on it. Low-precision inputs and autocast are computed in float32.

- :class:`RegionWiseLoss` — RW loss, paper 002 eq. (1)
- :class:`OneSidedHausdorffLoss` — one-sided HD loss, paper 002 Prop. 3
- :class:`DiceLoss` — per-image / SA Dice (paper 000), squared denominator (paper 003), class weights
  (paper 001) via :func:`dice_class_weights`
- :class:`CrossEntropyLoss`, :class:`FocalLoss`, :class:`RWWeightedCrossEntropyLoss`
- :class:`LossMixture` — "equal" / "gradual" mixtures, paper 002 Sec. 4.4
- :class:`RectifiedMap` — the O(N) form of a rectified map (RRW, AC, Cao) the RW losses take directly
- :class:`DeepSupervisionLoss`, :func:`deep_supervision_weights` — WMLA, paper 000 eq. (6)

Region-based datasets and ignore labels (SPEC §4, :mod:`~nnunet_lossplug.losses.regions`): every loss above
takes ``regions=True`` (one sigmoid per region, each region the two-class softmax problem with logits
``(0, x_r)``) and ``forward(..., mask=m)`` (``(B, 1, *spatial)``, ``True`` at annotated voxels).
"""

from .calling import INPUT_VOCABULARY, call_loss
from .class_weights import dice_class_weights
from .cross_entropy import CrossEntropyLoss, FocalLoss, RWWeightedCrossEntropyLoss
from .deep_supervision import DeepSupervisionLoss, deep_supervision_weights
from .dice import DiceLoss
from .hausdorff import OneSidedHausdorffLoss
from .mixture import LossMixture, gradual_alpha
from .rectified_map import RectifiedMap
from .region_wise import RegionWiseLoss

__all__ = [
    "INPUT_VOCABULARY",
    "CrossEntropyLoss",
    "DeepSupervisionLoss",
    "DiceLoss",
    "FocalLoss",
    "LossMixture",
    "OneSidedHausdorffLoss",
    "RWWeightedCrossEntropyLoss",
    "RectifiedMap",
    "RegionWiseLoss",
    "call_loss",
    "deep_supervision_weights",
    "dice_class_weights",
    "gradual_alpha",
]
