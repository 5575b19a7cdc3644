"""The nnU-Net glue: the only sub-package that imports nnunetv2.

- :class:`LossPlugTrainer` — base class of every trainer; subclasses are declarations.
- :class:`LossSpec`, :class:`OptimizerSpec`, :func:`adam`, :func:`sgd`, :class:`TrainingSetClassWeights` —
  the values those declarations are made of.
- :func:`precompute_caches` / :class:`CaseCache` — the dataset preprocessing hook (RW maps, class statistics).
- The errors a user can meet: :class:`MapCacheError` (and its :class:`WorkerDiedError`,
  :class:`CacheNotWritableError`), :class:`NonFiniteLossError`, :class:`AbsentClassError`.
"""

from nnunet_lossplug.nnunet.precompute import (
    CacheNotWritableError,
    CaseCache,
    MapCacheError,
    WorkerDiedError,
    precompute_caches,
)
from nnunet_lossplug.nnunet.source import PreprocessedSource, UnsupportedDatasetError
from nnunet_lossplug.nnunet.specs import LossSpec, OptimizerSpec, TrainingSetClassWeights, adam, sgd
from nnunet_lossplug.nnunet.trainer import LossPlugTrainer
from nnunet_lossplug.nnunet.training_guards import AbsentClassError, NonFiniteLossError

__all__ = [
    "AbsentClassError",
    "CacheNotWritableError",
    "CaseCache",
    "LossPlugTrainer",
    "LossSpec",
    "MapCacheError",
    "NonFiniteLossError",
    "OptimizerSpec",
    "PreprocessedSource",
    "TrainingSetClassWeights",
    "UnsupportedDatasetError",
    "WorkerDiedError",
    "adam",
    "precompute_caches",
    "sgd",
]
