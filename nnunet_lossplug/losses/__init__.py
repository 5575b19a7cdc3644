"""Segmentation losses of the four papers as plain PyTorch modules; no nnU-Net import.

Every loss subclasses :class:`SegmentationLoss`, which declares the calling protocol once: it takes raw
logits ``(B, K, *spatial)`` (2D or 3D), applies the softmax itself, and declares in ``inputs`` what its
``forward`` takes after the logits (``"target"``: label map ``(B, 1, *spatial)`` or one-hot
``(B, K, *spatial)``; ``"rw_map"``: a per-voxel map ``(B, K, *spatial)`` precomputed from the ground truth).
:func:`call_loss` dispatches on it. Low-precision inputs and autocast are computed in float32.

- :class:`RegionWiseLoss` — RW loss, Valverde & Tohka 2022, eq. 1
- :class:`OneSidedHausdorffLoss` — one-sided HD loss, Valverde & Tohka 2022, Prop. 3
- :class:`DiceLoss` — per-image / SA Dice (Nguyen et al. 2019), squared denominator (Liu & Fu 2018), class
  weights (Shen et al. 2018) via :func:`dice_class_weights`
- :class:`CrossEntropyLoss`, :class:`FocalLoss`, :class:`RWWeightedCrossEntropyLoss`
- :class:`LossMixture` — "equal" / "gradual" mixtures, Valverde & Tohka 2022, Sec. 4.4
- :class:`RectifiedMap` — the O(N) form of a rectified map (RRW, AC, Cao) the RW losses take directly
- :class:`DeepSupervisionLoss`, :func:`deep_supervision_weights` — WMLA, Nguyen et al. 2019, eq. 6

Region-based datasets and ignore labels (:class:`SegmentationLoss`, "Regions and ignore mask";
:mod:`~nnunet_lossplug.losses.regions`): every loss above but the two wrappers takes ``regions=True`` and
``forward(..., mask=m)``; the wrappers pass both on to their components.

Inside :func:`deferred_input_checks` (and under ``torch.compile``) a bad target makes the loss NaN instead of
raising, so that no check reads the device in the middle of a training step; eagerly it raises at once.
"""

from ._inputs import deferred_input_checks
from .calling import INPUT_VOCABULARY, call_loss
from .class_weights import dice_class_weights
from .cross_entropy import CrossEntropyLoss, FocalLoss, RWWeightedCrossEntropyLoss
from .deep_supervision import DeepSupervisionLoss, deep_supervision_weights
from .dice import DiceLoss
from .hausdorff import OneSidedHausdorffLoss
from .mixture import LossMixture, gradual_alpha
from .rectified_map import RectifiedMap
from .region_wise import RegionWiseLoss
from .segmentation_loss import PROTOCOL_FLAGS, SegmentationLoss

__all__ = [
    "INPUT_VOCABULARY",
    "PROTOCOL_FLAGS",
    "CrossEntropyLoss",
    "DeepSupervisionLoss",
    "DiceLoss",
    "FocalLoss",
    "LossMixture",
    "OneSidedHausdorffLoss",
    "RWWeightedCrossEntropyLoss",
    "RectifiedMap",
    "RegionWiseLoss",
    "SegmentationLoss",
    "call_loss",
    "deep_supervision_weights",
    "deferred_input_checks",
    "dice_class_weights",
    "gradual_alpha",
]
