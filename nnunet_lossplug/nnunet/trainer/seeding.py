"""Seeded training through nnU-Net's unchanged CLI: ``NNUNET_LOSSPLUG_SEED=N nnUNetv2_train ...``.

nnU-Net draws fresh entropy in every process, so two trainings can never be compared run for run.
:class:`SeededTraining` is a mixin placed before ``nnUNetTrainer`` (``LossPlugTrainer`` has it; any other
subclass of nnU-Net's trainer may opt in the same way, nnU-Net's own trainers stay untouched). A trainer with
a seed (the environment variable :data:`SEED_ENV_VAR`, else the declaration's ``seed`` class attribute; None
keeps nnU-Net's behaviour) is seeded at three points, all at nnU-Net's seams:

1. **Training process**, just before nnU-Net's ``on_train_start`` builds the network and the data loaders:
   Python's ``random``, NumPy's global generator and torch (CPU and CUDA) get the seed itself.
2. **Augmentation workers**: nnU-Net starts its ``NonDetMultiThreadedAugmenter`` with ``seeds=None`` (each worker
   seeds NumPy from the OS). After nnU-Net's ``get_dataloaders`` returns, each augmenter gets one seed per worker,
   :func:`worker_seeds` (NumPy ``SeedSequence(seed, spawn_key=(stream, worker))``: distinct, reproducible, stream 0
   for training and 1 for validation), and is restarted through its own ``restart()``; batchgenerators' worker
   then calls ``np.random.seed`` and ``torch.manual_seed`` with it. The one batch nnU-Net drew from the unseeded
   workers to warm them up is discarded with them. With ``nnUNet_n_proc_DA=0`` nnU-Net uses a
   ``SingleThreadedAugmenter``, which draws from the training process's generators (point 1).
3. **Record**: the seed is written to nnU-Net's training log and, once per epoch, to nnU-Net's logger under
   :data:`SEED_LOG_KEY`, which nnU-Net saves in every checkpoint (``checkpoint["logging"]``); read it back with
   :func:`checkpoint_seed`.

What this buys: with ``nnUNet_n_proc_DA=0`` a seeded training on the CPU is repeatable bit for bit (weights and
every logged loss). With augmentation workers each worker's sequence of batches is repeatable, but nnU-Net's
non-deterministic augmenter hands the trainer whichever batch arrives first, so the order of batches, and hence
the losses and weights, still differ between runs; only the network's initial weights are then repeatable.
"""

from __future__ import annotations

import os
import random
from collections.abc import Callable
from typing import ClassVar

import numpy as np
import torch
from batchgenerators.dataloading.nondet_multi_threaded_augmenter import NonDetMultiThreadedAugmenter

from nnunet_lossplug.nnunet.errors import SeedError

SEED_ENV_VAR = "NNUNET_LOSSPLUG_SEED"
SEED_LOG_KEY = "lossplug_seed"
TRAINING_STREAM = 0
VALIDATION_STREAM = 1
_MAX_SEED = 2**32 - 1  # NumPy's legacy seed range


def parse_seed(value: object, source: str) -> int | None:
    """The seed ``value`` (None or an integer in [0, 2**32 - 1]); ``source`` names where it came from.

    Anything else raises :class:`~nnunet_lossplug.nnunet.errors.SeedError` (a ``ValueError``).
    """
    if value is None:
        return None
    try:
        seed = None if isinstance(value, bool) else value if isinstance(value, int) else int(str(value).strip())
    except ValueError:
        seed = None
    if seed is None or not 0 <= seed <= _MAX_SEED:
        raise SeedError(f"{source} = {value!r} is not a seed; use an integer from 0 to {_MAX_SEED} "
                         f"(or unset it for nnU-Net's unseeded behaviour).")
    return seed


def resolve_seed(declared: int | None, trainer_name: str) -> int | None:
    """The run's seed: ``NNUNET_LOSSPLUG_SEED`` if set (and not empty), else the trainer's declared ``seed``."""
    from_env = os.environ.get(SEED_ENV_VAR, "").strip()
    if from_env:
        return parse_seed(from_env, SEED_ENV_VAR)
    return parse_seed(declared, f"{trainer_name}.seed")


def worker_seeds(seed: int, stream: int, num_workers: int) -> list[int]:
    """One seed per augmentation worker, derived from ``seed`` by NumPy's ``SeedSequence`` (distinct per stream
    and worker, the same on every run and machine)."""
    return [int(np.random.SeedSequence(seed, spawn_key=(stream, worker)).generate_state(1, dtype=np.uint32)[0])
            for worker in range(num_workers)]


def seed_process(seed: int) -> None:
    """Seed Python's ``random``, NumPy's global generator and torch (all devices) of this process."""
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


def checkpoint_seed(checkpoint: dict) -> int | None:
    """The seed of the last epoch saved in an nnU-Net checkpoint of a plugin trainer (None: unseeded or absent)."""
    history = checkpoint.get("logging", {}).get(SEED_LOG_KEY) or [None]
    return history[-1]


class TrainingSeed:
    """The seed of one training (None: nnU-Net's unseeded behaviour) and the three places it is applied."""

    def __init__(self, seed: int | None, log: Callable[[str], None] = print):
        self.seed = seed
        self.log = log

    @classmethod
    def for_trainer(cls, declared: int | None, trainer_name: str, log: Callable[[str], None] = print) -> TrainingSeed:
        return cls(resolve_seed(declared, trainer_name), log)

    def seed_training_process(self) -> None:
        """Point 1 of the module docstring; logs the seed (or that the run is unseeded)."""
        if self.seed is None:
            self.log(f"Seed: none (nnU-Net's unseeded behaviour; set {SEED_ENV_VAR}=N for a repeatable run)")
            return
        seed_process(self.seed)
        self.log(f"Seed: {self.seed} (Python, NumPy, torch; augmentation workers get seeds derived from it)")

    def seed_augmenters(self, train, val):
        """Point 2: give nnU-Net's multi-process augmenters per-worker seeds and restart them; returns both."""
        if self.seed is not None:
            for augmenter, stream in ((train, TRAINING_STREAM), (val, VALIDATION_STREAM)):
                if isinstance(augmenter, NonDetMultiThreadedAugmenter):
                    augmenter.seeds = worker_seeds(self.seed, stream, augmenter.num_processes)
                    augmenter.restart()
                    self.log(f"Augmentation workers ({'training' if stream == TRAINING_STREAM else 'validation'}) "
                             f"restarted with seeds {augmenter.seeds}")
        return train, val

    def record(self, logger, epoch: int) -> None:
        """Point 3: the seed of ``epoch`` in nnU-Net's logger (earlier epochs of a resumed run without it: None)."""
        history = logger.local_logger.my_fantastic_logging.setdefault(SEED_LOG_KEY, [])
        history.extend([None] * (epoch - len(history)))
        logger.log(SEED_LOG_KEY, self.seed, epoch)


class SeededTraining:
    """Mixin for a subclass of nnU-Net's ``nnUNetTrainer``: the three seeding points of the module docstring.

    Each method extends nnU-Net's method of the same name (it calls it through ``super()``, copying nothing).
    """

    #: seed of Python, NumPy, torch and the augmentation workers (None: nnU-Net's unseeded behaviour);
    #: the environment variable ``NNUNET_LOSSPLUG_SEED`` overrides it
    seed: ClassVar[int | None] = None

    def __init__(self, plans: dict, configuration: str, fold: int, dataset_json: dict,
                 device: torch.device = torch.device("cuda")):  # noqa: B008 - nnU-Net's signature
        super().__init__(plans, configuration, fold, dataset_json, device)
        self.seeding = TrainingSeed.for_trainer(self.seed, type(self).__name__, self.print_to_log_file)

    def on_train_start(self):
        self.seeding.seed_training_process()  # just before nnU-Net builds the network and the data loaders
        super().on_train_start()

    def get_dataloaders(self):
        return self.seeding.seed_augmenters(*super().get_dataloaders())

    def on_train_epoch_end(self, train_outputs):
        super().on_train_epoch_end(train_outputs)
        self.seeding.record(self.logger, self.current_epoch)
