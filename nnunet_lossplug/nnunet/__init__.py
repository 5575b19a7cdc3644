"""The nnU-Net glue: the only sub-package that imports nnunetv2.

- :class:`LossPlugTrainer` — base class of every trainer; subclasses are declarations.
- :class:`LossSpec`, :class:`OptimizerSpec`, :func:`adam`, :func:`sgd`, :class:`TrainingSetClassWeights` —
  the values those declarations are made of.
- :func:`precompute_caches` / :class:`CaseCache` — the dataset preprocessing hook (RW maps, class statistics).
"""

from nnunet_lossplug.nnunet.precompute import CaseCache, MapCacheError, precompute_caches
from nnunet_lossplug.nnunet.source import PreprocessedSource, UnsupportedDatasetError
from nnunet_lossplug.nnunet.specs import LossSpec, OptimizerSpec, TrainingSetClassWeights, adam, sgd
from nnunet_lossplug.nnunet.trainer import LossPlugTrainer

__all__ = [
    "CaseCache",
    "LossPlugTrainer",
    "LossSpec",
    "MapCacheError",
    "OptimizerSpec",
    "PreprocessedSource",
    "TrainingSetClassWeights",
    "UnsupportedDatasetError",
    "adam",
    "precompute_caches",
    "sgd",
]
