"""Shape bookkeeping shared by the networks: spatial dimensionality, per-axis tuples, padding, scales."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch
from torch import nn


def spatial_dims_of(conv_op: type[nn.Module]) -> int:
    """Number of spatial dimensions (2 or 3) of a convolution class; explicit error for anything else."""
    if isinstance(conv_op, type) and issubclass(conv_op, nn.Conv3d):
        return 3
    if isinstance(conv_op, type) and issubclass(conv_op, nn.Conv2d):
        return 2
    raise ValueError(
        f"conv_op must be torch.nn.Conv2d or torch.nn.Conv3d (nnU-Net's 2d or 3d configurations); "
        f"received {conv_op!r}. Pass the class itself, or its import path with the key listed in "
        f"arch_init_kwargs_req_import."
    )


def per_axis(value: int | Sequence[int], dims: int, name: str) -> tuple[int, ...]:
    """Expand an int to ``dims`` copies, or check that a sequence has ``dims`` positive integer entries."""
    if isinstance(value, int):
        values: tuple[int, ...] = (value,) * dims
    else:
        values = tuple(int(v) for v in value)
    if len(values) != dims or any(v < 1 for v in values):
        raise ValueError(
            f"{name} must be a positive int or {dims} positive ints (one per spatial axis); "
            f"received {value!r}."
        )
    return values


def same_padding(kernel_size: Sequence[int], dilation: int = 1) -> tuple[int, ...]:
    """Padding ``dilation * (k - 1) / 2`` per axis that keeps the spatial size of a stride-1 convolution.

    Only odd kernels have such a padding; nnU-Net's plans use kernel sizes 1 and 3.
    """
    if any(k % 2 == 0 for k in kernel_size):
        raise ValueError(
            f"kernel sizes must be odd so that a stride-1 convolution keeps the spatial size; "
            f"received {tuple(kernel_size)}. Use kernel sizes such as 1, 3 or 5."
        )
    return tuple(dilation * (k - 1) // 2 for k in kernel_size)


def check_first_stride_is_one(strides: Sequence[Sequence[int]], name: str) -> None:
    """The first level must work at input resolution (``strides[0]`` all ones), as in every nnU-Net plan."""
    if any(s != 1 for s in strides[0]):
        raise ValueError(
            f"{name}: strides[0] must be all ones (the first level works at input resolution, as in "
            f"every nnU-Net plan); received strides[0] = {tuple(strides[0])}."
        )


def cumulative_scales(strides: Sequence[Sequence[int]], n_outputs: int) -> list[list[float]]:
    """Scale of levels ``0 .. n_outputs-1`` relative to the input: ``1 / prod_{j <= l} strides[j]`` per axis.

    Same formula as nnU-Net's ``nnUNetTrainer._get_deep_supervision_scales`` (which keeps all but the
    bottleneck level).
    """
    cumulative = np.cumprod(np.asarray(strides, dtype=np.int64), axis=0)
    return [[1.0 / float(c) for c in cumulative[level]] for level in range(n_outputs)]


def check_input(
    x: torch.Tensor, dims: int, input_channels: int, total_stride: Sequence[int], name: str
) -> None:
    """Fail early with a readable message if ``x`` cannot pass through the network unchanged in size.

    ``x`` must be ``(B, input_channels, *spatial)`` with ``dims`` spatial axes, each divisible by the
    product of the strides along that axis (nnU-Net's patch sizes always are).
    """
    if x.ndim != dims + 2 or x.shape[1] != input_channels:
        raise ValueError(
            f"{name} expects input of shape (B, {input_channels}, {', '.join(['*'] * dims)}) "
            f"({dims}D, {input_channels} channels); received {tuple(x.shape)}."
        )
    spatial = tuple(x.shape[2:])
    if any(size % factor for size, factor in zip(spatial, total_stride, strict=True)):
        raise ValueError(
            f"{name}: every spatial size must be divisible by the product of the strides "
            f"{tuple(total_stride)}; received spatial shape {spatial}. Pad or crop the input to a "
            f"multiple (nnU-Net's patch sizes are)."
        )
