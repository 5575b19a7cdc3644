"""The nnU-Net glue, in four parts with one job each, and the errors a user can meet.

- :mod:`.codecs`: how a map kind is stored per case and decoded on the device (numpy, torch; no nnunetv2).
- :mod:`.map_cache`: the dataset preprocessing hook: maps and class statistics computed once beside
  nnU-Net's preprocessed data, and the one checked reader of a map file.
- :mod:`.map_transport`: the map's ride through nnU-Net's own data loader and augmentation.
- :mod:`.trainer`: :class:`LossPlugTrainer`, whose subclasses are declarations, and the declarations' values.
- :mod:`.errors`: every user-facing error class.

Dependencies point one way: ``trainer -> map_transport -> map_cache -> codecs -> errors`` (a part imports only
parts to its right; ``tests/project/test_import_graph.py`` checks that no module import cycle exists). nnunetv2 is
imported by :mod:`.map_cache` (its dataset and plans classes) and :mod:`.trainer`; :mod:`.map_transport` uses
batchgeneratorsv2 (nnU-Net's augmentation library), :mod:`.codecs` and :mod:`.errors` neither.

The public names below are what trainers, examples and the documentation import.
"""

from nnunet_lossplug.nnunet.errors import (
    AbsentClassError,
    CacheNotWritableError,
    GradClipError,
    MapCacheError,
    NonFiniteLossError,
    UnsupportedDatasetError,
    WorkerDiedError,
)
from nnunet_lossplug.nnunet.map_cache import CaseCache, PreprocessedSource, precompute_caches
from nnunet_lossplug.nnunet.trainer import (
    SEED_ENV_VAR,
    LossPlugTrainer,
    LossSpec,
    OptimizerSpec,
    PlateauHalving,
    PolySchedule,
    StepDecay,
    TrainingSetClassWeights,
    adam,
    checkpoint_seed,
    network_ds_scales,
    network_from_plans,
    sgd,
)

__all__ = [
    "SEED_ENV_VAR",
    "AbsentClassError",
    "CacheNotWritableError",
    "CaseCache",
    "GradClipError",
    "LossPlugTrainer",
    "LossSpec",
    "MapCacheError",
    "NonFiniteLossError",
    "OptimizerSpec",
    "PlateauHalving",
    "PolySchedule",
    "PreprocessedSource",
    "StepDecay",
    "TrainingSetClassWeights",
    "UnsupportedDatasetError",
    "WorkerDiedError",
    "adam",
    "checkpoint_seed",
    "network_ds_scales",
    "network_from_plans",
    "precompute_caches",
    "sgd",
]
