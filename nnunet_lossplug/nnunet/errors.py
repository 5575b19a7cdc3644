"""Every error the nnU-Net glue raises to a user, in one place.

Each is raised with one line that names the problem and the fix (the command line shows the traceback only
with ``--debug`` or ``NNUNET_LOSSPLUG_DEBUG=1``). This module imports nothing of the package, so every room
of :mod:`nnunet_lossplug.nnunet` may import it.

- Dataset set-up: :class:`UnsupportedDatasetError`, :class:`PreprocessedCaseMissingError`.
- Maps: :class:`MapNotRectifiedError`.
- Precompute cache: :class:`MapCacheError` and its :class:`WorkerDiedError`, :class:`CacheNotWritableError`,
  :class:`ForeignFileError`;
  :class:`BuildInterrupted` (Ctrl-C or SIGTERM during a build).
- Training: :class:`NonFiniteLossError`, :class:`AbsentClassError`, :class:`GradClipError`.
- Fine-tuning: :class:`PretrainedWeightsError`; the cascade: :class:`PreviousStageMissingError`.
- Files a user may have received: :class:`UntrustedFileError` (a pickle naming code), :class:`CheckpointError`.
"""

from __future__ import annotations


class UnsupportedDatasetError(RuntimeError):
    """A dataset set-up (label layout, regions, ignore label, map kind) the plugin cannot train with."""


class MapNotRectifiedError(ValueError):
    """A map kind stored in the rectified two-channel form produced a case that is not rectified."""


class MapCacheError(RuntimeError):
    """A map cache that cannot be used; the message names the command that fixes it."""


class WorkerDiedError(MapCacheError):
    """A worker process of the hook died (a signal, the out-of-memory killer) while computing a case."""


class CacheNotWritableError(MapCacheError, PermissionError):
    """The cache is incomplete and this user cannot write its folder."""


class ForeignFileError(MapCacheError):
    """An entry where the cache keeps its files that the plugin did not make: a symbolic link, a device, a folder
    where a file belongs. It is never opened, written through, replaced or removed."""


class BuildInterrupted(KeyboardInterrupt):
    """A signal (SIGINT from Ctrl-C, or SIGTERM) ended a cache build; the message says what was kept.

    A :class:`KeyboardInterrupt`, so code that stops on Ctrl-C still does; ``signum`` is the signal's number.
    """

    def __init__(self, message: str, signum: int = 2):
        super().__init__(message)
        self.signum = signum


class NonFiniteLossError(FloatingPointError):
    """The training loss became NaN or infinite."""


class AbsentClassError(ValueError):
    """A class-weighted loss was asked for while a class has no voxel in the fold's training cases."""


class GradClipError(ValueError):
    """A declared gradient-clipping norm that nnU-Net's training step cannot honour."""


class PretrainedWeightsError(ValueError):
    """A ``-pretrained_weights`` checkpoint whose network does not match the trainer's (or that cannot be read)."""


class PreprocessedCaseMissingError(FileNotFoundError):
    """A case that ``splits_final.json`` lists but whose preprocessed files are gone (nnU-Net's preprocessing
    writes them again)."""


class PreviousStageMissingError(FileNotFoundError):
    """``3d_cascade_fullres`` started without the previous stage's predictions for some training cases."""


class UntrustedFileError(ValueError):
    """A pickled file (a case's ``.pkl``) that names something to run or build beyond numpy arrays and containers."""


class CheckpointError(ValueError):
    """A checkpoint that is missing, damaged, not nnU-Net's, carries code, or belongs to another trainer."""
