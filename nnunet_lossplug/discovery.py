"""Make nnU-Net's unchanged CLI find our trainers.

nnU-Net v2 (2.8) searches the folders listed in the environment variable ``nnUNet_extTrainer``
(``os.pathsep``-separated) when a trainer named with ``-tr`` is not one of its own. The installed
``nnunet-lossplug.pth`` file calls :func:`register_trainer_folder` when Python starts, which appends our
trainer folder to that variable (keeping whatever the user already listed). Nothing is copied into nnU-Net
and nothing of nnU-Net is edited. ``NNUNET_LOSSPLUG_NO_AUTOREGISTER=1`` turns the start-up hook off; then
``nnunet-lossplug env`` prints the line to put in a shell profile instead.

nnU-Net resolves ``-tr NAME`` to the first class called NAME it finds: in its own trainer folder, then in
each folder of ``nnUNet_extTrainer`` in the order listed (in a folder, its ``.py`` files by file name, then its
sub-packages). A second class of the same name is silently never used. :func:`trainer_search_folders`,
:func:`class_definitions` and :func:`duplicate_trainer_names` find such names by reading the files' source
(``ast``; nothing is imported), for ``nnunet-lossplug new-trainer`` and ``nnunet-lossplug trainers``.

This module is imported at interpreter start-up: it must import nothing heavy and never raise.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

ENV_VAR = "nnUNet_extTrainer"
OPT_OUT_VAR = "NNUNET_LOSSPLUG_NO_AUTOREGISTER"
_MARKER = "lossplug_region_wise.py"  # a file every copy of our trainer folder has


def trainers_folder() -> Path:
    """The folder holding our ``nnUNetTrainer`` subclasses.

    An installed wheel carries it as ``nnunet_lossplug/trainers``; a source checkout or an editable install
    uses the live ``trainers/`` folder next to the package, so edits take effect without reinstalling.
    """
    package_dir = Path(__file__).resolve().parent
    source_checkout = package_dir.parent / "trainers"
    if (source_checkout / _MARKER).is_file():
        return source_checkout
    return package_dir / "trainers"


def ext_trainer_value(existing: str | None = None) -> str:
    """The value of ``nnUNet_extTrainer`` with our folder appended to ``existing`` (once)."""
    folder = str(trainers_folder())
    entries = [p for p in (existing or "").split(os.pathsep) if p]
    if folder not in entries:
        entries.append(folder)
    return os.pathsep.join(entries)


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
    """The line to add to a shell profile where the start-up hook is off or ``.pth`` files are not run."""
    return f'export {ENV_VAR}="${{{ENV_VAR}:+${{{ENV_VAR}}}{os.pathsep}}}{trainers_folder()}"'


@dataclass(frozen=True)
class ClassDefinition:
    """A top-level ``class NAME(...)`` statement: where it is and the source text of its bases."""

    name: str
    path: Path
    line: int
    bases: tuple[str, ...]

    @property
    def looks_like_trainer(self) -> bool:
        """Whether the name or a base mentions ``Trainer`` (helper classes such as losses do not)."""
        return "Trainer" in self.name or any("Trainer" in base for base in self.bases)

    def __str__(self) -> str:
        return f"{self.path}:{self.line}"


def nnunet_trainer_folder() -> Path | None:
    """nnU-Net's own trainer folder (``nnunetv2/training/nnUNetTrainer``), found without importing nnunetv2."""
    import importlib.util

    spec = importlib.util.find_spec("nnunetv2")
    if spec is None or not spec.submodule_search_locations:
        return None
    folder = Path(list(spec.submodule_search_locations)[0]) / "training" / "nnUNetTrainer"
    return folder if folder.is_dir() else None


def trainer_search_folders(extra: Iterable[str | Path] = (), environ: dict[str, str] | None = None) -> list[Path]:
    """The folders nnU-Net searches for ``-tr NAME``, in its order, then the plugin's and ``extra`` folders.

    Order: nnU-Net's own trainer folder, each existing folder of ``nnUNet_extTrainer`` as listed, the plugin's
    trainer folder (listed at start-up by the ``.pth`` hook; appended here when it is not), then ``extra``
    (e.g. the folder ``new-trainer`` writes to). Each folder appears once.
    """
    env = os.environ if environ is None else environ
    listed = [Path(p) for p in env.get(ENV_VAR, "").split(os.pathsep) if p.strip()]
    candidates = [nnunet_trainer_folder(), *listed, trainers_folder(), *(Path(p) for p in extra)]
    folders, seen = [], set()
    for folder in candidates:
        if folder is None or not folder.is_dir() or folder.resolve() in seen:
            continue
        seen.add(folder.resolve())
        folders.append(folder)
    return folders


def _module_files(folder: Path) -> list[Path]:
    """The ``.py`` files nnU-Net imports from ``folder``, in its search order (``pkgutil.iter_modules``)."""
    try:
        entries = sorted(os.listdir(folder))
    except OSError:
        return []
    files = [folder / name for name in entries
             if name.endswith(".py") and name[:-3].isidentifier() and name != "__init__.py"
             and (folder / name).is_file()]
    packages = [folder / name for name in entries
                if name.isidentifier() and (folder / name / "__init__.py").is_file()]
    return files + [path for package in packages for path in _module_files(package)]


def _top_level_classes(path: Path) -> list[ClassDefinition]:
    import ast

    try:
        tree = ast.parse(path.read_bytes(), filename=str(path))
    except (OSError, SyntaxError, ValueError):  # unreadable: nnU-Net's import fails on it too, loudly
        return []
    return [ClassDefinition(node.name, path, node.lineno, tuple(ast.unparse(base) for base in node.bases))
            for node in tree.body if isinstance(node, ast.ClassDef)]


def class_definitions(folders: Sequence[Path]) -> dict[str, list[ClassDefinition]]:
    """Every top-level class of the files of ``folders``, by name, in nnU-Net's search order."""
    definitions: dict[str, list[ClassDefinition]] = {}
    for folder in folders:
        for path in _module_files(Path(folder)):
            for definition in _top_level_classes(path):
                definitions.setdefault(definition.name, []).append(definition)
    return definitions


def duplicate_trainer_names(folders: Sequence[Path] | None = None) -> dict[str, list[ClassDefinition]]:
    """Trainer names defined in more than one file of ``folders`` (default :func:`trainer_search_folders`).

    A class counts as a trainer when its name or one of its bases mentions ``Trainer``. Each value lists the
    definitions in nnU-Net's search order: ``-tr NAME`` gets the first, the others are never used.
    """
    folders = trainer_search_folders() if folders is None else folders
    return {name: found for name, found in class_definitions(folders).items()
            if len({d.path.resolve() for d in found}) > 1 and any(d.looks_like_trainer for d in found)}
