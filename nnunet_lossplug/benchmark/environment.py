"""The environment of the benchmark's and the demo's child processes (nnU-Net's commands).

- ``OMP_WAIT_POLICY=PASSIVE`` unless the user set it: nnU-Net trains on every CPU core, and on a machine with other
  work PyTorch's OpenMP threads otherwise spin while one of them waits for a busy core (one demo epoch took 295 s
  instead of 9 s under a load of 15 on 2 cores). The numbers are the same either way; only the waiting changes.
- ``nnUNet_compile=f``: nnU-Net would otherwise compile the network, which on a CPU costs more than it saves.
- For training: ``NNUNET_LOSSPLUG_SEED`` and ``nnUNet_n_proc_DA=0`` (augmentation in the training process), without
  which nnU-Net's augmenter hands out batches in arrival order and no run repeats.
- ``nnUNet_extTrainer`` lists the plugin's trainer folder and the folder of the generated short-schedule trainers.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path

from nnunet_lossplug import discovery

SEED_ENV_VAR = "NNUNET_LOSSPLUG_SEED"  # read by nnunet_lossplug.nnunet.trainer.seeding (not imported: torch)


def child_environment(base: Mapping[str, str], *trainer_folders: Path) -> dict[str, str]:
    """``base`` with the settings above; the user's own values of ``OMP_WAIT_POLICY`` and ``nnUNet_def_n_proc`` win."""
    env = dict(base)
    env.setdefault("OMP_WAIT_POLICY", "PASSIVE")
    env.setdefault("nnUNet_def_n_proc", "2")
    env["nnUNet_compile"] = "f"
    env["PYTHONUNBUFFERED"] = "1"
    listed = [p for p in env.get(discovery.ENV_VAR, "").split(os.pathsep) if p]
    listed += [str(folder) for folder in trainer_folders if str(folder) not in listed]
    env[discovery.ENV_VAR] = discovery.ext_trainer_value(os.pathsep.join(listed))
    return env


def training_environment(env: Mapping[str, str], seed: int) -> dict[str, str]:
    """The training command's environment: the seed, and augmentation in the training process."""
    return {**env, SEED_ENV_VAR: str(seed), "nnUNet_n_proc_DA": "0"}
