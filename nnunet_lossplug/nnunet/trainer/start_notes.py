"""What a plugin trainer says about itself at start: where it comes from, and what its loss values mean.

- :func:`citation`: the paper, table or equation a trainer reproduces (its ``reference``), shown by ``nnunet-lossplug
  trainers`` and in the training log. A subclass that only inherits keeps its parent's citation; one that changes
  a setting of the method (loss, maps, deep-supervision weights, optimiser, learning-rate schedule, epochs,
  iterations, network, gradient clipping) or overrides a method without citing anything itself is no longer the
  paper's experiment: it reads ``derived from <parent> (<citation>); changed: <settings>``.
- :func:`loss_sign_note`: one line for a loss that is negative by design (the RW loss of Valverde & Tohka 2022,
  eq. 1, whose docstring explains the sign; trainable deep-supervision weights, ``docs/conventions.md``), so a
  negative ``train_loss`` in the log reads as expected, not as a fault.
- :func:`stray_components_note`: one line for the RW loss alone, which can leave confident false components far
  from the target: compare it after nnU-Net's post-processing, or mix it with cross-entropy.
- :func:`log_start_notes`: these lines, as a trainer writes them to its log when it builds its loss.
- :func:`round_weights`: deep-supervision weights with 4 significant digits, for the log.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable, Iterable

from torch import nn

from nnunet_lossplug.losses import RegionWiseLoss

#: declarations that define the experiment a trainer's ``reference`` cites (``seed`` and the collapse guard's
#: settings do not change it)
METHOD_SETTINGS = ("loss_spec", "rw_map", "map_placement", "ds_weights", "optimizer_spec", "lr_schedule",
                   "grad_clip", "epochs", "iterations_per_epoch", "val_iterations_per_epoch", "network_builder",
                   "network_ds_scales")


def _cited_origin(cls: type) -> type | None:
    """The nearest class of ``cls``'s MRO (``cls`` included) that declares a non-empty ``reference`` itself."""
    for klass in cls.__mro__:
        if vars(klass).get("reference"):
            return klass
    return None


def changed_settings(cls: type, origin: type) -> list[str]:
    """What ``cls`` changes of ``origin`` (one of its bases): ``name=value`` of each declaration, and the methods
    the classes in between define (they may set epochs, the optimiser, ... in code)."""
    changed = [f"{name}={_show(getattr(cls, name, None))}" for name in METHOD_SETTINGS
               if getattr(cls, name, None) != getattr(origin, name, None)]
    between = cls.__mro__[: cls.__mro__.index(origin)]
    methods = sorted({name for klass in between for name, value in vars(klass).items()
                      if name not in METHOD_SETTINGS
                      and (inspect.isfunction(value) or isinstance(value, (classmethod, staticmethod)))})
    return changed + [f"{name}()" for name in methods]


def _show(value: object) -> str:
    describe = getattr(value, "describe", None)
    if callable(describe):
        return str(describe())
    return getattr(value, "__qualname__", None) or repr(value)


def citation(cls: type) -> str:
    """``cls``'s citation as the module docstring says ("" when neither it nor a parent cites anything)."""
    origin = _cited_origin(cls)
    if origin is None:
        return ""
    if origin is cls:
        return str(cls.reference)
    changed = changed_settings(cls, origin)
    if not changed:
        return str(origin.reference)
    return f"derived from {origin.__name__} ({origin.reference}); changed: {', '.join(changed)}"


def loss_sign_note(losses: Iterable[nn.Module], trainable_weights: bool) -> str | None:
    """The line for the training log when the loss ``losses`` make up can be negative by design, else None."""
    modules = [m for loss in losses for m in loss.modules()]
    if any(isinstance(m, RegionWiseLoss) and not m.shift_to_nonnegative for m in modules):
        return ("train_loss and val_loss are negative by design for the RW loss: mean(softmax · z) with z < 0 "
                "inside the true class (z ∈ [−1, 0) for RRW maps); lower is better (Valverde & Tohka 2022, eq. 1)")
    if trainable_weights:
        return ("train_loss can be negative by design with trainable deep-supervision weights: each level adds "
                "exp(−σ)·L + σ and σ may fall below 0; lower is better (docs/conventions.md)")
    if any(getattr(m, "nonnegative", None) is False for m in modules):
        return "train_loss can be negative by design for this loss; lower is better"
    return None


def stray_components_note(loss: nn.Module) -> str | None:
    """The line for the training log when the per-resolution loss is the RW loss alone, else None.

    The RW loss is linear in the softmax, so its gradient at a confidently wrong voxel vanishes (Valverde & Tohka
    2022, eq. 2): small false components far from the target can survive training (measured in
    ``experiments/stray_components.py``), which nnU-Net's largest-component post-processing removes.
    """
    if not isinstance(loss, RegionWiseLoss):
        return None
    return ("the RW loss alone can leave small confident false components far from the target (its gradient "
            "vanishes at a confidently wrong voxel): compare it after nnU-Net's post-processing "
            "(nnUNetv2_find_best_configuration, nnUNetv2_apply_postprocessing) or train nnUNetTrainerRRWCEGradual "
            "(docs/trainers.md#rw-loss-alone-stray-components-and-post-processing)")


def round_weights(weights: Iterable[float]) -> list[float]:
    """``weights`` with 4 significant digits (``0.5333333333333333`` -> ``0.5333``)."""
    return [float(f"{w:.4g}") for w in weights]


def log_start_notes(cls: type, criterion: nn.Module, log: Callable[[str], object]) -> None:
    """Write ``cls``'s citation and the sign note of ``criterion`` (a ``DeepSupervisionLoss``) with ``log``."""
    cited = citation(cls)
    if cited:
        log(f"{cls.__name__}: {cited}")
    sign = loss_sign_note([getattr(criterion, "loss", criterion)], bool(getattr(criterion, "trainable", False)))
    if sign:
        log(sign)
    strays = stray_components_note(getattr(criterion, "loss", criterion))
    if strays:
        log(strays)
