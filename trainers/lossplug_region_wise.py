"""Trainers of the Region-wise loss paper (Valverde & Tohka, Pattern Recognition 2022; paper 002).

Shared settings (paper 002 Sec. 4 and its reference code): Adam with initial learning rate 1e-4 and
nnU-Net v1's weight decay 3e-5, nnU-Net's poly schedule, 300 epochs (ACDC), nnU-Net's deep supervision
and gradient clipping at 12; everything else is nnU-Net's.
"""

from nnunet_lossplug.losses import RegionWiseLoss
from nnunet_lossplug.nnunet import LossPlugTrainer, LossSpec, adam


class RegionWisePaperTrainer(LossPlugTrainer):
    """Optimiser settings shared by every trainer of paper 002 (not a trainer to run by itself)."""

    optimizer_spec = adam(lr=1e-4)
    epochs = 300


class nnUNetTrainerRRW(RegionWisePaperTrainer):
    """RW loss with rectified RW maps (paper 002 eq. 1 and 4, Table 2 "RRW"): the paper's proposal.

    Maps are computed once per 3D case with the preprocessed spacing by the precompute hook (run
    automatically on the first start) and carried through nnU-Net's augmentation.
    """

    loss_spec = LossSpec(RegionWiseLoss)
    rw_map = "rrw"
