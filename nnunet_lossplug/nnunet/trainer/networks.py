"""Adapters from the plugin's network builders to nnU-Net's ``build_network_architecture`` hook, and the check
of a ``-pretrained_weights`` checkpoint against the trainer's network (fine-tuning)."""

from __future__ import annotations

import os
import sys
from collections.abc import Callable, Sequence
from typing import Any

from torch import nn

from nnunet_lossplug.networks import deep_supervision_scales
from nnunet_lossplug.nnunet.errors import CheckpointError, PretrainedWeightsError
from nnunet_lossplug.nnunet.safe_loading import network_weights, read_checkpoint


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


SKIPPED_BY_NNUNET = (".seg_layers.",)  # nnU-Net's load_pretrained_weights never transfers these


def pretrained_weights_argument(argv: Sequence[str] | None = None) -> str | None:
    """The checkpoint of ``nnUNetv2_train … -pretrained_weights FILE`` (None without one, or with --c / --val).

    nnU-Net's ``run_training`` hands the file only to its ``load_pretrained_weights``, right after the trainer's
    ``initialize``; the command line is the one place the trainer sees it first (``mp.spawn`` hands it to
    every DDP rank). With ``--c`` or ``--val`` nnU-Net ignores or refuses the option itself. Only nnU-Net's
    training entry points (``nnUNetv2_train``, ``run_training.py``) are read: another program's option of that
    name is not nnU-Net's.
    """
    argv = list(sys.argv if argv is None else argv)
    program = os.path.basename(argv[0]) if argv else ""
    if not (program.startswith("nnUNetv2_train") or program.startswith("run_training")):
        return None
    args = argv[1:]
    if "--c" in args or "--val" in args:
        return None
    for i, arg in enumerate(args):
        if arg == "-pretrained_weights" and i + 1 < len(args):
            return args[i + 1]
        if arg.startswith("-pretrained_weights="):
            return arg.split("=", 1)[1]
    return None


def check_pretrained_weights(network: nn.Module, checkpoint: str, trainer: str, configuration: str) -> None:
    """Refuse in one line a checkpoint that nnU-Net's ``load_pretrained_weights`` would stop on with an assertion.

    The file is read first by :func:`~nnunet_lossplug.nnunet.safe_loading.read_checkpoint` (no code it carries
    runs; nnU-Net's own load, with full trust, comes only after this check): a missing, damaged or foreign file,
    or one that asks to run code, is refused in one line naming it.

    nnU-Net's rule: every parameter of the network except the segmentation heads must be in the checkpoint
    with the same shape. A trainer with its own network (the unified U-Net, RDD-Net) or another configuration's
    checkpoint (another patch dimension, the cascade's extra input channels) breaks it.
    """
    try:  # read without running code it may carry, before nnU-Net's own load_pretrained_weights unpickles it
        saved = read_checkpoint(checkpoint)
        weights = network_weights(saved, checkpoint)
    except CheckpointError as err:
        raise PretrainedWeightsError(f"-pretrained_weights {err}") from None
    module = getattr(network, "module", network)
    module = getattr(module, "_orig_mod", module)
    for key, value in module.state_dict().items():
        if any(skip in key for skip in SKIPPED_BY_NNUNET):
            continue
        if key in weights and tuple(weights[key].shape) == tuple(value.shape):
            continue
        found = ("has no weight " + repr(key) if key not in weights else
                 f"has {key!r} of shape {tuple(weights[key].shape)}, the network {tuple(value.shape)}")
        raise PretrainedWeightsError(
            f"{trainer} cannot start from -pretrained_weights {checkpoint}: that checkpoint (trainer "
            f"{saved.get('trainer_name', '?')}) {found}, so it holds another network than the "
            f"{type(module).__name__} {trainer} builds for {configuration}. Train {trainer} without "
            f"-pretrained_weights, or pretrain with -tr {trainer} in {configuration} and pass its checkpoint_final.pth."
        )


def check_pretrained_weights_of_command_line(network: nn.Module, trainer: str, configuration: str) -> None:
    """:func:`check_pretrained_weights` for the checkpoint given to ``nnUNetv2_train`` (nothing without one)."""
    checkpoint = pretrained_weights_argument()
    if checkpoint is not None:
        check_pretrained_weights(network, checkpoint, trainer, configuration)
