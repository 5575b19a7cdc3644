"""Trainer classes found by reading the source of nnU-Net's trainer folders (``ast``; nothing is imported).

nnU-Net resolves ``-tr NAME`` to the first class called NAME it finds: in its own trainer folder, then in each
folder of ``nnUNet_extTrainer`` in the order listed (in a folder, its ``.py`` files by file name, then its
sub-packages). A second class of the same name is silently never used. :func:`trainer_search_folders`,
:func:`class_definitions` and :func:`duplicate_trainer_names` find such names for ``nnunet-lossplug new-trainer``,
``nnunet-lossplug trainers`` and a trainer's start.

nnU-Net takes ``getattr(module, NAME)`` of each imported file, so a file "defines" NAME whenever running it binds
NAME at module level: a ``class`` statement at any depth of the module's statements (inside ``if``, ``for``,
``while``, ``try``, ``with``, ``match``), an assignment (``NAME = make_trainer(...)``, ``for``/``with`` targets,
``:=``), a ``global NAME`` bound inside a function, or an import. The whole syntax tree is walked for these
(:func:`module_bindings`); function and class bodies are not module level and are skipped, except for their
``global`` names. The modules are *not* imported: importing runs the user's code (a training file may start
work, need a GPU or a package missing here, or take minutes), and a scan must be safe to run anywhere, e.g. by
``new-trainer`` before a file is written. What the walk cannot see is a name made at run time
(``globals()[name] = ...``, ``setattr``); ``nnunet-lossplug trainers`` imports the files and lists what they define.

Imports are followed to the module's source: ``from package.module import *`` (honouring a literal ``__all__``)
and ``from package.module import NAME [as OTHER]`` for a NAME that mentions ``Trainer``, so the plugin's trainer
folder (one-line re-exports of :mod:`nnunet_lossplug.trainers`) and a user's file that imports a trainer to
subclass it do not count as second definitions. A class is reported at the file that defines it, so two files
re-exporting the same module are one definition, not two; an import whose source cannot be found is not
reported. This module imports neither nnunetv2 nor the trainers, so nnU-Net glue that runs at a trainer's start
may import it.
"""

from __future__ import annotations

import ast
import functools
import importlib.util
import os
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import NamedTuple

from nnunet_lossplug.discovery import ENV_VAR, trainers_folder


class ClassDefinition(NamedTuple):
    """A module-level binding of NAME (a ``class`` statement, an assignment, ...): where it is and, for a class
    statement, the source text of its bases (empty for other bindings)."""

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
    spec = importlib.util.find_spec("nnunetv2")
    if spec is None or not spec.submodule_search_locations:
        return None
    folder = Path(list(spec.submodule_search_locations)[0]) / "training" / "nnUNetTrainer"
    return folder if folder.is_dir() else None


def trainer_search_folders(extra: Iterable[str | Path] = (), environ: dict[str, str] | None = None) -> list[Path]:
    """The folders nnU-Net searches for ``-tr NAME``, in its order, then the plugin's and ``extra`` folders.

    Order: nnU-Net's own trainer folder, each existing folder of ``nnUNet_extTrainer`` as listed (the ``.pth``
    hook lists the plugin's first; where it is not listed it is put first here, as the hook would), then
    ``extra`` (e.g. the folder ``new-trainer`` writes to). Each folder appears once.
    """
    env = os.environ if environ is None else environ
    listed = [Path(p) for p in env.get(ENV_VAR, "").split(os.pathsep) if p.strip()]
    ours = trainers_folder().resolve()
    if ours not in {p.resolve() for p in listed}:
        listed.insert(0, ours)
    candidates = [nnunet_trainer_folder(), *listed, *(Path(p) for p in extra)]
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


def module_source(dotted: str) -> Path | None:
    """The ``.py`` file of module ``dotted`` (``a.b.c``), found without importing it or its packages."""
    top, *rest = dotted.split(".")
    try:
        spec = importlib.util.find_spec(top)  # a top-level name: nothing is imported
    except (ImportError, ValueError):
        return None
    if spec is None:
        return None
    if not rest:
        origin = Path(spec.origin) if spec.origin else None
        return origin if origin is not None and origin.suffix == ".py" and origin.is_file() else None
    locations = [Path(p) for p in (spec.submodule_search_locations or [])]
    for position, part in enumerate(rest):
        last = position == len(rest) - 1
        found = None
        for location in locations:
            if last and (location / f"{part}.py").is_file():
                return location / f"{part}.py"
            if (location / part).is_dir():
                found = location / part
                break
        if found is None:
            return None
        if last:
            init = found / "__init__.py"
            return init if init.is_file() else None
        locations = [found]
    return None


def _parse(path: Path) -> ast.Module | None:
    try:
        status = path.stat()
    except OSError:
        return None
    return _parse_version(path, status.st_mtime_ns, status.st_size)


@functools.lru_cache(maxsize=256)
def _parse_version(path: Path, _mtime_ns: int, _size: int) -> ast.Module | None:
    """The syntax tree of one version of ``path`` (a file edited since is parsed again)."""
    try:
        return ast.parse(path.read_bytes(), filename=str(path))
    except (OSError, SyntaxError, ValueError):  # unreadable: nnU-Net's import fails on it too, loudly
        return None


def _exported_names(tree: ast.Module) -> set[str] | None:
    """A literal ``__all__`` of the module, or None (then ``import *`` takes every name without ``_``)."""
    for node in tree.body:
        if isinstance(node, ast.Assign) and any(isinstance(t, ast.Name) and t.id == "__all__" for t in node.targets):
            try:
                value = ast.literal_eval(node.value)
            except (ValueError, TypeError, SyntaxError):  # computed, e.g. from other modules' __all__
                return None
            return {name for name in value if isinstance(name, str)} if isinstance(value, (list, tuple)) else None
    return None


_SCOPES = (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef, ast.Lambda)


def _target_names(target: ast.AST) -> list[ast.Name]:
    """The names an assignment target binds (``a``, ``a, (b, *c)``; not ``x.a`` or ``x[a]``)."""
    if isinstance(target, ast.Name):
        return [target]
    if isinstance(target, (ast.Tuple, ast.List)):
        return [name for element in target.elts for name in _target_names(element)]
    if isinstance(target, ast.Starred):
        return _target_names(target.value)
    return []


def _module_level_nodes(tree: ast.Module) -> list[ast.AST]:
    """Every node that runs in the module's own scope (at any depth of its statements; not in function or class
    bodies, whose names are not the module's), and every statement of a function that declares a name ``global``."""
    found: list[ast.AST] = []
    pending: list[ast.AST] = list(tree.body)
    while pending:
        node = pending.pop(0)
        found.append(node)
        if isinstance(node, _SCOPES):
            # the decorators, bases and defaults run at module level; the body does not
            pending += [*getattr(node, "decorator_list", []), *getattr(node, "bases", []),
                        *getattr(node, "keywords", [])]
            arguments = getattr(node, "args", None)
            if isinstance(arguments, ast.arguments):
                pending += [*arguments.defaults, *(d for d in arguments.kw_defaults if d is not None)]
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                found += _global_bindings(node)
            continue
        pending += list(ast.iter_child_nodes(node))
    return found


def _global_bindings(function: ast.FunctionDef | ast.AsyncFunctionDef) -> list[ast.AST]:
    """The statements of ``function`` (nested scopes excluded) that bind a name it declares ``global``."""
    nodes: list[ast.AST] = []
    pending = list(function.body)
    while pending:
        node = pending.pop(0)
        nodes.append(node)
        if not isinstance(node, _SCOPES):
            pending += list(ast.iter_child_nodes(node))
    declared = {name for n in nodes if isinstance(n, ast.Global) for name in n.names}
    return [n for n in nodes if (n.name in declared if isinstance(n, ast.ClassDef)
                                 else any(name in declared for name, _ in _bound_names(n)))]


def _bound_names(node: ast.AST) -> list[tuple[str, int]]:
    """``(name, line)`` of each name a module-level ``node`` binds (other than ``class`` and imports)."""
    targets: list[ast.AST] = []
    if isinstance(node, ast.Assign):
        targets = list(node.targets)
    elif isinstance(node, (ast.AnnAssign, ast.AugAssign)) and (not isinstance(node, ast.AnnAssign) or node.value):
        targets = [node.target]
    elif isinstance(node, (ast.For, ast.AsyncFor, ast.NamedExpr)):
        targets = [node.target]
    elif isinstance(node, (ast.With, ast.AsyncWith)):
        targets = [item.optional_vars for item in node.items if item.optional_vars is not None]
    elif isinstance(node, ast.ExceptHandler) and node.name:
        return [(node.name, node.lineno)]
    return [(name.id, name.lineno) for target in targets for name in _target_names(target)]


def _imported(module: str, names: dict[str, str] | None, seen: frozenset[Path]) -> list[ClassDefinition]:
    """The definitions ``from module import ...`` binds: ``names`` maps each imported name to the name it is bound
    to (None: ``import *``), found in ``module``'s source; nothing when the source cannot be found."""
    source = module_source(module)
    source_tree = None if source is None or source.resolve() in seen else _parse(source)
    if source_tree is None:
        return []
    definitions = module_bindings(source, seen)
    if names is None:
        exported = _exported_names(source_tree)
        return [d for d in definitions if (d.name in exported if exported is not None else not d.name.startswith("_"))]
    return [d._replace(name=names[d.name]) for d in definitions if d.name in names]


def module_bindings(path: Path, seen: frozenset[Path] = frozenset()) -> list[ClassDefinition]:
    """Every name ``path`` binds at module level, as the module docstring says, with where it is defined."""
    tree = _parse(path)
    if tree is None:
        return []
    seen = seen | {path.resolve()}
    found = []
    for node in _module_level_nodes(tree):
        if isinstance(node, ast.ClassDef):
            found.append(ClassDefinition(node.name, path, node.lineno, tuple(ast.unparse(b) for b in node.bases)))
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            if [alias.name for alias in node.names] == ["*"]:
                found += _imported(node.module, None, seen)
            elif names := {alias.name: alias.asname or alias.name for alias in node.names
                           if "Trainer" in alias.name or "Trainer" in (alias.asname or "")}:
                found += _imported(node.module, names, seen)  # trainers only: no need to follow `from torch ...`
        elif not isinstance(node, (ast.Import, ast.ImportFrom)):
            found += [ClassDefinition(name, path, line, ()) for name, line in _bound_names(node)
                      if not (name.startswith("__") and name.endswith("__"))]  # __all__, __version__, ...
    return found


def class_definitions(folders: Sequence[Path]) -> dict[str, list[ClassDefinition]]:
    """Every module-level binding of the files of ``folders`` (imports followed), by name, in nnU-Net's search order.

    A class re-exported by several files is listed once, at the file that defines it.
    """
    definitions: dict[str, list[ClassDefinition]] = {}
    for folder in folders:
        for path in _module_files(Path(folder)):
            for definition in module_bindings(path):
                listed = definitions.setdefault(definition.name, [])
                if definition not in listed:
                    listed.append(definition)
    return definitions


def duplicate_trainer_names(folders: Sequence[Path] | None = None) -> dict[str, list[ClassDefinition]]:
    """Trainer names defined in more than one file of ``folders`` (default :func:`trainer_search_folders`).

    A class counts as a trainer when its name or one of its bases mentions ``Trainer``. Each value lists the
    definitions in nnU-Net's search order: ``-tr NAME`` gets the first, the others are never used.
    """
    folders = trainer_search_folders() if folders is None else folders
    return {name: found for name, found in class_definitions(folders).items()
            if len({d.path.resolve() for d in found}) > 1 and any(d.looks_like_trainer for d in found)}
