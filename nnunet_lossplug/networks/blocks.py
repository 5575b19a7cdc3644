"""Building blocks shared by the two architectures: layer factory, residual blocks, He initialisation.

Everything here is pure torch. The layer factory :class:`LayerOps` maps a convolution class
(``nn.Conv2d`` or ``nn.Conv3d``, as nnU-Net's plans store it) to the matching normalisation,
transposed convolution and pooling classes, so that one network definition serves 2D and 3D.

Bias convention (both networks): a convolution has a bias only if its output can reach the logits
without passing through a normalisation first. Instance (and batch) normalisation subtracts the
per-channel mean, which removes any constant added per channel, so a bias that meets a normalisation on
every path is a dead parameter with an exactly zero gradient (the normalisation's affine shift plays its
role). In the post-activation residual blocks of the RDD network the identity path carries a bias past
the normalisations to a non-linearity (transposed convolutions keep theirs); in the unified U-Net, whose
pre-activation blocks normalise every path, only the segmentation heads have a bias.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import nn

from nnunet_lossplug.networks.geometry import per_axis, same_padding, spatial_dims_of

SUPPORTED_CONV_OPS: tuple[type[nn.Module], ...] = (nn.Conv2d, nn.Conv3d)


@dataclass(eq=False)
class LayerOps:
    """Layer factory for one spatial dimensionality.

    ``conv``: ``nn.Conv2d`` or ``nn.Conv3d``; ``norm``/``norm_kwargs``: normalisation class and its keyword
    arguments (default: the matching ``InstanceNorm`` with ``eps=1e-5, affine=True``, nnU-Net's default);
    ``nonlin``/``nonlin_kwargs``: activation (default ``LeakyReLU(negative_slope=1e-2, inplace=True)``,
    nnU-Net's default). The transposed-convolution and pooling classes follow from ``conv``.
    """

    conv: type[nn.Module]
    norm: type[nn.Module] | None = None
    norm_kwargs: dict[str, Any] = field(default_factory=dict)
    nonlin: type[nn.Module] | None = None
    nonlin_kwargs: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.dims = spatial_dims_of(self.conv)
        if self.norm is None:
            self.norm = nn.InstanceNorm3d if self.dims == 3 else nn.InstanceNorm2d
            self.norm_kwargs = {"eps": 1e-5, "affine": True, **(self.norm_kwargs or {})}
        if self.nonlin is None:
            self.nonlin = nn.LeakyReLU
            self.nonlin_kwargs = {"negative_slope": 1e-2, "inplace": True, **(self.nonlin_kwargs or {})}
        self.norm_kwargs = dict(self.norm_kwargs or {})
        self.nonlin_kwargs = dict(self.nonlin_kwargs or {})

    def conv_layer(
        self,
        in_channels: int,
        out_channels: int,
        kernel_size: Sequence[int],
        stride: Sequence[int] | int = 1,
        dilation: int = 1,
        bias: bool = True,
    ) -> nn.Module:
        """Convolution with padding ``dilation * (k - 1) / 2``: only the stride changes the spatial size."""
        kernel = per_axis(kernel_size, self.dims, "kernel_size")
        return self.conv(
            in_channels,
            out_channels,
            kernel,
            stride=per_axis(stride, self.dims, "stride"),
            padding=same_padding(kernel, dilation),
            dilation=dilation,
            bias=bias,
        )

    def transposed_conv(
        self, in_channels: int, out_channels: int, stride: Sequence[int], bias: bool = True
    ) -> nn.Module:
        """Transposed convolution with kernel = stride: exact ``stride``-fold upsampling, as in nnU-Net."""
        transposed = nn.ConvTranspose3d if self.dims == 3 else nn.ConvTranspose2d
        factor = per_axis(stride, self.dims, "stride")
        return transposed(in_channels, out_channels, factor, stride=factor, bias=bias)

    def max_pool(self, stride: Sequence[int]) -> nn.Module:
        """Max pooling with kernel = stride (non-overlapping windows)."""
        pool = nn.MaxPool3d if self.dims == 3 else nn.MaxPool2d
        factor = per_axis(stride, self.dims, "stride")
        return pool(factor, stride=factor)

    def global_avg_pool(self) -> nn.Module:
        """Average over all spatial positions, keeping singleton spatial axes."""
        return nn.AdaptiveAvgPool3d(1) if self.dims == 3 else nn.AdaptiveAvgPool2d(1)

    def norm_layer(self, channels: int) -> nn.Module:
        """The configured normalisation for ``channels`` feature maps."""
        return self.norm(channels, **self.norm_kwargs)

    def activation(self) -> nn.Module:
        """The configured non-linearity."""
        return self.nonlin(**self.nonlin_kwargs)

    def norm_act(self, channels: int) -> nn.Sequential:
        """``nonlin(norm(x))``."""
        return nn.Sequential(self.norm_layer(channels), self.activation())


class PreActivationResidualBlock(nn.Module):
    """Pre-activation residual block (He et al., ECCV 2016, "Identity mappings in deep residual networks").

    ``y = x + conv2(act(norm2(conv1(act(norm1(x))))))`` with two ``kernel_size`` convolutions that keep
    the number of channels and the spatial size. The identity path is a plain addition, so the block
    can represent the identity map (zero ``conv2`` weights give ``y = x``). Used by the unified U-Net
    (Nguyen et al. 2019, Sec. IV-A: "residual connections [10]"; pre-activation blocks as in its ref. [5]), where
    every block output is normalised before it is used, so neither convolution has a bias (see the
    module's bias convention).
    """

    def __init__(self, ops: LayerOps, channels: int, kernel_size: Sequence[int]) -> None:
        super().__init__()
        self.norm_act1 = ops.norm_act(channels)
        self.conv1 = ops.conv_layer(channels, channels, kernel_size, bias=False)  # followed by norm2
        self.norm_act2 = ops.norm_act(channels)
        self.conv2 = ops.conv_layer(channels, channels, kernel_size, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.conv2(self.norm_act2(self.conv1(self.norm_act1(x))))


class ResidualBlock(nn.Module):
    """Post-activation residual block (He et al., CVPR 2016) that may downsample with a strided convolution.

    ``y = act(norm2(conv2(act(norm1(conv1_s(x))))) + shortcut(x))`` where ``conv1_s`` has stride ``s``.
    The shortcut downsamples by max pooling (kernel = stride = ``s``) and, when the channel count
    changes, projects with a 1x1 convolution and a normalisation (the ResNet-D shortcut of He et al.,
    CVPR 2019, with max instead of average pooling). With ``s = 1`` and equal channels it is the identity.

    This is how the RDD network's encoder combines "convolution layers with more than one stride" and
    "pooling layers [that] do down-sampling" inside residual blocks (Liu & Fu 2018, Sec. 1.2).
    """

    def __init__(
        self,
        ops: LayerOps,
        in_channels: int,
        out_channels: int,
        kernel_size: Sequence[int],
        stride: Sequence[int] | int = 1,
    ) -> None:
        super().__init__()
        stride = per_axis(stride, ops.dims, "stride")
        self.conv1 = ops.conv_layer(in_channels, out_channels, kernel_size, stride=stride, bias=False)
        self.norm_act1 = ops.norm_act(out_channels)
        self.conv2 = ops.conv_layer(out_channels, out_channels, kernel_size, bias=False)
        self.norm2 = ops.norm_layer(out_channels)
        shortcut: list[nn.Module] = []
        if any(s > 1 for s in stride):
            shortcut.append(ops.max_pool(stride))
        if in_channels != out_channels:
            shortcut += [
                ops.conv_layer(in_channels, out_channels, 1, bias=False),
                ops.norm_layer(out_channels),
            ]
        self.shortcut = nn.Sequential(*shortcut)  # empty Sequential = identity
        self.act = ops.activation()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        residual = self.norm2(self.conv2(self.norm_act1(self.conv1(x))))
        return self.act(residual + self.shortcut(x))


HE_INIT_CLASSES: tuple[type[nn.Module], ...] = (nn.Conv2d, nn.Conv3d, nn.ConvTranspose2d, nn.ConvTranspose3d)


def he_initialize(module: nn.Module, negative_slope: float = 1e-2) -> None:
    """He (Kaiming) normal initialisation for leaky-ReLU networks, as nnU-Net does.

    For 2D/3D (transposed) convolutions: ``w ~ N(0, 2 / ((1 + a^2) * fan_in))`` with ``a = negative_slope``
    (``torch.nn.init.kaiming_normal_``), bias = 0; other modules are left unchanged (normalisation layers
    keep weight 1, bias 0). Same behaviour as ``InitWeights_He(1e-2)`` in
    ``dynamic_network_architectures.initialization.weight_init``; meant for ``network.apply``.
    """
    if isinstance(module, HE_INIT_CLASSES):
        nn.init.kaiming_normal_(module.weight, a=negative_slope)
        if module.bias is not None:
            nn.init.constant_(module.bias, 0)
