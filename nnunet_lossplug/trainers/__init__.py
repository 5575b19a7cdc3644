"""The plugin's nnU-Net trainers as ordinary, importable classes, and the base to declare your own.

Subclass one as any Python class, in a trainer file of a folder listed in ``nnUNet_extTrainer``::

    from nnunet_lossplug.trainers import nnUNetTrainerRRW

    class nnUNetTrainerRRW_100epochs(nnUNetTrainerRRW):
        epochs = 100

One module per paper: :mod:`~nnunet_lossplug.trainers.region_wise` (Valverde & Tohka 2022),
:mod:`~nnunet_lossplug.trainers.sa_dice` (Nguyen et al. 2019), :mod:`~nnunet_lossplug.trainers.weighted_dice`
(Shen et al. 2018), :mod:`~nnunet_lossplug.trainers.squared_dice` (Liu & Fu 2018), and
:mod:`~nnunet_lossplug.trainers.networks` (the unified U-Net of Nguyen et al. 2019 and the RDD network of Liu &
Fu 2018). nnU-Net finds them through the folder :func:`nnunet_lossplug.discovery.trainers_folder`, whose files
only re-export these modules: the class ``nnUNetv2_train -tr NAME`` runs is the class imported here (the same
object, so ``isinstance``, pickling and checkpoints agree).
"""

from nnunet_lossplug.nnunet import LossPlugTrainer
from nnunet_lossplug.trainers import networks, region_wise, sa_dice, squared_dice, weighted_dice
from nnunet_lossplug.trainers.networks import *  # noqa: F403
from nnunet_lossplug.trainers.region_wise import *  # noqa: F403
from nnunet_lossplug.trainers.sa_dice import *  # noqa: F403
from nnunet_lossplug.trainers.squared_dice import *  # noqa: F403
from nnunet_lossplug.trainers.weighted_dice import *  # noqa: F403

#: the modules that declare trainers, one per paper (and one for the papers' networks)
TRAINER_MODULES = (region_wise, sa_dice, weighted_dice, squared_dice, networks)

__all__ = ["LossPlugTrainer", *(name for module in TRAINER_MODULES for name in module.__all__)]
