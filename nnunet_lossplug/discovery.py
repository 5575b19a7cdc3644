"""Make nnU-Net's unchanged CLI find our trainers.

nnU-Net v2 (2.8) searches the folders listed in the environment variable ``nnUNet_extTrainer``
(``os.pathsep``-separated) when a trainer named with ``-tr`` is not one of its own. The installed
``nnunet-lossplug.pth`` file calls :func:`register_trainer_folder` when Python starts, which puts our
trainer folder first in that variable (keeping whatever the user listed, in its order, after it). Nothing is
copied into nnU-Net and nothing of nnU-Net is edited.

First, because nnU-Net imports every file of a folder until it finds the class, and a file that raises on import
(say ``ModuleNotFoundError`` for a package missing on this machine) ends the search of every later folder: with
our folder first, ``-tr nnUNetTrainerRRW`` works whatever the user's folders hold. The price: a user's class
named like one of ours is never used (``nnunet-lossplug trainers`` and the trainer's start warn about it).
``NNUNET_LOSSPLUG_NO_AUTOREGISTER=1`` turns the start-up hook off; then ``nnunet-lossplug env`` prints the line
to put in a shell profile instead.

This module is imported at interpreter start-up: it must import nothing heavy and never raise.
"""

from __future__ import annotations

import os
from pathlib import Path

ENV_VAR = "nnUNet_extTrainer"
OPT_OUT_VAR = "NNUNET_LOSSPLUG_NO_AUTOREGISTER"
INSTALLED_FOLDER = "ext_trainer_folder"  # where a wheel puts the folder, inside the package
_MARKER = "lossplug_region_wise.py"  # a file every copy of our trainer folder has


def trainers_folder() -> Path:
    """The folder nnU-Net searches for our trainers (listed in ``nnUNet_extTrainer``).

    Its files are one-line re-exports of :mod:`nnunet_lossplug.trainers` (``from nnunet_lossplug.trainers.region_wise
    import *``), so the class nnU-Net finds by name is the package's class. An installed wheel carries the folder
    as ``nnunet_lossplug/ext_trainer_folder`` (not a package: nnU-Net imports its files as top-level modules); a
    source checkout or an editable install uses the ``trainers/`` folder next to the package.
    """
    package_dir = Path(__file__).resolve().parent
    source_checkout = package_dir.parent / "trainers"
    if (source_checkout / _MARKER).is_file():
        return source_checkout
    return package_dir / INSTALLED_FOLDER


def ext_trainer_value(existing: str | None = None) -> str:
    """The value of ``nnUNet_extTrainer``: our folder first, then the folders of ``existing`` in order (each once)."""
    folder = str(trainers_folder())
    entries = [p for p in (existing or "").split(os.pathsep) if p and p != folder]
    return os.pathsep.join(dict.fromkeys([folder, *entries]))


def is_registered(environ: dict[str, str] | None = None) -> bool:
    """Whether ``nnUNet_extTrainer`` in ``environ`` (default: this process) lists our trainer folder."""
    env = os.environ if environ is None else environ
    folder = str(trainers_folder())
    return folder in [p for p in env.get(ENV_VAR, "").split(os.pathsep) if p]


def register_trainer_folder() -> None:
    """Append our trainer folder to ``nnUNet_extTrainer`` in this process (inherited by child processes)."""
    try:
        if os.environ.get(OPT_OUT_VAR, "") not in ("", "0"):
            return
        os.environ[ENV_VAR] = ext_trainer_value(os.environ.get(ENV_VAR))
    except Exception:  # noqa: BLE001 - a start-up hook must never break the interpreter
        return


def shell_export_line() -> str:
    """The line to add to a shell profile where the start-up hook is off or ``.pth`` files are not run (our
    folder first, as the hook puts it)."""
    return f'export {ENV_VAR}="{trainers_folder()}${{{ENV_VAR}:+{os.pathsep}${{{ENV_VAR}}}}}"'
