"""Every error the nnU-Net glue raises to a user, in one place.

Each is raised with one line that names the problem and the fix (the command line shows the traceback only
with ``--debug`` or ``NNUNET_LOSSPLUG_DEBUG=1``). This module imports nothing of the package, so every module
of :mod:`nnunet_lossplug.nnunet` may import it.

- Dataset set-up: :class:`UnsupportedDatasetError`, :class:`PreprocessedCaseMissingError`,
  :class:`UnknownConfigurationError`, :class:`UndeclaredLabelError`.
- Maps: :class:`MapNotRectifiedError`.
- Precompute cache: :class:`MapCacheError` and its :class:`WorkerDiedError`, :class:`CacheNotWritableError`,
  :class:`ForeignFileError`;
  :class:`BuildInterrupted` (Ctrl-C or SIGTERM during a build).
- Training: :class:`NonFiniteLossError`, :class:`AbsentClassError`, :class:`GradClipError`,
  :class:`DeviceUnavailableError`.
- Declarations: :class:`TrainerDeclarationError`, :class:`TrainerSettingError`, :class:`SeedError`.
- Fine-tuning: :class:`PretrainedWeightsError`; the cascade: :class:`PreviousStageMissingError`.
- Files a user may have received: :class:`UntrustedFileError` (a pickle naming code), :class:`CheckpointError`.

Every class but :class:`BuildInterrupted` also derives from :class:`LossPlugError`, the mark by which
:mod:`nnunet_lossplug.nnunet.trainer.one_line_errors` recognises the plugin's refusals under ``nnUNetv2_train``
(one line on stderr instead of a traceback). Each keeps its standard base (``ValueError``, ...), so code that
catches those still catches them.
"""

from __future__ import annotations


class LossPlugError(Exception):
    """Mark of an error the plugin raises to a user, with a message of one line naming the problem and the fix."""


class UnsupportedDatasetError(LossPlugError, RuntimeError):
    """A dataset set-up (label layout, regions, ignore label, map kind) the plugin cannot train with."""


class MapNotRectifiedError(LossPlugError, ValueError):
    """A map kind stored in the rectified two-channel form produced a case that is not rectified."""


class MapCacheError(LossPlugError, RuntimeError):
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


class NonFiniteLossError(LossPlugError, FloatingPointError):
    """The training loss became NaN or infinite."""


class DeviceUnavailableError(LossPlugError, RuntimeError):
    """``nnUNetv2_train -device cuda`` (nnU-Net's default) or ``mps`` where PyTorch finds no such device."""


class AbsentClassError(LossPlugError, ValueError):
    """A class-weighted loss was asked for while a class has no voxel in the fold's training cases."""


class GradClipError(LossPlugError, ValueError):
    """A declared gradient-clipping norm that nnU-Net's training step cannot honour."""


class PretrainedWeightsError(LossPlugError, ValueError):
    """A ``-pretrained_weights`` checkpoint whose network does not match the trainer's (or that cannot be read)."""


class PreprocessedCaseMissingError(LossPlugError, FileNotFoundError):
    """A case that ``splits_final.json`` lists but whose preprocessed files are gone (nnU-Net's preprocessing
    writes them again)."""


class PreviousStageMissingError(LossPlugError, FileNotFoundError):
    """``3d_cascade_fullres`` started without the previous stage's predictions for some training cases."""


class UntrustedFileError(LossPlugError, ValueError):
    """A pickled file (a case's ``.pkl``) that names something to run or build beyond numpy arrays and containers."""


class CheckpointError(LossPlugError, ValueError):
    """A checkpoint that is missing, damaged, not nnU-Net's, carries code, or belongs to another trainer."""


class TrainerDeclarationError(LossPlugError, TypeError):
    """A trainer class whose declarations cannot make a training (e.g. no ``loss_spec``)."""


class TrainerSettingError(LossPlugError, ValueError):
    """A trainer setting whose value is out of its range (e.g. ``map_placement``, the collapse guard's patience)."""


class UnknownConfigurationError(LossPlugError, ValueError):
    """A configuration (``-c``) that the dataset's plans do not hold."""


class UndeclaredLabelError(LossPlugError, ValueError):
    """A preprocessed case holding a label value that ``dataset.json`` does not declare."""


class SeedError(LossPlugError, ValueError):
    """A seed (``NNUNET_LOSSPLUG_SEED`` or a trainer's ``seed``) that is not an integer in NumPy's range."""
