"""Trainer of the DSC-loss paper (Liu & Fu 2018, dense dilation network) on nnU-Net's U-Net.

Squared-denominator (V-Net) Dice ``1 − 2 Σ s y / (Σ s² + Σ y²)`` per image over the foreground classes;
nnU-Net's optimiser, schedule, epochs and deep supervision (the paper's own optimiser goes with its network:
``nnUNetTrainerRDDNet_Paper``).
"""

from nnunet_lossplug.losses import DiceLoss
from nnunet_lossplug.nnunet import LossPlugTrainer, LossSpec

__all__ = ["nnUNetTrainerDiceSquared"]


class nnUNetTrainerDiceSquared(LossPlugTrainer):
    """Squared-denominator Dice (Liu & Fu 2018, V-Net form), foreground classes, per image."""

    reference = "Liu & Fu 2018, Sec. 1.3"
    loss_spec = LossSpec(DiceLoss, batch_dice=False, do_bg=False, squared=True)
