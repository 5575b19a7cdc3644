from nnunet_lossplug.trainers.sa_dice import *  # noqa: F401,F403
