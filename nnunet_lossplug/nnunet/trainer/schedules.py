"""Learning-rate schedules a trainer can declare (``lr_schedule``); nnU-Net's poly rule is the default.

nnU-Net calls ``lr_scheduler.step(current_epoch)`` at the start of every epoch; each schedule here accepts that
call. Schedules that react to the validation loss also get ``observe_validation_loss(loss)`` at the end of each
epoch from :class:`~nnunet_lossplug.nnunet.trainer.LossPlugTrainer`.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from nnunetv2.training.lr_scheduler.polylr import PolyLRScheduler


@dataclass(frozen=True)
class PolySchedule:
    """nnU-Net's ``lr = lr_0 (1 − epoch / epochs)^0.9`` (also the Region-wise loss paper's schedule)."""

    exponent: float = 0.9

    def build(self, optimizer: torch.optim.Optimizer, initial_lr: float, epochs: int, iterations_per_epoch: int):
        return PolyLRScheduler(optimizer, initial_lr, epochs, exponent=self.exponent)

    def describe(self) -> str:
        return "poly"


class _PlateauHalving:
    """Multiply the learning rate by ``factor`` when the validation loss has not improved for ``patience`` epochs."""

    def __init__(self, optimizer: torch.optim.Optimizer, factor: float, patience: int):
        self.optimizer = optimizer
        self.plateau = torch.optim.lr_scheduler.ReduceLROnPlateau(optimizer, mode="min", factor=factor,
                                                                  patience=patience)

    def step(self, current_epoch: int | None = None) -> None:
        """nnU-Net's per-epoch call: the rate changes only in :meth:`observe_validation_loss`."""

    def observe_validation_loss(self, loss: float) -> None:
        if math.isfinite(loss):
            self.plateau.step(loss)


@dataclass(frozen=True)
class PlateauHalving:
    """Halve the learning rate when the validation loss stops decreasing (Nguyen et al. 2019 Sec. IV-A).

    The paper gives no patience; 10 epochs (of nnU-Net's 250 iterations) is used by default. The plateau
    counter is not stored in nnU-Net's checkpoints: after ``--c`` the current rate (kept by the optimiser's
    state) continues and the counter starts again.
    """

    factor: float = 0.5
    patience: int = 10

    def build(self, optimizer: torch.optim.Optimizer, initial_lr: float, epochs: int, iterations_per_epoch: int):
        return _PlateauHalving(optimizer, self.factor, self.patience)

    def describe(self) -> str:
        return f"x{self.factor} on validation plateau ({self.patience} epochs)"


class _StepDecay:
    def __init__(self, optimizer: torch.optim.Optimizer, initial_lr: float, epochs_per_step: float, gamma: float):
        self.optimizer, self.initial_lr = optimizer, initial_lr
        self.epochs_per_step, self.gamma = epochs_per_step, gamma
        self.step(0)

    def step(self, current_epoch: int | None = None) -> None:
        lr = self.initial_lr * self.gamma ** math.floor((current_epoch or 0) / self.epochs_per_step)
        for group in self.optimizer.param_groups:
            group["lr"] = lr


@dataclass(frozen=True)
class StepDecay:
    """``lr = lr_0 · gamma^floor(iteration / every_iterations)`` at epoch starts (Liu & Fu 2018: ×0.2 per 10 000)."""

    every_iterations: int = 10_000
    gamma: float = 0.2

    def build(self, optimizer: torch.optim.Optimizer, initial_lr: float, epochs: int, iterations_per_epoch: int):
        return _StepDecay(optimizer, initial_lr, self.every_iterations / iterations_per_epoch, self.gamma)

    def describe(self) -> str:
        return f"x{self.gamma} every {self.every_iterations} iterations"
