"""A small 2D U-Net in plain PyTorch for CPU-scale experiments (no nnU-Net dependency)."""

from __future__ import annotations

import torch
from torch import Tensor, nn

__all__ = ["TinyUNet2d"]


def _conv_block(in_channels: int, out_channels: int) -> nn.Sequential:
    """Two ``conv3x3 -> InstanceNorm -> LeakyReLU(0.01)`` stages, nnU-Net's basic block."""
    layers: list[nn.Module] = []
    for channels_in in (in_channels, out_channels):
        layers += [
            nn.Conv2d(channels_in, out_channels, kernel_size=3, padding=1, bias=False),
            nn.InstanceNorm2d(out_channels, affine=True),
            nn.LeakyReLU(0.01, inplace=True),
        ]
    return nn.Sequential(*layers)


class TinyUNet2d(nn.Module):
    """U-Net (Ronneberger et al. 2015) with ``levels`` resolutions and ``base * 2**l`` channels at level l.

    Encoder: per level two ``conv3x3-InstanceNorm-LeakyReLU`` stages (nnU-Net's block, Valverde & Tohka 2022 Sec. 4.3
    trains nnU-Net's 2D network), then 2x2 max-pooling. Decoder: 2x2 transposed convolution, concatenation
    with the skip connection, two conv stages. A 1x1 convolution gives ``num_classes`` logits at full
    resolution. No deep supervision (kept out to keep the loop small; stated in experiments/README.md).

    Defaults (``base=8``, ``levels=3``, about 30k parameters) train in seconds on 48x48 images on one CPU
    core. Spatial sizes must be divisible by ``2**(levels-1)``.
    """

    def __init__(self, in_channels: int = 1, num_classes: int = 2, base: int = 8, levels: int = 3) -> None:
        super().__init__()
        if levels < 2:
            raise ValueError(f"levels must be >= 2 (at least one down-sampling), got {levels}.")
        if num_classes < 2 or in_channels < 1 or base < 1:
            raise ValueError(
                f"need num_classes >= 2, in_channels >= 1 and base >= 1; got num_classes={num_classes}, "
                f"in_channels={in_channels}, base={base}."
            )
        widths = [base * 2**level for level in range(levels)]
        self.levels = levels
        self.encoders = nn.ModuleList()
        channels = in_channels
        for width in widths:
            self.encoders.append(_conv_block(channels, width))
            channels = width
        self.pool = nn.MaxPool2d(2)
        self.upsamplers = nn.ModuleList()
        self.decoders = nn.ModuleList()
        for width in reversed(widths[:-1]):
            self.upsamplers.append(nn.ConvTranspose2d(channels, width, kernel_size=2, stride=2))
            self.decoders.append(_conv_block(2 * width, width))
            channels = width
        self.head = nn.Conv2d(channels, num_classes, kernel_size=1)

    def forward(self, images: Tensor) -> Tensor:
        """Logits ``(B, num_classes, H, W)`` for images ``(B, in_channels, H, W)``."""
        factor = 2 ** (self.levels - 1)
        if images.ndim != 4 or images.shape[-1] % factor or images.shape[-2] % factor:
            raise ValueError(
                f"expected images (B, C, H, W) with H and W divisible by {factor}; got "
                f"{tuple(images.shape)}. Crop or pad the images, or use fewer levels."
            )
        skips = []
        features = images
        for level, encoder in enumerate(self.encoders):
            features = encoder(features)
            if level < self.levels - 1:
                skips.append(features)
                features = self.pool(features)
        for upsample, decoder, skip in zip(self.upsamplers, self.decoders, reversed(skips)):
            features = decoder(torch.cat([upsample(features), skip], dim=1))
        return self.head(features)
