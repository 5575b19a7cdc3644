"""Trainers of the class-weighted Dice paper (Shen et al. 2018).

Multi-class Dice ``L_MD = (1/L) Σ_l w_l (1 − D_l)`` over all labels, background included (eq. 3-6), per
image, with the paper's weights from the voxel counts of the fold's training cases (computed once by the
precompute hook): uniform ``W_u = 1``, simple ``W_s = N / (L·|R_l| + 1)``, square ``W_q = N / (L·|R_l|² + 1)``,
unnormalised as in the paper. Adam; the paper compares initial learning rates 1e-3 (the unsuffixed trainers)
and 1e-2 (``_lr1e2``). 300 epochs, nnU-Net's poly schedule and deep supervision.
"""

from nnunet_lossplug.losses import DiceLoss
from nnunet_lossplug.nnunet import LossPlugTrainer, LossSpec, TrainingSetClassWeights, adam

__all__ = [
    "WeightedDicePaperTrainer",
    "nnUNetTrainerDiceSimple",
    "nnUNetTrainerDiceSimple_lr1e2",
    "nnUNetTrainerDiceSquare",
    "nnUNetTrainerDiceSquare_lr1e2",
    "nnUNetTrainerDiceUniform",
    "nnUNetTrainerDiceUniform_lr1e2",
]


def weighted_dice(scheme: str) -> LossSpec:
    """Multi-class Dice over all labels, per image, with the paper's class weights ``scheme`` (eq. 3-5)."""
    return LossSpec(DiceLoss, batch_dice=False, do_bg=True, class_weights=TrainingSetClassWeights(scheme))


class WeightedDicePaperTrainer(LossPlugTrainer):
    """Settings shared by every trainer of Shen et al. 2018 (a base, not a trainer to run)."""

    optimizer_spec = adam(lr=1e-3)
    epochs = 300


class nnUNetTrainerDiceUniform(WeightedDicePaperTrainer):
    """Multi-class Dice with uniform weights W_u = 1, learning rate 1e-3."""

    reference = "Shen et al. 2018, eq. 3, Table 1"
    loss_spec = weighted_dice("uniform")


class nnUNetTrainerDiceSimple(WeightedDicePaperTrainer):
    """Multi-class Dice with simple weights W_s = N / (L·|R_l| + 1), learning rate 1e-3."""

    reference = "Shen et al. 2018, eq. 4, Table 1"
    loss_spec = weighted_dice("simple")


class nnUNetTrainerDiceSquare(WeightedDicePaperTrainer):
    """Multi-class Dice with square weights W_q = N / (L·|R_l|² + 1), learning rate 1e-3."""

    reference = "Shen et al. 2018, eq. 5, Table 1"
    loss_spec = weighted_dice("square")


class nnUNetTrainerDiceUniform_lr1e2(nnUNetTrainerDiceUniform):
    """Uniform weights, initial learning rate 1e-2 (Shen et al. 2018, Table 1)."""

    optimizer_spec = adam(lr=1e-2)


class nnUNetTrainerDiceSimple_lr1e2(nnUNetTrainerDiceSimple):
    """Simple weights, initial learning rate 1e-2 (Shen et al. 2018, Table 1)."""

    optimizer_spec = adam(lr=1e-2)


class nnUNetTrainerDiceSquare_lr1e2(nnUNetTrainerDiceSquare):
    """Square weights, initial learning rate 1e-2 (Shen et al. 2018, Table 1)."""

    optimizer_spec = adam(lr=1e-2)
