"""Builders with the signature of nnU-Net's network hook, and the deep-supervision scales helper.

``build_unified_unet`` and ``build_rdd_net`` take the arguments of nnU-Net's
``get_network_from_plans`` / the pre-2.6 ``nnUNetTrainer.build_network_architecture`` static hook::

    build_xxx(architecture_class_name, arch_init_kwargs, arch_init_kwargs_req_import,
              num_input_channels, num_output_channels, enable_deep_supervision=True)

In nnU-Net 2.8 the hook receives ``(plans_manager, configuration_manager, num_input_channels,
num_output_channels, enable_deep_supervision)``; a trainer forwards
``configuration_manager.network_arch_class_name``, ``.network_arch_init_kwargs`` and
``.network_arch_init_kwargs_req_import``. Both builders apply He initialisation (nnU-Net's
``get_network_from_plans`` calls ``network.apply(network.initialize)``; our builders replace it, so
they do it themselves). ``architecture_class_name`` (the plan's ``PlainConvUNet``/``ResidualEncoderUNet``)
is accepted for signature compatibility and ignored: the builder decides the class.

Plan fields (``arch_kwargs``) used / overridden, unified U-Net (Nguyen et al. 2019) | RDD network (Liu & Fu 2018):

- ``conv_op``: used, 2D or 3D | used.
- ``n_stages``: ``L = min(4, n_stages)`` levels (paper: 4) | used, ``L = n_stages``.
- ``kernel_sizes``: the first ``L`` used | used (the bottleneck's kernel is the dilated one).
- ``strides`` (pooling factors): the first ``L`` used | used.
- ``features_per_stage``: overridden by ``16 * 2**l`` (paper) | used.
- ``norm_op``, ``norm_op_kwargs``: instance norm always (paper), with the plan's kwargs if the plan's
  norm is an instance norm | used (instance norm if the plan has none).
- ``nonlin``, ``nonlin_kwargs``: LeakyReLU always (paper), with the plan's kwargs if the plan's
  non-linearity is one | used (LeakyReLU(1e-2) if the plan has none).
- ``n_blocks_per_stage``: ignored, 1 residual block per level | used where present (residual-encoder
  plans), else 1 residual block per stage.
- ``n_conv_per_stage``, ``n_conv_per_stage_decoder``: ignored, both nets use residual blocks | same.
- ``conv_bias``: ignored; a convolution has a bias only where no normalisation erases it (see
  ``blocks``): the heads only | the heads, transposed convolutions and the image-level feature.
- ``dropout_op``, ``dropout_op_kwargs``: ignored, no dropout (nnU-Net's plans have none) | same.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from torch import nn
from torch.nn.modules.instancenorm import _InstanceNorm

from nnunet_lossplug.networks.dense_dilated import DEFAULT_DILATION_RATES
from nnunet_lossplug.networks.geometry import cumulative_scales
from nnunet_lossplug.networks.plans import PlanGeometry
from nnunet_lossplug.networks.rdd_net import RDDNet
from nnunet_lossplug.networks.unified_unet import (
    PAPER_BASE_FEATURES,
    PAPER_LEVELS,
    PAPER_SEGMENTATION_LEVELS,
    UnifiedUNet,
)

ARCHITECTURES = ("unified_unet", "rdd_net")


def unified_unet_levels(n_stages: int, n_levels: int | None = None) -> int:
    """Levels of the unified U-Net for a plan with ``n_stages``: ``n_levels``, default ``min(4, n_stages)``.

    An explicit ``n_levels`` may not exceed ``n_stages`` (the plan's patch size is only divisible by
    the product of its strides).
    """
    levels = min(PAPER_LEVELS, n_stages) if n_levels is None else int(n_levels)
    if not 2 <= levels <= n_stages:
        raise ValueError(
            f"the unified U-Net needs 2 <= n_levels <= n_stages = {n_stages} (the plan's stages); "
            f"received n_levels={n_levels}. Leave n_levels=None for the paper's min(4, n_stages)."
        )
    return levels


def _plan_instance_norm(geometry: PlanGeometry) -> tuple[type[nn.Module] | None, dict]:
    if isinstance(geometry.norm_op, type) and issubclass(geometry.norm_op, _InstanceNorm):
        return geometry.norm_op, dict(geometry.norm_op_kwargs or {})
    return None, {}  # LayerOps default: matching InstanceNorm(eps=1e-5, affine=True)


def _plan_leaky_relu(geometry: PlanGeometry) -> tuple[type[nn.Module] | None, dict]:
    if isinstance(geometry.nonlin, type) and issubclass(geometry.nonlin, nn.LeakyReLU):
        return geometry.nonlin, dict(geometry.nonlin_kwargs or {})
    return None, {}  # LayerOps default: LeakyReLU(negative_slope=1e-2, inplace=True)


def build_unified_unet(
    architecture_class_name: str | None,
    arch_init_kwargs: Mapping[str, Any],
    arch_init_kwargs_req_import: Iterable[str],
    num_input_channels: int,
    num_output_channels: int,
    enable_deep_supervision: bool = True,
    *,
    n_levels: int | None = None,
    base_features: int = PAPER_BASE_FEATURES,
    n_segmentation_levels: int = PAPER_SEGMENTATION_LEVELS,
) -> UnifiedUNet:
    """Unified U-Net of Nguyen et al. 2019 (Sec. III-A, IV-A) from an nnU-Net configuration, He-initialised.

    Levels ``L = min(4, n_stages)`` (``n_levels`` overrides), the plan's first ``L`` kernel sizes and
    strides, ``base_features * 2**l`` feature maps (paper: 16), heads at the ``n_segmentation_levels``
    (paper: 3) highest-resolution decoder levels. Deep supervision on: ``[F_0, S_1, S_2]`` (the summed
    full-resolution map, then the raw per-level maps at 1/2 and 1/4 for a plan with stride-2
    stages); off: ``F_0``. See :class:`~nnunet_lossplug.networks.unified_unet.UnifiedUNetDecoder` and the
    module docstring for which plan fields are used.
    """
    del architecture_class_name  # the builder decides the class
    geometry = PlanGeometry.from_arch_kwargs(arch_init_kwargs, arch_init_kwargs_req_import)
    levels = unified_unet_levels(geometry.n_stages, n_levels)
    norm_op, norm_op_kwargs = _plan_instance_norm(geometry)
    nonlin, nonlin_kwargs = _plan_leaky_relu(geometry)
    network = UnifiedUNet(
        input_channels=num_input_channels,
        num_classes=num_output_channels,
        conv_op=geometry.conv_op,
        kernel_sizes=geometry.kernel_sizes[:levels],
        strides=geometry.strides[:levels],
        features_per_level=[base_features * 2**level for level in range(levels)],
        n_segmentation_levels=n_segmentation_levels,
        norm_op=norm_op,
        norm_op_kwargs=norm_op_kwargs,
        nonlin=nonlin,
        nonlin_kwargs=nonlin_kwargs,
        deep_supervision=enable_deep_supervision,
    )
    network.apply(network.initialize)
    return network


def build_rdd_net(
    architecture_class_name: str | None,
    arch_init_kwargs: Mapping[str, Any],
    arch_init_kwargs_req_import: Iterable[str],
    num_input_channels: int,
    num_output_channels: int,
    enable_deep_supervision: bool = True,
    *,
    dilation_rates: Iterable[int] = DEFAULT_DILATION_RATES,
    growth_channels: int | None = None,
) -> RDDNet:
    """RDD network of Liu & Fu 2018 (Sec. 1.2) from an nnU-Net configuration, He-initialised.

    Uses the plan's stages, widths, kernels, strides, normalisation and non-linearity (and
    ``n_blocks_per_stage`` where the plan has it); bottleneck rates ``dilation_rates`` (default (1, 2, 3),
    see :data:`~nnunet_lossplug.networks.dense_dilated.DEFAULT_DILATION_RATES`). Deep supervision on:
    ``n_stages - 1`` outputs, high -> low resolution, as nnU-Net's ``PlainConvUNet``; off: one output.
    """
    del architecture_class_name  # the builder decides the class
    geometry = PlanGeometry.from_arch_kwargs(arch_init_kwargs, arch_init_kwargs_req_import)
    if geometry.features_per_stage is None:
        raise KeyError(
            "build_rdd_net needs arch_init_kwargs['features_per_stage'] (one width per stage, as in every "
            "nnU-Net plan); it is missing."
        )
    network = RDDNet(
        input_channels=num_input_channels,
        num_classes=num_output_channels,
        conv_op=geometry.conv_op,
        kernel_sizes=geometry.kernel_sizes,
        strides=geometry.strides,
        features_per_stage=geometry.features_per_stage,
        n_blocks_per_stage=geometry.n_blocks_per_stage or 1,
        dilation_rates=tuple(dilation_rates),
        growth_channels=growth_channels,
        norm_op=geometry.norm_op,
        norm_op_kwargs=geometry.norm_op_kwargs,
        nonlin=geometry.nonlin,
        nonlin_kwargs=geometry.nonlin_kwargs,
        deep_supervision=enable_deep_supervision,
    )
    network.apply(network.initialize)
    return network


def unwrap_network(network: nn.Module) -> nn.Module:
    """The plain module inside ``torch.compile`` (``._orig_mod``) and/or DDP/DataParallel (``.module``)."""
    while True:
        if hasattr(network, "_orig_mod"):
            network = network._orig_mod
        elif isinstance(network, nn.parallel.DistributedDataParallel | nn.DataParallel):
            network = network.module
        else:
            return network


def deep_supervision_scales(
    network_or_kwargs: nn.Module | Mapping[str, Any],
    architecture: str | None = None,
    *,
    n_levels: int | None = None,
    n_segmentation_levels: int = PAPER_SEGMENTATION_LEVELS,
) -> list[list[float]]:
    """Scales (per axis, relative to the input) of the deep-supervision outputs, high -> low resolution.

    The format of nnU-Net's ``nnUNetTrainer._get_deep_supervision_scales`` (what
    ``DownsampleSegForDSTransform`` and the loss weights need), but one entry per output the network
    really has: unified U-Net ``min(3, L - 1)`` entries, RDD network ``n_stages - 1`` (identical to
    nnU-Net's list). Entry ``i`` is ``1 / prod_{j <= i} strides[j]``.

    ``network_or_kwargs``: a built network (possibly wrapped by DDP or ``torch.compile``), or a plan's
    ``arch_kwargs`` together with ``architecture`` (``"unified_unet"`` or ``"rdd_net"``) and the
    builder's ``n_levels`` / ``n_segmentation_levels`` if they were changed.
    """
    if isinstance(network_or_kwargs, nn.Module):
        network = unwrap_network(network_or_kwargs)
        if not isinstance(network, UnifiedUNet | RDDNet):
            raise TypeError(
                f"deep_supervision_scales expects a UnifiedUNet or RDDNet (optionally wrapped); "
                f"received {type(network).__name__}. For nnU-Net's own networks use the trainer's scales."
            )
        return network.deep_supervision_scales()
    if architecture not in ARCHITECTURES:
        raise ValueError(
            f"with arch_kwargs, architecture must be one of {ARCHITECTURES}; received {architecture!r}."
        )
    geometry = PlanGeometry.from_arch_kwargs(network_or_kwargs, ("conv_op",))
    if architecture == "rdd_net":
        return cumulative_scales(geometry.strides, geometry.n_stages - 1)
    levels = unified_unet_levels(geometry.n_stages, n_levels)
    return cumulative_scales(geometry.strides, min(n_segmentation_levels, levels - 1))
