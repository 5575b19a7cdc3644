"""Small instances of the papers' two networks in 2D and 3D, shared by the network tests."""

from __future__ import annotations

import torch
from torch import nn

from nnunet_lossplug.networks.rdd_net import RDDNet
from nnunet_lossplug.networks.unified_unet import UnifiedUNet

RDD_STRIDES_2D = [[1, 1], [2, 2], [2, 2], [2, 2], [2, 2]]
RDD_KERNELS_2D = [[3, 3]] * 5
RDD_FEATURES_2D = (4, 8, 16, 16, 16)
RDD_STRIDES_3D = [[1, 1, 1], [1, 2, 2], [2, 2, 2], [2, 2, 2]]
RDD_KERNELS_3D = [[1, 3, 3], [3, 3, 3], [3, 3, 3], [3, 3, 3]]
RDD_FEATURES_3D = (4, 8, 16, 16)

UNET_STRIDES_2D = [[1, 1], [2, 2], [2, 2], [2, 2]]
UNET_KERNELS_2D = [[3, 3]] * 4
# anisotropic 3D plan as nnU-Net makes for thick slices: no pooling / 1x3x3 kernels along z at first
UNET_STRIDES_3D = [[1, 1, 1], [1, 2, 2], [2, 2, 2], [2, 2, 2]]
UNET_KERNELS_3D = [[1, 3, 3], [1, 3, 3], [3, 3, 3], [3, 3, 3]]


def rdd_net(dims: int, deep_supervision: bool = True, **kwargs) -> RDDNet:
    """A small RDD network (Liu & Fu 2018), 1 input channel, 3 classes, He-initialised with seed 0."""
    torch.manual_seed(0)
    if dims == 3:
        args = (nn.Conv3d, RDD_KERNELS_3D, RDD_STRIDES_3D, RDD_FEATURES_3D)
    else:
        args = (nn.Conv2d, RDD_KERNELS_2D, RDD_STRIDES_2D, RDD_FEATURES_2D)
    net = RDDNet(1, 3, *args, deep_supervision=deep_supervision, **kwargs)
    net.apply(net.initialize)
    return net


def unified_unet(dims: int, deep_supervision: bool = True, features=(4, 8, 12, 16), classes: int = 3) -> UnifiedUNet:
    """A small unified U-Net (Nguyen et al. 2019), 1 input channel, He-initialised with seed 0."""
    torch.manual_seed(0)
    strides, kernels = (UNET_STRIDES_3D, UNET_KERNELS_3D) if dims == 3 else (UNET_STRIDES_2D, UNET_KERNELS_2D)
    net = UnifiedUNet(1, classes, nn.Conv3d if dims == 3 else nn.Conv2d, kernels, strides,
                      features_per_level=features, deep_supervision=deep_supervision)
    net.apply(net.initialize)
    return net
