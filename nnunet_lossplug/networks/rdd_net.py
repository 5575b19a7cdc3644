"""The RDD network of Liu & Fu 2018 (Sec. 1.2): residual encoder-decoder, dense dilated bottleneck.

Liu & Fu 2018 describes: an encoder of residual blocks that extracts features with strided convolutions
and downsamples with pooling; a decoder of transposed convolutions ("deconvolution layers") and
residual blocks; long skips from each encoder stage to the decoder stage of the same resolution that are
*added* element-wise instead of concatenated as in U-Net; and a dense dilated convolution block
(DenseASPP-style) between the two. The paper gives no widths, depths or rates; here nnU-Net's plans
decide the number of stages, their widths, kernels and strides, and :mod:`dense_dilated` states the rates.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch
from torch import nn

from nnunet_lossplug.networks.blocks import LayerOps, ResidualBlock, he_initialize
from nnunet_lossplug.networks.dense_dilated import DEFAULT_DILATION_RATES, DenseDilatedBlock
from nnunet_lossplug.networks.geometry import check_first_stride_is_one, check_input, cumulative_scales


class RDDEncoder(nn.Module):
    """Encoder subnet: a stem ``act(norm(conv_k(x)))`` then, per stage ``s``, ``n_blocks[s]`` residual blocks.

    The first block of stage ``s >= 1`` downsamples: strided ``kernel_sizes[s]`` convolution on its main
    path, max pooling (+ 1x1 projection when the width changes) on its shortcut
    (:class:`~nnunet_lossplug.networks.blocks.ResidualBlock`). ``forward`` returns every stage's output.
    """

    def __init__(
        self,
        ops: LayerOps,
        input_channels: int,
        features: Sequence[int],
        kernel_sizes: Sequence[Sequence[int]],
        strides: Sequence[Sequence[int]],
        n_blocks_per_stage: Sequence[int],
    ) -> None:
        super().__init__()
        self.stem = nn.Sequential(
            ops.conv_layer(input_channels, features[0], kernel_sizes[0], bias=False),
            ops.norm_act(features[0]),
        )
        self.stages = nn.ModuleList()
        in_channels = features[0]
        for stage, (channels, kernel, stride, n_blocks) in enumerate(
            zip(features, kernel_sizes, strides, n_blocks_per_stage, strict=True)
        ):
            first = ResidualBlock(ops, in_channels, channels, kernel, stride=stride if stage else 1)
            rest = [ResidualBlock(ops, channels, channels, kernel) for _ in range(n_blocks - 1)]
            self.stages.append(nn.Sequential(first, *rest))
            in_channels = channels

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        x = self.stem(x)
        skips = []
        for stage in self.stages:
            x = stage(x)
            skips.append(x)
        return skips


class RDDDecoder(nn.Module):
    """Decoder subnet with long residual (additive) skips and a segmentation head per stage.

    Stage ``s`` (``s = L-2, ..., 0``): ``d_s = ResBlocks(ConvT(d_{s+1}) + e_s)`` where ``ConvT`` has
    kernel = stride = ``strides[s+1]`` (``features[s+1] -> features[s]``), ``e_s`` is the encoder output of
    stage ``s`` (a long residual connection, Liu & Fu 2018: "long residual connections element-wisely"
    instead of U-Net's concatenation) and ``d_{L-1}`` is the dense dilated block's output. Head
    ``S_s = W_s d_s + b_s`` (1x1 convolution, logits at stage ``s``'s resolution).

    ``deep_supervision`` (the attribute nnU-Net's ``set_deep_supervision_enabled`` sets): if true,
    ``forward`` returns ``[S_0, ..., S_{L-2}]`` (high -> low resolution, one per decoder stage, the
    same count and order as nnU-Net's ``PlainConvUNet``); else the tensor ``S_0``.
    """

    def __init__(
        self,
        ops: LayerOps,
        features: Sequence[int],
        kernel_sizes: Sequence[Sequence[int]],
        strides: Sequence[Sequence[int]],
        num_classes: int,
        n_blocks_per_stage: int,
        deep_supervision: bool,
    ) -> None:
        super().__init__()
        self.deep_supervision = deep_supervision
        self.upsamplers = nn.ModuleList()
        self.stages = nn.ModuleList()
        self.heads = nn.ModuleList()
        for stage in range(len(features) - 1):  # indexed by stage; forward runs them from L-2 down to 0
            channels = features[stage]
            self.upsamplers.append(ops.transposed_conv(features[stage + 1], channels, strides[stage + 1]))
            self.stages.append(
                nn.Sequential(
                    *(
                        ResidualBlock(ops, channels, channels, kernel_sizes[stage])
                        for _ in range(n_blocks_per_stage)
                    )
                )
            )
            self.heads.append(ops.conv_layer(channels, num_classes, 1, bias=True))

    def forward(self, skips: Sequence[torch.Tensor]) -> torch.Tensor | list[torch.Tensor]:
        x = skips[-1]
        outputs: list[torch.Tensor] = []
        for stage in reversed(range(len(self.stages))):
            x = self.stages[stage](self.upsamplers[stage](x) + skips[stage])
            if self.deep_supervision or stage == 0:
                outputs.append(self.heads[stage](x))
        outputs.reverse()
        if self.deep_supervision:
            return outputs
        return outputs[0]


class RDDNet(nn.Module):
    """RDD segmentation network of Liu & Fu 2018 (Sec. 1.2), 2D or 3D, nnU-Net compatible.

    ``RDDEncoder`` -> :class:`~nnunet_lossplug.networks.dense_dilated.DenseDilatedBlock` on the
    bottleneck -> ``RDDDecoder`` (see those classes for the formulas). With ``L = len(strides)`` stages,
    deep supervision on returns ``L - 1`` tensors, output ``s`` at scale ``1 / prod_{j <= s} strides[j]``
    (exactly nnU-Net's ``_get_deep_supervision_scales``); off, one tensor at input resolution.

    Args:
        input_channels, num_classes: channels in, logits out.
        conv_op: ``nn.Conv2d`` or ``nn.Conv3d``.
        kernel_sizes, strides, features_per_stage: one entry per stage (nnU-Net's plans).
        n_blocks_per_stage: encoder residual blocks per stage (int or one per stage); default 1.
        n_blocks_per_stage_decoder: decoder residual blocks per stage; default 1.
        dilation_rates: default (1, 2, 3), see ``dense_dilated.DEFAULT_DILATION_RATES``.
        growth_channels: dense dilated block growth; default ``features_per_stage[-1] // 4``.
        norm_op, norm_op_kwargs, nonlin, nonlin_kwargs: default instance norm and ``LeakyReLU(1e-2)``
            (nnU-Net's defaults; the paper does not name them).
        deep_supervision: initial value of ``decoder.deep_supervision``.
    """

    def __init__(
        self,
        input_channels: int,
        num_classes: int,
        conv_op: type[nn.Module],
        kernel_sizes: Sequence[Sequence[int]],
        strides: Sequence[Sequence[int]],
        features_per_stage: Sequence[int],
        n_blocks_per_stage: int | Sequence[int] = 1,
        n_blocks_per_stage_decoder: int = 1,
        dilation_rates: Sequence[int] = DEFAULT_DILATION_RATES,
        growth_channels: int | None = None,
        norm_op: type[nn.Module] | None = None,
        norm_op_kwargs: dict | None = None,
        nonlin: type[nn.Module] | None = None,
        nonlin_kwargs: dict | None = None,
        deep_supervision: bool = True,
    ) -> None:
        super().__init__()
        ops = LayerOps(conv_op, norm_op, norm_op_kwargs or {}, nonlin, nonlin_kwargs or {})
        n_stages = len(strides)
        if isinstance(n_blocks_per_stage, int):
            n_blocks_per_stage = [n_blocks_per_stage] * n_stages
        lengths = {
            "kernel_sizes": len(kernel_sizes),
            "features_per_stage": len(features_per_stage),
            "n_blocks_per_stage": len(n_blocks_per_stage),
        }
        if n_stages < 2 or any(n != n_stages for n in lengths.values()):
            raise ValueError(
                f"RDDNet needs at least 2 stages and one entry per stage in every per-stage argument; "
                f"received {n_stages} strides and {lengths}."
            )
        if min(n_blocks_per_stage) < 1 or n_blocks_per_stage_decoder < 1:
            raise ValueError(
                f"every stage needs at least one residual block; received "
                f"n_blocks_per_stage={list(n_blocks_per_stage)}, "
                f"n_blocks_per_stage_decoder={n_blocks_per_stage_decoder}."
            )
        self.strides = tuple(tuple(int(v) for v in s) for s in strides)
        check_first_stride_is_one(self.strides, "RDDNet")
        self.input_channels = input_channels
        self.num_classes = num_classes
        self.dims = ops.dims
        self.total_stride = tuple(int(v) for v in np.prod(self.strides, axis=0))
        self.encoder = RDDEncoder(
            ops, input_channels, features_per_stage, kernel_sizes, self.strides, n_blocks_per_stage
        )
        self.bottleneck = DenseDilatedBlock(
            ops, features_per_stage[-1], kernel_sizes[-1], dilation_rates, growth_channels
        )
        self.decoder = RDDDecoder(
            ops,
            features_per_stage,
            kernel_sizes,
            self.strides,
            num_classes,
            n_blocks_per_stage_decoder,
            deep_supervision,
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor | list[torch.Tensor]:
        check_input(x, self.dims, self.input_channels, self.total_stride, "RDDNet")
        skips = self.encoder(x)
        return self.decoder([*skips[:-1], self.bottleneck(skips[-1])])

    def deep_supervision_scales(self) -> list[list[float]]:
        """Per-axis scale of each deep-supervision output relative to the input, high -> low resolution."""
        return cumulative_scales(self.strides, len(self.strides) - 1)

    @staticmethod
    def initialize(module: nn.Module) -> None:
        """He initialisation (negative slope 1e-2) as nnU-Net's ``InitWeights_He(1e-2)``; for ``apply``."""
        he_initialize(module, 1e-2)
