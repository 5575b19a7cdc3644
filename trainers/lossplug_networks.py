from nnunet_lossplug.trainers.networks import *  # noqa: F401,F403
