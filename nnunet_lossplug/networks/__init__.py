"""Pure-torch architectures of Nguyen et al. 2019 and Liu & Fu 2018, pluggable into an unchanged nnU-Net v2.

- :class:`UnifiedUNet` (Nguyen et al. 2019): residual U-Net whose three highest-resolution segmentation maps are
  upsampled and summed; the per-level maps are the WMLA outputs.
- :class:`RDDNet` (Liu & Fu 2018): residual encoder-decoder with additive long skips and a dense dilated
  convolution bottleneck (:class:`DenseDilatedBlock`).
- :func:`build_unified_unet`, :func:`build_rdd_net`: builders with nnU-Net's network-hook signature.
- :func:`deep_supervision_scales`: the scales of the deep-supervision outputs, for the trainer.
"""

from nnunet_lossplug.networks.builders import (
    build_rdd_net,
    build_unified_unet,
    deep_supervision_scales,
    unified_unet_levels,
    unwrap_network,
)
from nnunet_lossplug.networks.dense_dilated import DEFAULT_DILATION_RATES, DenseDilatedBlock
from nnunet_lossplug.networks.plans import PlanGeometry, resolve_imports
from nnunet_lossplug.networks.rdd_net import RDDNet
from nnunet_lossplug.networks.unified_unet import UnifiedUNet

__all__ = [
    "DEFAULT_DILATION_RATES",
    "DenseDilatedBlock",
    "PlanGeometry",
    "RDDNet",
    "UnifiedUNet",
    "build_rdd_net",
    "build_unified_unet",
    "deep_supervision_scales",
    "resolve_imports",
    "unified_unet_levels",
    "unwrap_network",
]
