from nnunet_lossplug.trainers.region_wise import *  # noqa: F401,F403
