"""Dense dilated convolution block: the bottleneck of the RDD network (Liu & Fu 2018, Sec. 1.2).

Liu & Fu 2018 replaces ASPP's parallel dilated branches (Chen et al., DeepLab v3) by a densely connected
stack (DenseASPP, Yang et al., CVPR 2018): every layer receives the concatenation of the block input and
all earlier layers' outputs; the stack ends with an image-level (globally pooled) feature.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from nnunet_lossplug.networks.blocks import LayerOps
from nnunet_lossplug.networks.geometry import per_axis

DEFAULT_DILATION_RATES: tuple[int, ...] = (1, 2, 3)
"""Dilation rates of the dense dilated block, chosen for nnU-Net's bottlenecks.

nnU-Net's planner halves an axis only while it has at least 8 voxels
(``2 * UNet_featuremap_min_edge_length``, ``network_topology.get_pool_and_conv_props``), so the
bottleneck is typically 4 to 7 voxels along every pooled axis. A 3-tap kernel at rate ``d`` reads the
voxels ``-d, 0, +d`` away; at ``d >= 4`` every off-centre tap on a 4-voxel axis lies in the zero padding,
so DenseASPP's rates (3, 6, 12, 18, 24, chosen for feature maps of 64 and more voxels per axis) would
degenerate into 1x1 convolutions along such axes. Rates 1, 2, 3 increase (as the paper asks), share no common
factor (no gridding holes when stacked; Wang et al., WACV 2018, "hybrid dilated convolution"), and the
densest path through the stack reaches ``1 + 2 + 3 = 6`` voxels to either side (a 13-voxel window) which
covers a 7-voxel bottleneck from every position; the image-level feature adds the global context.
"""


def _check_rates(dilation_rates: Sequence[int]) -> tuple[int, ...]:
    rates = tuple(int(r) for r in dilation_rates)
    if not rates or any(r < 1 for r in rates) or any(b <= a for a, b in zip(rates, rates[1:], strict=False)):
        raise ValueError(
            f"dilation_rates must be a non-empty, strictly increasing sequence of positive ints "
            f"(Liu & Fu 2018: dilated convolutions at increasing rates); received {tuple(dilation_rates)}. "
            f"Default: {DEFAULT_DILATION_RATES}."
        )
    return rates


class DenseDilatedBlock(nn.Module):
    """Densely connected dilated convolutions plus an image-level feature (Liu & Fu 2018, Sec. 1.2; DenseASPP).

    With input ``x`` (``C`` channels), rates ``r_1 < ... < r_n`` and growth ``g``:

    - dilated layer ``i``: ``y_i = act(norm(conv_{k, r_i}(cat[x, y_1, ..., y_{i-1}])))`` (``g`` channels,
      'same' padding ``r_i (k - 1) / 2``, so the spatial size is kept);
    - image-level feature: ``p = W_p GAP(cat[x, y_1, ..., y_n]) + b_p`` (``C`` values per image, a
      1x1 convolution of the global average; it too receives the concatenation of all earlier layers);
    - fusion: ``out = act(norm(W_f * cat[x, y_1, ..., y_n]) + p)`` (1x1 convolution, ``C`` channels).

    The image-level feature is broadcast over space and added *after* the fusion's normalisation. A
    spatially constant feature map that went through instance normalisation would be erased (the
    normalisation subtracts the per-channel spatial mean), so DeepLab's "concatenate, then 1x1 conv +
    norm" would make it a dead branch here; added after the normalisation it acts as a per-image,
    per-channel bias before the non-linearity, which is what a concatenated constant map contributes
    to a 1x1 convolution.

    Args:
        ops: layer factory (2D/3D, normalisation, non-linearity).
        channels: ``C``, input and output channels.
        kernel_size: kernel of the dilated convolutions (the plan's bottleneck kernel; 3 per axis by
            default). A size-1 axis is not dilated in effect (anisotropic 3D plans).
        dilation_rates: increasing rates, default :data:`DEFAULT_DILATION_RATES` = (1, 2, 3), see there.
        growth_channels: ``g``, channels added per dilated layer; default ``max(1, C // 4)`` (DenseASPP
            uses 64 per layer on a 512-channel reduction, i.e. C/8 to C/4).
    """

    def __init__(
        self,
        ops: LayerOps,
        channels: int,
        kernel_size: Sequence[int] | int = 3,
        dilation_rates: Sequence[int] = DEFAULT_DILATION_RATES,
        growth_channels: int | None = None,
    ) -> None:
        super().__init__()
        self.dilation_rates = _check_rates(dilation_rates)
        growth = max(1, channels // 4) if growth_channels is None else int(growth_channels)
        if growth < 1:
            raise ValueError(f"growth_channels must be a positive int or None; received {growth_channels!r}.")
        kernel = per_axis(kernel_size, ops.dims, "kernel_size")
        self.growth_channels = growth
        self.dilated_layers = nn.ModuleList()
        in_channels = channels
        for rate in self.dilation_rates:
            self.dilated_layers.append(
                nn.Sequential(
                    ops.conv_layer(in_channels, growth, kernel, dilation=rate, bias=False),
                    ops.norm_act(growth),
                )
            )
            in_channels += growth
        self.image_pool = nn.Sequential(
            ops.global_avg_pool(), ops.conv_layer(in_channels, channels, 1, bias=True)
        )
        self.fusion = nn.Sequential(
            ops.conv_layer(in_channels, channels, 1, bias=False), ops.norm_layer(channels)
        )
        self.act = ops.activation()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        features = [x]
        for layer in self.dilated_layers:
            features.append(layer(torch.cat(features, dim=1)))
        dense = torch.cat(features, dim=1)
        return self.act(self.fusion(dense) + self.image_pool(dense))
