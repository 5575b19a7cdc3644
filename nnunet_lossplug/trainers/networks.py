"""Trainers with the papers' own networks: the unified U-Net of Nguyen et al. 2019 and the RDD network of Liu & Fu
2018.

nnU-Net's plans still decide patch size, kernel sizes and pooling; the networks are built from them by
``nnunet_lossplug.networks`` (see its docstrings for which plan fields are used and where the papers' designs
override them). Deep-supervision targets are downsampled to the outputs each network really has.
"""

from nnunet_lossplug.losses import CrossEntropyLoss, DiceLoss, LossMixture
from nnunet_lossplug.networks import build_rdd_net, build_unified_unet
from nnunet_lossplug.nnunet import (
    LossPlugTrainer,
    LossSpec,
    PlateauHalving,
    StepDecay,
    adam,
    network_ds_scales,
    network_from_plans,
    sgd,
)
from nnunet_lossplug.trainers.sa_dice import SA_DICE

__all__ = [
    "nnUNetTrainerRDDNet",
    "nnUNetTrainerRDDNet_Paper",
    "nnUNetTrainerUnifiedUNet_SADiceWMLA",
    "nnUNetTrainerUnifiedUNet_SADiceWMLACE",
]


class nnUNetTrainerUnifiedUNet_SADiceWMLA(LossPlugTrainer):
    """Unified U-Net with SA Dice and WMLA α = (1, 0.1, 0.01); Adam 5e-4, clipping 5, lr halved on plateau."""

    reference = "Nguyen et al. 2019, Sec. III-A, IV-A, Table I"
    network_builder = network_from_plans(build_unified_unet)
    network_ds_scales = network_ds_scales("unified_unet")
    loss_spec = SA_DICE
    ds_weights = (1.0, 0.1, 0.01)
    optimizer_spec = adam(lr=5e-4)
    lr_schedule = PlateauHalving()
    grad_clip = 5.0
    epochs = 300


class nnUNetTrainerUnifiedUNet_SADiceWMLACE(nnUNetTrainerUnifiedUNet_SADiceWMLA):
    """As nnUNetTrainerUnifiedUNet_SADiceWMLA, plus voxel-wise cross-entropy (the paper's best BRATS setting)."""

    reference = "Nguyen et al. 2019, Table II"
    loss_spec = LossSpec(LossMixture, first=SA_DICE, second=LossSpec(CrossEntropyLoss), schedule="equal")


class nnUNetTrainerRDDNet(LossPlugTrainer):
    """RDD network with squared-denominator Dice (foreground, per image); nnU-Net's optimiser and schedule."""

    reference = "Liu & Fu 2018, Sec. 1.2-1.3"
    network_builder = network_from_plans(build_rdd_net)
    network_ds_scales = network_ds_scales("rdd_net")
    loss_spec = LossSpec(DiceLoss, batch_dice=False, do_bg=False, squared=True)


class nnUNetTrainerRDDNet_Paper(nnUNetTrainerRDDNet):
    """RDD network with the paper's PROMISE12 optimiser: SGD 1e-3, momentum 0.99, weight decay 0.005, ×0.2 / 10k it."""

    reference = "Liu & Fu 2018, Sec. 2"
    optimizer_spec = sgd(lr=1e-3, momentum=0.99, weight_decay=0.005, nesterov=False)
    lr_schedule = StepDecay(every_iterations=10_000, gamma=0.2)
