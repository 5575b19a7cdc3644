from nnunet_lossplug.trainers.weighted_dice import *  # noqa: F401,F403
