"""The unified U-Net of Nguyen et al. 2019 (Sec. III-A and IV-A; after Kayalibay et al. 2017).

Nguyen et al. 2019 adopts the U-Nets of its refs. [3] (Kayalibay et al., "CNN-based segmentation of medical imaging
data", arXiv:1701.03056) and [5] (Isensee et al., BraTS 2017, arXiv:1802.10508): 4 resolution levels,
16 feature maps at the first level doubling per level, instance normalisation, leaky ReLU, residual
connections, transposed convolutions for upsampling, and segmentation maps at the three
highest-resolution decoder levels that are upsampled and summed element-wise into the final output.
The per-level maps are the outputs of WMLA (Nguyen et al. 2019, Sec. III-D, eq. 6; docs/conventions.md#wmla).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from nnunet_lossplug.networks.blocks import LayerOps, PreActivationResidualBlock, he_initialize
from nnunet_lossplug.networks.geometry import check_first_stride_is_one, check_input, cumulative_scales

PAPER_LEVELS = 4
"""Resolution levels of the paper's network (Nguyen et al. 2019, Sec. IV-A)."""
PAPER_BASE_FEATURES = 16
"""Feature maps at the first level, doubled per level (Nguyen et al. 2019, Sec. IV-A)."""
PAPER_SEGMENTATION_LEVELS = 3
"""Decoder levels with a segmentation map (Nguyen et al. 2019, Sec. III-A: "multi-level segmentation maps from
the first three levels")."""


class UnifiedUNetEncoder(nn.Module):
    """Contracting path: level ``l`` is ``entry_l -> n_blocks x PreActResBlock -> act(norm(.))``.

    ``entry_0`` is a ``kernel_sizes[0]`` convolution (input channels -> ``features[0]``);
    ``entry_l`` (``l >= 1``) a ``kernel_sizes[l]`` convolution with stride ``strides[l]``
    (``features[l-1] -> features[l]``), the strided-convolution down-sampler of Nguyen et al. 2019, Sec. III-A.
    ``forward`` returns the output of every level (the last one is the bottleneck).
    """

    def __init__(
        self,
        ops: LayerOps,
        input_channels: int,
        features: Sequence[int],
        kernel_sizes: Sequence[Sequence[int]],
        strides: Sequence[Sequence[int]],
        n_blocks_per_level: int,
    ) -> None:
        super().__init__()
        self.levels = nn.ModuleList()
        in_channels = input_channels
        for level, (channels, kernel, stride) in enumerate(zip(features, kernel_sizes, strides, strict=True)):
            entry = ops.conv_layer(in_channels, channels, kernel, stride=stride if level else 1, bias=False)
            blocks = [PreActivationResidualBlock(ops, channels, kernel) for _ in range(n_blocks_per_level)]
            self.levels.append(nn.Sequential(entry, *blocks, ops.norm_act(channels)))
            in_channels = channels

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        skips = []
        for level in self.levels:
            x = level(x)
            skips.append(x)
        return skips


class UnifiedUNetDecoder(nn.Module):
    """Expanding path with per-level segmentation maps summed into the final output.

    Decoder level ``l`` (``l = L-2, ..., 0``): ``u = ConvT(d_{l+1})`` (kernel = stride = ``strides[l+1]``,
    ``features[l+1] -> features[l]``), ``d_l = act(norm(ResBlocks(conv_k(cat[u, e_l]))))`` where ``e_l``
    is the encoder output of level ``l`` (concatenated, as in U-Net and in Nguyen et al.'s (2019) ref. [5], Isensee et
    al. 2017, on which its network is also based) and ``d_{L-1}`` the bottleneck. Level ``h < H``
    (``H = min(n_segmentation_levels, L - 1)``) has a 1x1 segmentation head ``S_h = W_h d_h + b_h``
    (logits at that level's resolution).

    Final output ("element-wise summation of multiple segmentation maps from different resolutions",
    Nguyen et al. 2019, Sec. II on its refs. [3], [5]; Sec. III-A): ``F_{H-1} = S_{H-1}``,
    ``F_h = S_h + up(F_{h+1})`` with ``up`` nearest-neighbour upsampling by ``strides[h+1]`` (each coarse
    logit is repeated over the voxels it covers; the paper does not name the upsampling), i.e. for
    ``H = 3``: ``F_0 = S_0 + up(S_1) + up(up(S_2))``.

    ``deep_supervision`` (the attribute nnU-Net's ``set_deep_supervision_enabled`` sets): if true,
    ``forward`` returns ``[F_0, S_1, ..., S_{H-1}]`` (high -> low resolution; the summed final map, then
    the raw per-level maps, which WMLA weighs; docs/conventions.md#wmla); else the tensor ``F_0``.
    """

    def __init__(
        self,
        ops: LayerOps,
        features: Sequence[int],
        kernel_sizes: Sequence[Sequence[int]],
        strides: Sequence[Sequence[int]],
        num_classes: int,
        n_segmentation_levels: int,
        n_blocks_per_level: int,
        deep_supervision: bool,
    ) -> None:
        super().__init__()
        self.deep_supervision = deep_supervision
        n_levels = len(features)
        self.n_heads = min(n_segmentation_levels, n_levels - 1)
        self.upsamplers = nn.ModuleList()
        self.merges = nn.ModuleList()
        self.levels = nn.ModuleList()
        for level in range(n_levels - 1):  # indexed by level; forward runs them from level L-2 down to 0
            channels, kernel = features[level], kernel_sizes[level]
            self.upsamplers.append(
                ops.transposed_conv(features[level + 1], channels, strides[level + 1], bias=False)
            )
            self.merges.append(ops.conv_layer(2 * channels, channels, kernel, bias=False))
            blocks = [PreActivationResidualBlock(ops, channels, kernel) for _ in range(n_blocks_per_level)]
            self.levels.append(nn.Sequential(*blocks, ops.norm_act(channels)))
        self.heads = nn.ModuleList(
            ops.conv_layer(features[h], num_classes, 1, bias=True) for h in range(self.n_heads)
        )

    def forward(self, skips: Sequence[torch.Tensor]) -> torch.Tensor | list[torch.Tensor]:
        x = skips[-1]
        decoded: list[torch.Tensor] = [x] * len(self.levels)
        for level in reversed(range(len(self.levels))):
            x = self.upsamplers[level](x)
            x = self.levels[level](self.merges[level](torch.cat((x, skips[level]), dim=1)))
            decoded[level] = x
        maps = [head(decoded[h]) for h, head in enumerate(self.heads)]
        final = maps[-1]
        for h in reversed(range(self.n_heads - 1)):
            final = maps[h] + F.interpolate(final, size=maps[h].shape[2:], mode="nearest")
        if self.deep_supervision:
            return [final, *maps[1:]]
        return final


class UnifiedUNet(nn.Module):
    """Unified U-Net of Nguyen et al. 2019 (Sec. III-A, IV-A), 2D or 3D, nnU-Net compatible.

    Encoder :class:`UnifiedUNetEncoder`, decoder :class:`UnifiedUNetDecoder` (see there for the exact
    formulas and outputs). With ``L = len(strides)`` levels and ``H = min(n_segmentation_levels, L - 1)``
    heads, deep supervision on returns ``H`` tensors, output ``h`` at scale
    ``1 / prod_{j <= h} strides[j]`` of the input (:meth:`deep_supervision_scales`); off, one tensor at
    input resolution.

    Args:
        input_channels, num_classes: channels in, logits out.
        conv_op: ``nn.Conv2d`` or ``nn.Conv3d``.
        kernel_sizes, strides: one entry per level (from nnU-Net's plans; ``strides[0]`` must be ones).
        features_per_level: default ``16 * 2**l`` (Nguyen et al. 2019, Sec. IV-A).
        n_segmentation_levels: default 3 (the three highest-resolution decoder levels, Nguyen et al. 2019).
        n_blocks_per_level: residual blocks per level and path; default 1.
        norm_op, norm_op_kwargs, nonlin, nonlin_kwargs: default instance normalisation
            (``eps=1e-5, affine=True``) and ``LeakyReLU(1e-2)``, the paper's choices.
        deep_supervision: initial value of ``decoder.deep_supervision``.
    """

    def __init__(
        self,
        input_channels: int,
        num_classes: int,
        conv_op: type[nn.Module],
        kernel_sizes: Sequence[Sequence[int]],
        strides: Sequence[Sequence[int]],
        features_per_level: Sequence[int] | None = None,
        n_segmentation_levels: int = PAPER_SEGMENTATION_LEVELS,
        n_blocks_per_level: int = 1,
        norm_op: type[nn.Module] | None = None,
        norm_op_kwargs: dict | None = None,
        nonlin: type[nn.Module] | None = None,
        nonlin_kwargs: dict | None = None,
        deep_supervision: bool = True,
    ) -> None:
        super().__init__()
        ops = LayerOps(conv_op, norm_op, norm_op_kwargs or {}, nonlin, nonlin_kwargs or {})
        n_levels = len(strides)
        if n_levels < 2 or len(kernel_sizes) != n_levels:
            raise ValueError(
                f"UnifiedUNet needs at least 2 levels and one kernel size per level; received "
                f"{n_levels} strides and {len(kernel_sizes)} kernel sizes."
            )
        if features_per_level is None:
            features_per_level = [PAPER_BASE_FEATURES * 2**level for level in range(n_levels)]
        if len(features_per_level) != n_levels:
            raise ValueError(
                f"features_per_level needs {n_levels} entries (one per level); "
                f"received {list(features_per_level)}."
            )
        if n_segmentation_levels < 1:
            raise ValueError(f"n_segmentation_levels must be >= 1; received {n_segmentation_levels}.")
        self.strides = tuple(tuple(int(v) for v in s) for s in strides)
        check_first_stride_is_one(self.strides, "UnifiedUNet")
        self.input_channels = input_channels
        self.num_classes = num_classes
        self.dims = ops.dims
        self.total_stride = tuple(int(v) for v in np.prod(self.strides, axis=0))
        self.encoder = UnifiedUNetEncoder(
            ops, input_channels, features_per_level, kernel_sizes, self.strides, n_blocks_per_level
        )
        self.decoder = UnifiedUNetDecoder(
            ops,
            features_per_level,
            kernel_sizes,
            self.strides,
            num_classes,
            n_segmentation_levels,
            n_blocks_per_level,
            deep_supervision,
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor | list[torch.Tensor]:
        check_input(x, self.dims, self.input_channels, self.total_stride, "UnifiedUNet")
        return self.decoder(self.encoder(x))

    def deep_supervision_scales(self) -> list[list[float]]:
        """Per-axis scale of each deep-supervision output relative to the input, high -> low resolution."""
        return cumulative_scales(self.strides, self.decoder.n_heads)

    @staticmethod
    def initialize(module: nn.Module) -> None:
        """He initialisation (negative slope 1e-2) as nnU-Net's ``InitWeights_He(1e-2)``; for ``apply``."""
        he_initialize(module, 1e-2)
