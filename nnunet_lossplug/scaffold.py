"""Write a user's trainer file, a ``LossPlugTrainer`` declaration (``nnunet-lossplug new-trainer``).

``nnunet-lossplug new-trainer NAME --loss ... --maps ... --ds-weights ...`` calls :func:`write_trainer`, which
checks the request (:func:`check_request`), renders a short Python file (:func:`render_trainer`) and writes
it as ``FOLDER/NAME.py``. nnU-Net finds the class once FOLDER is listed in ``nnUNet_extTrainer``
(:func:`export_line`); it imports the file as a top-level module, so the file imports installed packages only.

What would otherwise fail when training starts is checked here, with a message that names the fix: the loss
class and its keyword arguments (the loss is built once), the RW map the loss needs (its ``inputs``), the
deep-supervision weights (a :class:`~nnunet_lossplug.losses.DeepSupervisionLoss` is built once; it refuses
trainable weights for a loss that can be negative), the optimiser, and a NAME that is already a class in a
folder nnU-Net searches (its own, every ``nnUNet_extTrainer`` folder, the plugin's, the output folder: nnU-Net
would use one of the two and never the other) or whose file would shadow an installed module.
This module imports torch but not nnunetv2.
"""

from __future__ import annotations

import importlib
import importlib.util
import inspect
import json
import keyword
import math
import re
import textwrap
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from torch import nn

from nnunet_lossplug.discovery import ENV_VAR
from nnunet_lossplug.trainer_sources import class_definitions, trainer_search_folders

__all__ = [
    "OPTIMIZER_DEFAULT_LR",
    "ResolvedLoss",
    "ScaffoldError",
    "TrainerRequest",
    "check_request",
    "export_line",
    "parse_ds_weights",
    "parse_loss_kwargs",
    "render_trainer",
    "resolve_loss",
    "shipped_loss_names",
    "trainer_name_conflicts",
    "write_trainer",
]

LOSS_PACKAGE = "nnunet_lossplug.losses"
OPTIMIZER_DEFAULT_LR = {"adam": 1e-4, "sgd": 1e-2}
"""Learning rate when only ``--optimizer`` is given: Valverde & Tohka's (2022) Adam 1e-4, nnU-Net's SGD 1e-2."""
_NOT_PER_LEVEL = {
    "DeepSupervisionLoss": "the trainer wraps the loss in deep supervision itself (--ds-weights)",
}
_FILE_NAMES = {"LossPlugTrainer", "LossSpec", "adam", "sgd"}  # names the generated file imports


class ScaffoldError(ValueError):
    """A ``new-trainer`` request that would not give a working trainer; the message says how to fix it."""


@dataclass(frozen=True)
class TrainerRequest:
    """What the generated trainer declares (the options of ``nnunet-lossplug new-trainer``).

    Attributes:
        name: class name and file stem (``NAME.py``), passed to ``nnUNetv2_train -tr NAME``.
        loss: a loss class of :mod:`nnunet_lossplug.losses` (``"RegionWiseLoss"``) or ``"module:Class"`` of
            an installed module: any ``torch.nn.Module`` taking ``(logits, target)``, and ``rw_map`` if its
            ``inputs`` say so (see :mod:`nnunet_lossplug.losses.calling`).
        loss_kwargs: keyword arguments of the loss (JSON values).
        maps: a built-in map kind (``"rrw"``, ``"boundary"``, ...); required iff the loss takes ``rw_map``.
        ds_weights: ``"nnunet"`` (default), ``"trainable"`` or weights from high to low resolution.
        optimizer: ``"adam"``, ``"sgd"`` or None; with ``lr`` also None the file keeps nnU-Net's SGD, 1e-2.
        lr: initial learning rate; None = :data:`OPTIMIZER_DEFAULT_LR` of the optimiser (SGD if only lr).
        epochs: None keeps nnU-Net's 1000.
        iterations_per_epoch: training iterations per epoch; None keeps nnU-Net's 250.
        val_iterations_per_epoch: validation iterations per epoch; None keeps nnU-Net's 50.
        grad_clip: L2 gradient-clipping norm; None keeps the base class's 12 (Nguyen et al. 2019 uses 5).
    """

    name: str
    loss: str
    loss_kwargs: Mapping[str, Any] = field(default_factory=dict)
    maps: str | None = None
    ds_weights: str | tuple[float, ...] = "nnunet"
    optimizer: str | None = None
    lr: float | None = None
    epochs: int | None = None
    grad_clip: float | None = None
    iterations_per_epoch: int | None = None
    val_iterations_per_epoch: int | None = None

    def optimizer_choice(self) -> tuple[str, float] | None:
        """``(optimizer, lr)`` the file declares, or None for nnU-Net's default (SGD, lr 1e-2)."""
        if self.optimizer is None and self.lr is None:
            return None
        optimizer = self.optimizer or "sgd"
        return optimizer, self.lr if self.lr is not None else OPTIMIZER_DEFAULT_LR[optimizer]


@dataclass(frozen=True)
class ResolvedLoss:
    """The loss class of a request: where it is imported from and what its ``forward`` takes."""

    module: str
    name: str
    cls: type
    inputs: tuple[str, ...]


# ------------------------------------------------------------------------------------------------ parsing
def parse_ds_weights(text: str) -> str | tuple[float, ...]:
    """``"nnunet"``, ``"trainable"`` or comma-separated weights such as ``"1,0.1,0.01"``."""
    value = text.strip()
    if value in ("nnunet", "trainable"):
        return value
    try:
        return tuple(float(part) for part in value.split(","))
    except ValueError:
        raise ScaffoldError(
            f"--ds-weights must be 'nnunet', 'trainable' or comma-separated numbers such as 1,0.1,0.01; "
            f"got {text!r}."
        ) from None


def parse_loss_kwargs(text: str | None) -> dict[str, Any]:
    """A JSON object of keyword arguments, e.g. ``'{"batch_dice": true, "do_bg": false}'``."""
    if text is None or not text.strip():
        return {}
    try:
        value = json.loads(text)
    except json.JSONDecodeError as err:
        raise ScaffoldError(
            f"--loss-kwargs must be a JSON object such as '{{\"batch_dice\": true}}'; got {text!r} ({err})."
        ) from None
    if not isinstance(value, dict):
        raise ScaffoldError(
            f"--loss-kwargs must be a JSON object (keyword -> value); got a {type(value).__name__}: {text!r}."
        )
    return value


# ------------------------------------------------------------------------------------------------ checks
def shipped_loss_names() -> list[str]:
    """Loss classes of :mod:`nnunet_lossplug.losses` usable at each resolution (``--loss NAME``)."""
    package = importlib.import_module(LOSS_PACKAGE)
    return sorted(
        name for name in package.__all__
        if inspect.isclass(getattr(package, name)) and issubclass(getattr(package, name), nn.Module)
        and name not in _NOT_PER_LEVEL
    )


def resolve_loss(spec: str) -> tuple[str, str, type]:
    """``"RegionWiseLoss"`` or ``"module:Class"`` -> ``(module, class name, class)``, else ScaffoldError."""
    if ":" in spec:
        module_name, _, class_name = spec.partition(":")
        try:
            module = importlib.import_module(module_name)
        except ImportError as err:
            raise ScaffoldError(
                f"--loss {spec!r}: module {module_name!r} cannot be imported ({err}). nnU-Net imports the "
                f"trainer file as a top-level module, so the loss must come from an installed package "
                f"(pip install -e it) or be pasted into the generated file."
            ) from None
    else:
        module_name, class_name = LOSS_PACKAGE, spec
        module = importlib.import_module(LOSS_PACKAGE)
        if class_name in _NOT_PER_LEVEL:
            raise ScaffoldError(f"--loss {spec}: not a per-resolution loss; {_NOT_PER_LEVEL[class_name]}.")
    cls = getattr(module, class_name, None) if class_name.isidentifier() else None
    if cls is None:
        raise ScaffoldError(
            f"--loss {spec!r}: no class {class_name!r} in {module_name}. Give a loss of {LOSS_PACKAGE} "
            f"({', '.join(shipped_loss_names())}) or module:Class of an installed module."
        )
    if not (inspect.isclass(cls) and issubclass(cls, nn.Module)):
        raise ScaffoldError(f"--loss {spec!r}: {module_name}.{class_name} is not a torch.nn.Module subclass.")
    return module_name, class_name, cls


def trainer_name_conflicts(name: str, folder: Path | None = None) -> list[Path]:
    """Files that define a top-level class ``name`` in nnU-Net's, every ``nnUNet_extTrainer`` and the plugin's
    trainer folders, and in ``folder`` (where the new file goes; its own ``NAME.py`` is left to the overwrite
    check), in nnU-Net's search order. nnU-Net resolves ``-tr`` to the first class of that name it finds, so
    any hit means one of the two classes would silently never be used."""
    extra = [] if folder is None else [folder]
    own_file = None if folder is None else (Path(folder) / f"{name}.py").resolve()
    found = class_definitions(trainer_search_folders(extra)).get(name, [])
    return list(dict.fromkeys(d.path for d in found if d.path.resolve() != own_file))


def _check_name(name: str, folder: Path | None = None) -> None:
    if not name.isidentifier() or keyword.iskeyword(name) or not name.isascii():
        raise ScaffoldError(f"NAME must be a Python class name such as nnUNetTrainerMyLoss; got {name!r}.")
    if name in _FILE_NAMES:
        raise ScaffoldError(f"NAME {name!r} is imported by the trainer file; choose e.g. nnUNetTrainer{name}")
    conflicts = trainer_name_conflicts(name, folder)
    if conflicts:
        raise ScaffoldError(
            f"NAME {name!r} is already a trainer in {conflicts[0]}; nnU-Net resolves -tr by class name and "
            f"uses the first it finds, so one of the two would silently never be used. Choose another name."
        )
    if importlib.util.find_spec(name) is not None:
        raise ScaffoldError(
            f"NAME {name!r}: a file {name}.py would shadow the installed module {name!r} while nnU-Net "
            f"imports trainer files. Choose another name."
        )


def _check_number(option: str, value: float | None, minimum: float) -> None:
    if value is None:
        return
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value) \
            or value <= minimum:
        raise ScaffoldError(f"{option} must be a finite number > {minimum:g}; got {value!r}.")


def _check_loss(cls: type, class_name: str, kwargs: Mapping[str, Any]) -> tuple[nn.Module, tuple[str, ...]]:
    from nnunet_lossplug.losses.calling import loss_inputs

    bad_keys = [key for key in kwargs if not (key.isidentifier() and not keyword.iskeyword(key))]
    if bad_keys:
        raise ScaffoldError(f"--loss-kwargs keys must be Python argument names; got {bad_keys}.")
    try:
        inspect.signature(cls).bind(**kwargs)
        loss = cls(**kwargs)
        return loss, loss_inputs(loss)
    except (TypeError, ValueError) as err:
        signature = inspect.signature(cls).replace(return_annotation=inspect.Signature.empty)
        raise ScaffoldError(f"cannot build {class_name}(**{dict(kwargs)}): {err}. "
                            f"Check --loss-kwargs against {class_name}{signature}.") from None


def _check_maps(maps: str | None, class_name: str, inputs: tuple[str, ...]) -> None:
    from nnunet_lossplug.maps import available_map_kinds

    if "rw_map" in inputs and maps is None:
        raise ScaffoldError(
            f"{class_name} takes an RW map (its inputs are {inputs}); pass --maps with one of "
            f"{available_map_kinds()} (Valverde & Tohka's (2022) proposal: rrw)."
        )
    if maps is None:
        return
    if "rw_map" not in inputs:
        raise ScaffoldError(
            f"{class_name} does not take an RW map (its inputs are {inputs}), so --maps {maps} would be "
            f"computed for nothing; drop --maps or choose a loss that takes one (e.g. RegionWiseLoss)."
        )
    if maps not in available_map_kinds():
        raise ScaffoldError(
            f"--maps {maps!r} is not a built-in map kind; choose one of {available_map_kinds()} "
            f"(for your own map function see docs/plug_in_your_own_loss.md)."
        )


def check_request(request: TrainerRequest, folder: Path | None = None) -> ResolvedLoss:
    """Check what the trainer would otherwise only discover when training starts; return the loss.

    Raises :class:`ScaffoldError` for: a NAME that is not a class name, is already a class in nnU-Net's, the
    plugin's, an ``nnUNet_extTrainer`` folder's or ``folder``'s trainer files, or would shadow an installed
    module; a loss that cannot be imported or built with
    ``loss_kwargs`` (the loss is instantiated once); a loss that takes an RW map without ``maps``, or
    ``maps`` for a loss that ignores them; an unknown map kind; invalid deep-supervision weights (also
    ``"trainable"`` with a loss that declares ``nonnegative = False``); an unknown optimiser; a learning
    rate or gradient-clipping norm that is not a positive number, a norm above nnU-Net's 12; epochs or
    iterations < 1.
    """
    from nnunet_lossplug.losses import DeepSupervisionLoss

    _check_name(request.name, folder)
    module, class_name, cls = resolve_loss(request.loss)
    loss, inputs = _check_loss(cls, class_name, request.loss_kwargs)
    _check_maps(request.maps, class_name, inputs)
    weights = request.ds_weights
    if isinstance(weights, str) and weights not in ("nnunet", "trainable"):
        raise ScaffoldError(f"--ds-weights must be 'nnunet', 'trainable' or numbers; got {weights!r}.")
    try:
        DeepSupervisionLoss(loss, weights, len(weights) if isinstance(weights, tuple) else 2)
    except ValueError as err:
        raise ScaffoldError(f"--ds-weights {weights}: {err}") from None
    if request.optimizer is not None and request.optimizer not in OPTIMIZER_DEFAULT_LR:
        raise ScaffoldError(
            f"--optimizer must be one of {sorted(OPTIMIZER_DEFAULT_LR)}; got {request.optimizer!r}."
        )
    _check_number("--lr", request.lr, 0.0)
    _check_number("--grad-clip", request.grad_clip, 0.0)
    if request.grad_clip is not None:
        from nnunet_lossplug.nnunet.trainer.guards import NNUNET_GRAD_CLIP

        if request.grad_clip > NNUNET_GRAD_CLIP:
            raise ScaffoldError(f"--grad-clip {request.grad_clip:g}: nnU-Net's training step clips at "
                                f"{NNUNET_GRAD_CLIP:g} first, so a larger norm cannot be honoured; give at most "
                                f"{NNUNET_GRAD_CLIP:g}.")
    for option, count in (("--epochs", request.epochs), ("--iterations", request.iterations_per_epoch),
                          ("--val-iterations", request.val_iterations_per_epoch)):
        if count is not None and (isinstance(count, bool) or not isinstance(count, int) or count < 1):
            raise ScaffoldError(f"{option} must be an integer >= 1; got {count!r}.")
    return ResolvedLoss(module, class_name, cls, inputs)


# ------------------------------------------------------------------------------------------------ rendering
def export_line(folder: Path) -> str:
    """The shell line that appends ``folder`` to ``nnUNet_extTrainer``, keeping what is listed already."""
    path = str(Path(folder).resolve())
    escaped = re.sub(r'(["$`\\])', r"\\\1", path)
    return f'export {ENV_VAR}="${{{ENV_VAR}:+${{{ENV_VAR}}}:}}{escaped}"'


def _literal(value: Any) -> str:
    """Python source of a JSON value, strings in double quotes (the project's style)."""
    if isinstance(value, str):
        return json.dumps(value)
    if isinstance(value, (list, tuple)):
        return "[" + ", ".join(_literal(item) for item in value) + "]"
    if isinstance(value, dict):
        return "{" + ", ".join(f"{_literal(str(k))}: {_literal(v)}" for k, v in value.items()) + "}"
    return repr(value)


def _call(function: str, arguments: list[str], column: int, limit: int = 110) -> str:
    """``function(a, b)`` if it fits on a line starting at ``column``, else one argument per line."""
    one_line = f"{function}({', '.join(arguments)})"
    if column + len(one_line) <= limit or not arguments:
        return one_line
    return f"{function}(\n" + "".join(f"    {argument},\n" for argument in arguments) + ")"


def _summary(request: TrainerRequest, loss_name: str) -> str:
    kwargs = ", ".join(f"{key}={_literal(value)}" for key, value in request.loss_kwargs.items())
    parts = [loss_name + (f" ({kwargs})" if kwargs else "")]
    if request.maps is not None:
        parts.append(f"{_literal(request.maps)} maps")
    weights = request.ds_weights
    parts.append(f"{weights} deep-supervision weights" if isinstance(weights, str)
                 else f"deep-supervision weights {tuple(weights)}")
    choice = request.optimizer_choice()
    if choice is None:
        parts.append("nnU-Net's SGD (lr 1e-2)")
    else:
        parts.append(f"{'Adam' if choice[0] == 'adam' else 'SGD'} (lr {choice[1]:g})")
    if request.grad_clip is not None:
        parts.append(f"gradient clipping {request.grad_clip:g}")
    parts.append(f"{request.epochs if request.epochs is not None else 1000} epochs")
    if request.iterations_per_epoch is not None or request.val_iterations_per_epoch is not None:
        parts.append(f"{request.iterations_per_epoch or 250} training / {request.val_iterations_per_epoch or 50} "
                     f"validation iterations per epoch")
    return "; ".join(parts) + "."


def render_trainer(request: TrainerRequest, folder: Path | None = None) -> str:
    """The source of the trainer file for ``request``, after :func:`check_request`.

    The file has a docstring that says how nnU-Net finds it (with the ``export`` line for ``folder`` when
    given), three import lines (the loss, the declaration helpers, the base class from
    :mod:`nnunet_lossplug.trainers`), and the class: ``loss_spec``, ``rw_map`` (if any), ``ds_weights``, and
    ``optimizer_spec``, ``grad_clip``, ``epochs``, ``iterations_per_epoch``, ``val_iterations_per_epoch`` where
    the request sets them.
    """
    resolved = check_request(request, folder)
    loss_alias = resolved.name if resolved.name not in _FILE_NAMES | {request.name} else "UserLoss"
    choice = request.optimizer_choice()
    glue = ["LossSpec"] + ([choice[0]] if choice is not None else [])
    loss_import = f"from {resolved.module} import {resolved.name}"
    if loss_alias != resolved.name:
        loss_import += f" as {loss_alias}"
    imports = sorted([loss_import, f"from nnunet_lossplug.nnunet import {', '.join(glue)}",
                      "from nnunet_lossplug.trainers import LossPlugTrainer"],
                     key=lambda line: line.split()[1])

    spec_arguments = [loss_alias] + [f"{key}={_literal(value)}" for key, value in request.loss_kwargs.items()]
    body = [f"loss_spec = {_call('LossSpec', spec_arguments, column=len('    loss_spec = '))}"]
    if request.maps is not None:
        body.append(f"rw_map = {_literal(request.maps)}")
    weights = request.ds_weights
    body.append(f"ds_weights = {_literal(weights)}" if isinstance(weights, str)
                else f"ds_weights = {tuple(float(w) for w in weights)!r}")
    if choice is not None:
        body.append(f"optimizer_spec = {choice[0]}(lr={choice[1]!r})")
    if request.grad_clip is not None:
        body.append(f"grad_clip = {float(request.grad_clip)!r}")
    if request.epochs is not None:
        body.append(f"epochs = {int(request.epochs)}")
    if request.iterations_per_epoch is not None:
        body.append(f"iterations_per_epoch = {int(request.iterations_per_epoch)}")
    if request.val_iterations_per_epoch is not None:
        body.append(f"val_iterations_per_epoch = {int(request.val_iterations_per_epoch)}")

    text = _summary(request, resolved.name).replace("\\", "\\\\").replace('"""', '\\"\\"\\"')
    summary = textwrap.wrap(text, width=100)
    commands = ([f"    {export_line(folder)}"] if folder is not None else []) + [
        f"    nnUNetv2_train DATASET CONFIGURATION FOLD -tr {request.name}"]
    lines = [
        f'"""{request.name}: a trainer written by ``nnunet-lossplug new-trainer``; edit it freely.',
        "",
        f"nnU-Net finds it when the folder of this file is listed in {ENV_VAR}; then train with:",
        "",
        *commands,
        "",
        "nnU-Net imports this file as a top-level module: import only from installed packages.",
        "To start from one of the plugin's trainers instead, import it from nnunet_lossplug.trainers in",
        "place of LossPlugTrainer (e.g. nnUNetTrainerRRW) and keep only the declarations you change.",
        '"""',
        "",
        *imports,
        "",
        "",
        f"class {request.name}(LossPlugTrainer):",
        f'    """{summary[0]}' + ('"""' if len(summary) == 1 else ""),
        *[f"    {line}" for line in summary[1:]],
        *(['    """'] if len(summary) > 1 else []),
        "",
        *[f"    {line}" for statement in body for line in statement.splitlines()],
    ]
    source = "\n".join(lines) + "\n"
    return "r" + source if "\\" in "".join(commands) else source  # an escaped path needs a raw docstring


def write_trainer(request: TrainerRequest, folder: Path) -> Path:
    """Write ``folder/NAME.py``, creating ``folder``; never overwrite an existing file. Returns the path."""
    folder = Path(folder)
    source = render_trainer(request, folder)
    path = folder / f"{request.name}.py"
    compile(source, str(path), "exec")  # a file that does not parse would be a bug here, not the user's
    folder.mkdir(parents=True, exist_ok=True)
    try:
        with path.open("x", encoding="utf-8") as handle:
            handle.write(source)
    except FileExistsError:
        raise ScaffoldError(
            f"{path} exists; refusing to overwrite it. Choose another NAME or -o folder, or remove the file."
        ) from None
    return path
