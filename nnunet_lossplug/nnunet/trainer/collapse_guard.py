"""Collapse guard: warn when a foreground class's validation pseudo-Dice stays at 0 for ``patience`` epochs.

Why: the RW loss ``L = mean_i Σ_k s_ik z_ik`` (Valverde & Tohka 2022 eq. 1) has the logit gradient
``∂L/∂x_ik = s_ik (z_ik − Σ_j s_ij z_ij)`` (eq. 2). It is proportional to the softmax ``s_ik``, so once a
class's probability has fallen to ~0 everywhere, that class gets (almost) no gradient back, whatever the map:
the class is lost for the rest of the training. A cross-entropy term (``∂CE/∂x_ik = s_ik − y_ik``) does not
vanish there and brings it back (``nnUNetTrainerRRWCE*``).

The logic here is pure (a sequence of per-class pseudo-Dice values in, events out), so it can be tested on
numbers and run after the fact on a logged history (:func:`collapse_events`); ``LossPlugTrainer`` feeds it
nnU-Net's ``dice_per_class_or_region`` after every epoch.

Rule: an epoch ``e >= warmup`` whose pseudo-Dice of a class is below ``threshold`` ("at 0") extends that
class's run of such epochs; any other value ends it. ``NaN`` (class neither present in nor predicted on the
validation batches) neither extends nor ends a run. A run reaching ``patience`` epochs fires one event; the
class is watched again after it recovers.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

from nnunet_lossplug.nnunet.errors import TrainerSettingError

__all__ = ["CollapseEvent", "CollapseGuard", "collapse_events"]

DEFAULT_THRESHOLD = 0.01


@dataclass(frozen=True)
class CollapseEvent:
    """Class ``class_name`` (index ``class_index`` in the pseudo-Dice vector) at 0 from ``first_epoch`` to
    ``last_epoch`` (both inclusive, nnU-Net's 0-based epochs)."""

    class_index: int
    class_name: str
    first_epoch: int
    last_epoch: int
    threshold: float = DEFAULT_THRESHOLD

    @property
    def epochs(self) -> int:
        """Epochs spanned (NaN epochs inside the run included)."""
        return self.last_epoch - self.first_epoch + 1

    def message(self) -> str:
        return (
            f"Class {self.class_name} has collapsed: its validation pseudo-Dice stayed below {self.threshold:g} "
            f"for {self.epochs} epochs (epochs {self.first_epoch}-{self.last_epoch}). With the RW loss alone a "
            f"class whose softmax has fallen to 0 gets no gradient back (Valverde & Tohka 2022 eq. 2: the gradient is "
            f"proportional to the softmax), so it will not recover. Remedy: add a cross-entropy term "
            f"(nnUNetTrainerRRWCEEqual or nnUNetTrainerRRWCEGradual), or restart with another seed or a lower "
            f"learning rate. (Set collapse_patience = None in the trainer to switch this check off.)"
        )


class CollapseGuard:
    """Watches per-class pseudo-Dice epoch by epoch; :meth:`update` returns the events that fire now.

    Args:
        patience: epochs at 0 (after the warm-up) that make a collapse; at least 1.
        warmup: epochs ``0 .. warmup-1`` are not watched (a class often starts at 0).
        threshold: a pseudo-Dice below it counts as 0.
        class_names: names of the classes in the pseudo-Dice vector's order (default: their indices).
    """

    def __init__(self, patience: int, warmup: int = 0, threshold: float = DEFAULT_THRESHOLD,
                 class_names: Sequence[str] | None = None) -> None:
        if isinstance(patience, bool) or not isinstance(patience, int) or patience < 1:
            raise TrainerSettingError(f"collapse patience must be an int >= 1 (or None to switch the guard off), "
                                      f"got {patience!r}.")
        if isinstance(warmup, bool) or not isinstance(warmup, int) or warmup < 0:
            raise TrainerSettingError(f"collapse warm-up must be an int >= 0, got {warmup!r}.")
        self.patience = patience
        self.warmup = warmup
        self.threshold = threshold
        self.class_names = list(class_names) if class_names is not None else None
        self._start: dict[int, int] = {}  # class -> first epoch of its current run at 0
        self._count: dict[int, int] = {}  # class -> epochs at 0 in that run
        self._fired: set[int] = set()

    def _name(self, index: int) -> str:
        return self.class_names[index] if self.class_names and index < len(self.class_names) else str(index)

    def update(self, epoch: int, dice_per_class: Sequence[float]) -> list[CollapseEvent]:
        """Feed epoch ``epoch``'s pseudo-Dice (one value per foreground class); returns newly fired events."""
        events = []
        if epoch < self.warmup:
            return events
        for index, value in enumerate(dice_per_class):
            value = float(value)
            if math.isnan(value):
                continue
            if value >= self.threshold:
                self._start.pop(index, None)
                self._count.pop(index, None)
                self._fired.discard(index)
                continue
            start = self._start.setdefault(index, epoch)
            self._count[index] = self._count.get(index, 0) + 1
            if index not in self._fired and self._count[index] >= self.patience:
                self._fired.add(index)
                events.append(CollapseEvent(index, self._name(index), start, epoch, self.threshold))
        return events


def collapse_events(history: Sequence[Sequence[float]], patience: int, warmup: int = 0,
                    threshold: float = DEFAULT_THRESHOLD,
                    class_names: Sequence[str] | None = None) -> list[CollapseEvent]:
    """Every event the guard fires on a whole history (``history[e]`` = pseudo-Dice per class at epoch ``e``)."""
    guard = CollapseGuard(patience, warmup, threshold, class_names)
    return [event for epoch, values in enumerate(history) for event in guard.update(epoch, values)]
