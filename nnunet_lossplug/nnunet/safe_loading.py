"""Reading the pickled files a user may have received, without running code they carry.

Python's ``pickle`` runs whatever a file names (``os.system``, ``builtins.open``, ...) while it loads: a case's
properties (``nnUNet_preprocessed/DatasetXXX/<data>/<case>.pkl``) or a checkpoint (``.pth``, a zip archive around a
pickle) copied from a colleague, a shared disk or a download can carry such a payload. The plugin reads both kinds
with an allow-list (``docs/faults.md``, "What the plugin trusts"):

- :func:`load_case_properties`: a :class:`RestrictedUnpickler` that rebuilds only numpy arrays, dtypes and scalars
  and the builtin containers, what nnU-Net's preprocessing writes into a case's properties;
- :func:`read_checkpoint`: ``torch.load(..., weights_only=True)`` (PyTorch's own allow-list: tensors, containers)
  plus exactly the numpy scalar and dtype that nnU-Net's checkpoints hold (``_best_ema``, the logged Dice values),
  under their numpy 1 and numpy 2 names. :data:`TRUST_ENV_VAR` set to ``1`` loads a checkpoint the user trusts
  with full trust, as nnU-Net does;
- :func:`read_training_checkpoint`: a checkpoint that an nnU-Net training resumes (``--c``) or validates
  (``--val``), refused when another trainer wrote it.

Everything else is refused with :class:`~nnunet_lossplug.nnunet.errors.UntrustedFileError` or
:class:`~nnunet_lossplug.nnunet.errors.CheckpointError`: one line naming the file and what is wrong with it.
"""

from __future__ import annotations

import io
import os
import pickle
import re
import zipfile
from pathlib import Path
from typing import Any

import numpy as np

from nnunet_lossplug.nnunet.errors import CheckpointError, UntrustedFileError

#: set to 1 to load a checkpoint with full trust (``weights_only=False``): only for a file you made yourself
TRUST_ENV_VAR = "NNUNET_LOSSPLUG_TRUST_CHECKPOINTS"


def _numpy_multiarray(name: str) -> Any:
    """A function of numpy's C core (``numpy._core.multiarray`` in numpy 2, ``numpy.core.multiarray`` in 1)."""
    core = getattr(np, "_core", None) or np.core
    return getattr(core.multiarray, name)


def _pickle_allow_list() -> dict[tuple[str, str], Any]:
    """``(module, name)`` of a pickle's global -> the object it may stand for; nothing else is rebuilt."""
    allowed: dict[tuple[str, str], Any] = {("numpy", "ndarray"): np.ndarray, ("numpy", "dtype"): np.dtype}
    for module in ("numpy.core.multiarray", "numpy._core.multiarray"):  # numpy 1 and numpy 2 write either
        for name in ("_reconstruct", "scalar"):
            allowed[(module, name)] = _numpy_multiarray(name)
    for module in ("numpy.core.numeric", "numpy._core.numeric"):  # arrays pickled with protocol 5
        allowed[(module, "_frombuffer")] = (getattr(np, "_core", None) or np.core).numeric._frombuffer
    for name, value in vars(np.dtypes).items():  # the dtype classes of numpy >= 1.25 (Float64DType, ...)
        if isinstance(value, type) and issubclass(value, np.dtype):
            allowed[("numpy.dtypes", name)] = value
    for container in (dict, list, tuple, set, frozenset, bytearray, complex, slice, range):
        allowed[("builtins", container.__name__)] = container
    allowed[("collections", "OrderedDict")] = __import__("collections").OrderedDict
    return allowed


class RestrictedUnpickler(pickle.Unpickler):
    """A :class:`pickle.Unpickler` that rebuilds numpy arrays, dtypes and scalars and builtin containers only.

    Any other global the file names (a function to call, a class to build) stops the load with
    :class:`UntrustedFileError` before it is looked up, so nothing the file carries runs.
    """

    _allowed = _pickle_allow_list()

    def __init__(self, file: io.BufferedIOBase, path: Path):
        super().__init__(file)
        self.path = path

    def find_class(self, module: str, name: str) -> Any:
        try:
            return self._allowed[(module, name)]
        except KeyError:
            raise UntrustedFileError(
                f"{self.path} asks to run or build {module}.{name}, which is not among the numpy arrays, numbers "
                f"and containers nnU-Net writes into a case's properties; the plugin never loads such a file (it "
                f"would run the code it names: a file received from someone else?). Re-create the preprocessed "
                f"data yourself with nnUNetv2_plan_and_preprocess (or nnUNetv2_preprocess)."
            ) from None


def load_case_properties(path: str | os.PathLike) -> dict:
    """The properties nnU-Net's preprocessing stored for one case (``<case>.pkl``), by :class:`RestrictedUnpickler`.

    A missing file raises :class:`FileNotFoundError` (the caller names the fix); a file that is not a pickle of a
    dict, or one naming anything but numpy arrays and builtin containers, :class:`UntrustedFileError`.
    """
    path = Path(path)
    with open(path, "rb") as handle:
        try:
            properties = RestrictedUnpickler(handle, path).load()
        except UntrustedFileError:
            raise
        except Exception as err:  # noqa: BLE001 - any damage: named in one line
            raise UntrustedFileError(
                f"{path} is not a readable properties file of nnU-Net's preprocessing ({type(err).__name__}: "
                f"{err}). Re-create the preprocessed data with nnUNetv2_plan_and_preprocess (or "
                f"nnUNetv2_preprocess)."
            ) from None
    if not isinstance(properties, dict):
        raise UntrustedFileError(f"{path} holds a {type(properties).__name__}, not the dict of a case's properties "
                                 f"nnU-Net's preprocessing writes. Re-create the preprocessed data.")
    return properties


def _checkpoint_safe_globals() -> list[Any]:
    """What nnU-Net's checkpoints hold beyond tensors and containers: numpy scalars and their dtypes.

    ``(object, "module.name")`` pairs cover the names numpy 1 wrote (``numpy.core.multiarray.scalar``).
    """
    scalar = _numpy_multiarray("scalar")
    return [scalar, np.dtype, (scalar, "numpy.core.multiarray.scalar"),
            (scalar, "numpy._core.multiarray.scalar"), *[value for value in vars(np.dtypes).values()
                                                         if isinstance(value, type) and issubclass(value, np.dtype)]]


def trusts_checkpoints() -> bool:
    """Whether the user asked for checkpoints to be loaded with full trust (:data:`TRUST_ENV_VAR`)."""
    return os.environ.get(TRUST_ENV_VAR, "") not in ("", "0")


def _check_file(path: Path) -> None:
    """Refuse what is not a complete checkpoint file before any byte of it is unpickled."""
    if not path.exists():
        raise CheckpointError(f"{path}: no such file (a checkpoint is the checkpoint_final.pth of an nnU-Net "
                              f"training).")
    if path.is_dir():
        raise CheckpointError(f"{path} is a folder, not a checkpoint file; pass a checkpoint_final.pth inside it.")
    with open(path, "rb") as handle:
        head = handle.read(4)
    if head.startswith(b"PK") and not zipfile.is_zipfile(path):
        raise CheckpointError(f"{path} is a truncated or damaged checkpoint (a zip archive without its end: an "
                              f"interrupted copy or download?); copy it again from where it was saved.")
    if not head.startswith(b"PK") and not head.startswith(b"\x80"):  # zip of torch.save, or its legacy pickle
        raise CheckpointError(f"{path} is not a PyTorch checkpoint (torch.save writes a zip archive; this file "
                              f"starts with {head!r}: a text file, an error page of a download?).")


_UNSUPPORTED_GLOBAL = re.compile(r"Unsupported global: GLOBAL ([\w.]+)")


def read_checkpoint(path: str | os.PathLike, map_location: Any = "cpu") -> dict:
    """The dict a ``torch.save``'d nnU-Net checkpoint holds, loaded without running code the file may carry.

    Refused with :class:`CheckpointError`, in one line naming the file: a missing file, a folder, a truncated zip,
    a file that is not a checkpoint, a pickle naming anything but tensors, containers and numpy scalars (unless
    :data:`TRUST_ENV_VAR` is set), and anything but a dict.
    """
    import torch  # the glue's parts import torch anyway; kept local so this module stays cheap for the CLI

    path = Path(path)
    _check_file(path)
    trusted = trusts_checkpoints()
    try:
        if trusted:
            saved = torch.load(path, map_location=map_location, weights_only=False)
        else:
            with torch.serialization.safe_globals(_checkpoint_safe_globals()):
                saved = torch.load(path, map_location=map_location, weights_only=True)
    except pickle.UnpicklingError as err:
        found = _UNSUPPORTED_GLOBAL.search(str(err))
        if found is None:
            raise CheckpointError(f"{path} cannot be read as a checkpoint ({_first_line(err)}).") from None
        raise CheckpointError(
            f"{path} asks to run or build {found.group(1)}, which an nnU-Net checkpoint does not hold (tensors, "
            f"containers, numpy numbers); the plugin does not load it, as that would run code the file carries. "
            f"Only for a checkpoint you made yourself: set {TRUST_ENV_VAR}=1 to load it with full trust."
        ) from None
    except (RuntimeError, OSError, EOFError, ValueError, TypeError, AttributeError, KeyError) as err:
        raise CheckpointError(f"{path} cannot be read as a checkpoint ({type(err).__name__}: "
                              f"{_first_line(err)}); copy it again from where it was saved.") from None
    if not isinstance(saved, dict):
        raise CheckpointError(f"{path} holds a {type(saved).__name__}, not the dict of an nnU-Net checkpoint.")
    return saved


def network_weights(saved: dict, path: str | os.PathLike) -> dict:
    """``saved["network_weights"]``: the network's tensors by name; else :class:`CheckpointError` naming the file."""
    import torch

    weights = saved.get("network_weights")
    if not isinstance(weights, dict) or not weights or \
            not all(isinstance(value, torch.Tensor) for value in weights.values()):
        raise CheckpointError(
            f"{path} holds no network weights (its 'network_weights' is "
            f"{'missing' if weights is None else 'not a dict of tensors'}; keys: {sorted(map(str, saved))[:8]}): it "
            f"is not a checkpoint of an nnU-Net training. Pass the checkpoint_final.pth of one.")
    return weights


def read_training_checkpoint(path: str | os.PathLike, trainer_name: str, map_location: Any = "cpu") -> dict:
    """A checkpoint that nnU-Net's ``load_checkpoint`` continues (``--c``) or validates (``--val``), read safely.

    Refused with :class:`CheckpointError` when it holds no network weights, or when its ``trainer_name`` is not
    ``trainer_name``: continuing another trainer's checkpoint would mix two trainings under one name (nnU-Net
    itself resumes it silently with the same optimiser, and fails with a ``KeyError`` with another one).
    """
    saved = read_checkpoint(path, map_location)
    network_weights(saved, path)
    saved_by = saved.get("trainer_name")
    if saved_by is not None and saved_by != trainer_name:
        raise CheckpointError(
            f"{path} was written by the trainer {saved_by}, not by {trainer_name}: continuing it (--c) or "
            f"validating it (--val) as {trainer_name} would mix the two trainings under one name. Run -tr "
            f"{saved_by} to continue it, or move that checkpoint_*.pth aside to train {trainer_name} afresh."
        )
    return saved


def _first_line(error: BaseException) -> str:
    text = str(error).strip().splitlines()
    return text[0][:300] if text else type(error).__name__
