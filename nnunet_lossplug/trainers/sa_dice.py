"""Trainers of the Stochastic Aggregated loss paper (Nguyen et al. 2019) on nnU-Net's U-Net.

Shared settings (Nguyen et al. 2019 Sec. IV-A): Adam with learning rate 5e-4, L2 gradient clipping at 5.0, 300 epochs;
nnU-Net's poly schedule (the paper halves the learning rate on a validation plateau; the unified-U-Net trainers
of this plugin do that). Dice terms include no background and keep nnU-Net's smoothing-free paper formula.
SA Dice sums over the (global, under DDP) batch before the ratio (eq. 4/5); per-image Dice is eq. 1/2.
"""

from nnunet_lossplug.losses import CrossEntropyLoss, DiceLoss, LossMixture
from nnunet_lossplug.nnunet import LossPlugTrainer, LossSpec, adam

__all__ = [
    "SADicePaperTrainer",
    "nnUNetTrainerPerImageDice",
    "nnUNetTrainerSADice",
    "nnUNetTrainerSADiceWMLA",
    "nnUNetTrainerSADiceWMLACE",
    "nnUNetTrainerSADiceWMLATrainable",
    "nnUNetTrainerSADiceWMLAUniform",
]

#: SA Dice (eq. 4-5): batch sums before the ratio, foreground only; also the unified-U-Net trainers' loss
SA_DICE = LossSpec(DiceLoss, batch_dice=True, do_bg=False)
PER_IMAGE_DICE = LossSpec(DiceLoss, batch_dice=False, do_bg=False)


class SADicePaperTrainer(LossPlugTrainer):
    """Optimiser settings shared by every trainer of Nguyen et al. 2019 (a base, not a trainer to run)."""

    optimizer_spec = adam(lr=5e-4)
    grad_clip = 5.0
    epochs = 300


class nnUNetTrainerSADice(SADicePaperTrainer):
    """Stochastic Aggregated Dice with nnU-Net's deep-supervision weights."""

    reference = "Nguyen et al. 2019, eq. 4-5"
    loss_spec = SA_DICE


class nnUNetTrainerSADiceWMLA(nnUNetTrainerSADice):
    """SA Dice with weighted multi-resolution loss accumulation α = (1, 0.1, 0.01): the paper's best."""

    reference = "Nguyen et al. 2019, Table I"
    ds_weights = (1.0, 0.1, 0.01)


class nnUNetTrainerSADiceWMLAUniform(nnUNetTrainerSADice):
    """SA Dice with uniform multi-resolution weights α = (1, 1, 1)."""

    reference = "Nguyen et al. 2019, Table I"
    ds_weights = (1.0, 1.0, 1.0)


class nnUNetTrainerSADiceWMLATrainable(nnUNetTrainerSADice):
    """SA Dice with trainable multi-resolution weights (α_1 ≡ 1, uncertainty weighting)."""

    reference = "Nguyen et al. 2019, Table I 'trainable'"
    ds_weights = "trainable"


class nnUNetTrainerSADiceWMLACE(nnUNetTrainerSADiceWMLA):
    """SA Dice + voxel-wise cross-entropy with α = (1, 0.1, 0.01): the paper's best BRATS setting."""

    reference = "Nguyen et al. 2019, Table II"
    loss_spec = LossSpec(LossMixture, first=SA_DICE, second=LossSpec(CrossEntropyLoss), schedule="equal")


class nnUNetTrainerPerImageDice(SADicePaperTrainer):
    """The paper's baseline: per-image (stochastic) Dice, eq. 1-2, same optimiser settings."""

    reference = "Nguyen et al. 2019, eq. 1-2"
    loss_spec = PER_IMAGE_DICE
