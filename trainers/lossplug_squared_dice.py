from nnunet_lossplug.trainers.squared_dice import *  # noqa: F401,F403
