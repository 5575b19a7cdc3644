"""Trainers of the Region-wise loss paper (Valverde & Tohka 2022, Pattern Recognition).

Shared settings (Valverde & Tohka 2022 Sec. 4 and its reference code): Adam with initial learning rate 1e-4 and
nnU-Net v1's weight decay 3e-5, nnU-Net's poly schedule, 300 epochs (the ACDC setting), nnU-Net's deep
supervision weights and gradient clipping at 12; everything else is nnU-Net's. RW maps are computed once per
3D case with the preprocessed spacing by the precompute hook (run automatically on the first start) and
carried through nnU-Net's augmentation, except where a trainer says otherwise.

The Dice terms use the paper's Dice baseline: per-image soft Dice with the background included (nnU-Net's
plans would choose batch Dice without background; the paper's choice is made explicit here).
"""

from nnunetv2.training.nnUNetTrainer.variants.network_architecture.nnUNetTrainerBN import nnUNetTrainerBN

from nnunet_lossplug.losses import (
    CrossEntropyLoss,
    DiceLoss,
    FocalLoss,
    LossMixture,
    OneSidedHausdorffLoss,
    RegionWiseLoss,
    RWWeightedCrossEntropyLoss,
)
from nnunet_lossplug.nnunet import LossPlugTrainer, LossSpec, adam

__all__ = [
    "RegionWisePaperTrainer",
    "nnUNetTrainerAC",
    "nnUNetTrainerBoundaryCEEqual",
    "nnUNetTrainerBoundaryCEEqual_50epochs",
    "nnUNetTrainerBoundaryCEGradual",
    "nnUNetTrainerBoundaryCEGradual_50epochs",
    "nnUNetTrainerBoundaryDice",
    "nnUNetTrainerBoundaryDice_50epochs",
    "nnUNetTrainerCERRWWeighted",
    "nnUNetTrainerDiceOnly",
    "nnUNetTrainerFocal",
    "nnUNetTrainerHD",
    "nnUNetTrainerRRW",
    "nnUNetTrainerRRWCEEqual",
    "nnUNetTrainerRRWCEEqual_50epochs",
    "nnUNetTrainerRRWCEGradual",
    "nnUNetTrainerRRWCEGradual_50epochs",
    "nnUNetTrainerRRWDiceEqual",
    "nnUNetTrainerRRWDiceEqual_50epochs",
    "nnUNetTrainerRRWDiceGradual",
    "nnUNetTrainerRRWDiceGradual_50epochs",
    "nnUNetTrainerRRWOnline",
    "nnUNetTrainerRRW_50epochs",
    "nnUNetTrainerRRW_BN",
    "nnUNetTrainerRWBoundary",
    "nnUNetTrainerRWBoundary_50epochs",
]

RW = LossSpec(RegionWiseLoss)
PAPER_DICE = LossSpec(DiceLoss, batch_dice=False, do_bg=True)
CE = LossSpec(CrossEntropyLoss)


class RegionWisePaperTrainer(LossPlugTrainer):
    """Optimiser settings shared by every trainer of Valverde & Tohka 2022 (a base, not a trainer to run)."""

    optimizer_spec = adam(lr=1e-4)
    epochs = 300


class nnUNetTrainerRRW(RegionWisePaperTrainer):
    """RW loss with rectified RW maps (eq. 1 and 4): the paper's proposal."""

    reference = "Valverde & Tohka 2022, Tables 2-4 'RRW'"
    loss_spec = RW
    rw_map = "rrw"


class nnUNetTrainerRRW_BN(nnUNetTrainerRRW):
    """RRW with batch normalisation instead of instance normalisation (the paper's ACDC test-set model)."""

    reference = "Valverde & Tohka 2022, Table 5"
    network_builder = nnUNetTrainerBN.build_network_architecture


class nnUNetTrainerRRWOnline(nnUNetTrainerRRW):
    """RRW with maps computed per augmented patch in the augmentation workers, as the reference code does."""

    reference = "Valverde & Tohka 2022 reference code"
    map_placement = "worker"


class nnUNetTrainerRWBoundary(RegionWisePaperTrainer):
    """RW loss with RW-Boundary maps (eq. 3) alone: Boundary loss without Dice, the unstable case."""

    reference = "Valverde & Tohka 2022, Sec. 4.3 / Fig. 5"
    loss_spec = RW
    rw_map = "boundary"


class nnUNetTrainerBoundaryDice(RegionWisePaperTrainer):
    """Boundary loss as Kervadec et al. train it: α·Dice + (1−α)·RW-Boundary, α = max((100−epoch)/100, 0.01)."""

    reference = "Valverde & Tohka 2022, Tables 2-4 'Boundary'"
    loss_spec = LossSpec(LossMixture, first=PAPER_DICE, second=RW, schedule="gradual")
    rw_map = "boundary"


class nnUNetTrainerDiceOnly(RegionWisePaperTrainer):
    """The paper's Dice baseline: per-image soft Dice, background included."""

    reference = "Valverde & Tohka 2022, Tables 2-4 'Dice'"
    loss_spec = PAPER_DICE


class nnUNetTrainerFocal(RegionWisePaperTrainer):
    """Focal loss, γ = 2, no α-balancing."""

    reference = "Valverde & Tohka 2022, Tables 2-4 'Focal'"
    loss_spec = LossSpec(FocalLoss, gamma=2.0)


class nnUNetTrainerCERRWWeighted(RegionWisePaperTrainer):
    """Cross-entropy weighted voxel-wise by the RRW map of the true class (Sec. 3.2)."""

    reference = "Valverde & Tohka 2022, Tables 2-4 'wCE'"
    loss_spec = LossSpec(RWWeightedCrossEntropyLoss)
    rw_map = "rrw"


class nnUNetTrainerAC(RegionWisePaperTrainer):
    """RW loss with the Active Contour map z = 1 − y (Prop. 1; AC loss without its length term)."""

    reference = "Valverde & Tohka 2022, Prop. 1"
    loss_spec = RW
    rw_map = "ac"


class nnUNetTrainerHD(RegionWisePaperTrainer):
    """One-sided Hausdorff-distance loss mean((s − y)² · D^α), α = 2 (Prop. 3, Karimi et al.)."""

    reference = "Valverde & Tohka 2022, Prop. 3"
    loss_spec = LossSpec(OneSidedHausdorffLoss, alpha=2.0)
    rw_map = "distance"


class nnUNetTrainerRRWDiceEqual(RegionWisePaperTrainer):
    """RRW + Dice, equal contribution (sum)."""

    reference = "Valverde & Tohka 2022, Sec. 4.4 / Fig. 6"
    loss_spec = LossSpec(LossMixture, first=PAPER_DICE, second=RW, schedule="equal")
    rw_map = "rrw"


class nnUNetTrainerRRWDiceGradual(RegionWisePaperTrainer):
    """α·Dice + (1−α)·RRW with α = max((100−epoch)/100, 0.01)."""

    reference = "Valverde & Tohka 2022, Sec. 4.4 / Fig. 6"
    loss_spec = LossSpec(LossMixture, first=PAPER_DICE, second=RW, schedule="gradual")
    rw_map = "rrw"


class nnUNetTrainerRRWCEEqual(RegionWisePaperTrainer):
    """RRW + cross-entropy, equal contribution (sum)."""

    reference = "Valverde & Tohka 2022, Sec. 4.4 / Fig. 6"
    loss_spec = LossSpec(LossMixture, first=CE, second=RW, schedule="equal")
    rw_map = "rrw"


class nnUNetTrainerRRWCEGradual(RegionWisePaperTrainer):
    """α·CE + (1−α)·RRW with α = max((100−epoch)/100, 0.01)."""

    reference = "Valverde & Tohka 2022, Sec. 4.4 / Fig. 6"
    loss_spec = LossSpec(LossMixture, first=CE, second=RW, schedule="gradual")
    rw_map = "rrw"


class nnUNetTrainerBoundaryCEEqual(RegionWisePaperTrainer):
    """RW-Boundary + cross-entropy, equal contribution (sum)."""

    reference = "Valverde & Tohka 2022, Sec. 4.4 / Fig. 6"
    loss_spec = LossSpec(LossMixture, first=CE, second=RW, schedule="equal")
    rw_map = "boundary"


class nnUNetTrainerBoundaryCEGradual(RegionWisePaperTrainer):
    """α·CE + (1−α)·RW-Boundary with α = max((100−epoch)/100, 0.01)."""

    reference = "Valverde & Tohka 2022, Sec. 4.4 / Fig. 6"
    loss_spec = LossSpec(LossMixture, first=CE, second=RW, schedule="gradual")
    rw_map = "boundary"


# 50-epoch variants for the stability experiments (Sec. 4.3 Fig. 5: 50 models per loss; Sec. 4.4 Fig. 6 CDF).
class nnUNetTrainerRRW_50epochs(nnUNetTrainerRRW):
    """nnUNetTrainerRRW trained for 50 epochs (Valverde & Tohka 2022 Sec. 4.3, Fig. 5)."""

    epochs = 50


class nnUNetTrainerRWBoundary_50epochs(nnUNetTrainerRWBoundary):
    """nnUNetTrainerRWBoundary trained for 50 epochs (Valverde & Tohka 2022 Sec. 4.3, Fig. 5)."""

    epochs = 50


class nnUNetTrainerRRWDiceEqual_50epochs(nnUNetTrainerRRWDiceEqual):
    """nnUNetTrainerRRWDiceEqual trained for 50 epochs (Valverde & Tohka 2022 Sec. 4.4, Fig. 6)."""

    epochs = 50


class nnUNetTrainerRRWDiceGradual_50epochs(nnUNetTrainerRRWDiceGradual):
    """nnUNetTrainerRRWDiceGradual trained for 50 epochs (Valverde & Tohka 2022 Sec. 4.4, Fig. 6)."""

    epochs = 50


class nnUNetTrainerRRWCEEqual_50epochs(nnUNetTrainerRRWCEEqual):
    """nnUNetTrainerRRWCEEqual trained for 50 epochs (Valverde & Tohka 2022 Sec. 4.4, Fig. 6)."""

    epochs = 50


class nnUNetTrainerRRWCEGradual_50epochs(nnUNetTrainerRRWCEGradual):
    """nnUNetTrainerRRWCEGradual trained for 50 epochs (Valverde & Tohka 2022 Sec. 4.4, Fig. 6)."""

    epochs = 50


class nnUNetTrainerBoundaryDice_50epochs(nnUNetTrainerBoundaryDice):
    """nnUNetTrainerBoundaryDice trained for 50 epochs (Valverde & Tohka 2022 Sec. 4.4, Fig. 6)."""

    epochs = 50


class nnUNetTrainerBoundaryCEEqual_50epochs(nnUNetTrainerBoundaryCEEqual):
    """nnUNetTrainerBoundaryCEEqual trained for 50 epochs (Valverde & Tohka 2022 Sec. 4.4, Fig. 6)."""

    epochs = 50


class nnUNetTrainerBoundaryCEGradual_50epochs(nnUNetTrainerBoundaryCEGradual):
    """nnUNetTrainerBoundaryCEGradual trained for 50 epochs (Valverde & Tohka 2022 Sec. 4.4, Fig. 6)."""

    epochs = 50
