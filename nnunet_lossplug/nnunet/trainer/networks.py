"""Adapters from the plugin's network builders to nnU-Net's ``build_network_architecture`` hook."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from torch import nn

from nnunet_lossplug.networks import deep_supervision_scales


def network_from_plans(builder: Callable[..., nn.Module], **options: Any) -> Callable[..., nn.Module]:
    """Wrap ``builder(arch_class_name, arch_init_kwargs, arch_init_kwargs_req_import, n_in, n_out, ds, **options)``.

    The result has the signature nnU-Net (>= 2.6) calls for training and prediction:
    ``(plans_manager, configuration_manager, num_input_channels, num_output_channels, enable_deep_supervision)``;
    the plans still decide patch size, kernel sizes and pooling.
    """

    def build(plans_manager, configuration_manager, num_input_channels: int, num_output_channels: int,
              enable_deep_supervision: bool = True) -> nn.Module:
        return builder(configuration_manager.network_arch_class_name, configuration_manager.network_arch_init_kwargs,
                       configuration_manager.network_arch_init_kwargs_req_import, num_input_channels,
                       num_output_channels, enable_deep_supervision, **options)

    build.__qualname__ = build.__name__ = getattr(builder, "__name__", "build")
    return build


def network_ds_scales(architecture: str, **options: Any) -> Callable[..., list[list[float]]]:
    """``configuration_manager -> scales`` of the deep-supervision outputs of one of the plugin's networks."""

    def scales(configuration_manager) -> list[list[float]]:
        return deep_supervision_scales(configuration_manager.network_arch_init_kwargs, architecture, **options)

    return scales
