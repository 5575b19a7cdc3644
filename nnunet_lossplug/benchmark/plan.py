"""The plan of a benchmark: which trainers, which seeds, one matched schedule, and the runs that follow.

Fair here means: every trainer (the plugin's, the user's, nnU-Net's own) gets the same data, the same fold, the
same number of epochs and iterations, the same seeds, and the same held-out cases, evaluation and
post-processing; only what the trainer declares (loss, maps, deep supervision, optimiser) differs, and Adam
trainers start at the schedule's Adam rate (SGD trainers keep nnU-Net's 1e-2). The schedule is a budget preset
(:data:`BUDGETS`) or ``--epochs`` / ``--iterations``.
"""

from __future__ import annotations

from dataclasses import dataclass

from nnunet_lossplug.benchmark.short_trainers import SHORT_VALIDATION_ITERATIONS, ShortSchedule

DEFAULT_FIRST_SEED = 3  # the demo's seed


@dataclass(frozen=True)
class Budget:
    """A named schedule and the device it is meant for."""

    name: str
    schedule: ShortSchedule
    device: str
    meant_for: str


#: the presets of ``--budget``: ``cpu`` is the demo's schedule (every class of the demo's data at Dice >= 0.85 on
#: 10 of 10 seeds with nnUNetTrainerRRW); the GPU presets are nnU-Net's own shortened schedules
#: (nnUNetTrainer_50epochs, nnUNetTrainer_250epochs)
BUDGETS: dict[str, Budget] = {
    "cpu": Budget("cpu", ShortSchedule(12, 40, adam_lr=1e-3), "cpu",
                  "a CPU: minutes per run on a small 2d dataset"),
    "gpu-short": Budget("gpu-short", ShortSchedule(50, 250, adam_lr=1e-3, val_iterations_per_epoch=50), "cuda",
                        "one GPU: nnU-Net's 50-epoch schedule, a first answer"),
    "gpu": Budget("gpu", ShortSchedule(250, 250, adam_lr=None, val_iterations_per_epoch=50), "cuda",
                  "one GPU: nnU-Net's 250-epoch schedule, Adam trainers at their own rate"),
}
DEFAULT_BUDGET = "cpu"


def variant_name(base: str, schedule: ShortSchedule) -> str:
    """The short-schedule trainer's class name, e.g. ``nnUNetTrainerRRW_q12x40_lr1em03``."""
    lr = "" if schedule.adam_lr is None else "_lr" + f"{schedule.adam_lr:.0e}".replace("-", "m").replace("+", "p")
    val = "" if schedule.val_iterations_per_epoch == SHORT_VALIDATION_ITERATIONS else \
        f"v{schedule.val_iterations_per_epoch}"
    return f"{base}_q{schedule.epochs}x{schedule.iterations_per_epoch}{val}{lr}"


def parse_trainer_items(items: list[str], seeds: int) -> list[tuple[str, int]]:
    """``["nnUNetTrainerRRW:10", "nnUNetTrainer"]`` -> ``[("nnUNetTrainerRRW", 10), ("nnUNetTrainer", seeds)]``.

    Raises:
        ValueError: for a name that is not a Python identifier, a count below 1, or a trainer named twice.
    """
    trainers: list[tuple[str, int]] = []
    for item in items:
        name, _, count = item.partition(":")
        if not name.isidentifier() or (count and (not count.isdigit() or int(count) < 1)):
            raise ValueError(f"--trainers {item}: give TRAINER or TRAINER:K with K >= 1 (a class name).")
        if name in (known for known, _ in trainers):
            raise ValueError(f"--trainers names {name} twice; name each trainer once (TRAINER:K for K seeds).")
        trainers.append((name, int(count) if count else seeds))
    return trainers


@dataclass(frozen=True)
class PlannedRun:
    """One seeded training of one trainer, and what is done with it."""

    trainer: str
    variant: str
    seed: int

    @property
    def key(self) -> str:
        return f"{self.variant}/seed_{self.seed}"


@dataclass(frozen=True)
class BenchmarkPlan:
    """What to run: the dataset and configuration, the trainers with their seed counts, the schedule, the device."""

    dataset: str
    configuration: str
    trainers: tuple[tuple[str, int], ...]
    schedule: ShortSchedule
    device: str = "cpu"
    first_seed: int = DEFAULT_FIRST_SEED
    fold: int = 0

    def __post_init__(self):
        if not self.trainers:
            raise ValueError("name at least one trainer (--trainers).")
        if self.schedule.epochs < 1 or self.schedule.iterations_per_epoch < 1:
            raise ValueError(f"--epochs {self.schedule.epochs} --iterations {self.schedule.iterations_per_epoch}: "
                             f"give at least 1 of each.")
        most = max(count for _, count in self.trainers)
        if not 0 <= self.first_seed <= 2**32 - 1 - most:
            raise ValueError(f"--first-seed {self.first_seed}: give a seed from 0 to 2**32 - 1 - K.")

    @property
    def trainer_names(self) -> list[str]:
        return [name for name, _ in self.trainers]

    def variant(self, trainer: str) -> str:
        return variant_name(trainer, self.schedule)

    def runs(self) -> list[PlannedRun]:
        """Every run, seed by seed (all trainers of a seed before the next seed): an interrupted benchmark then
        leaves complete pairs."""
        most = max(count for _, count in self.trainers)
        return [PlannedRun(name, self.variant(name), self.first_seed + index)
                for index in range(most) for name, count in self.trainers if index < count]

    def reference(self, requested: str | None = None) -> str:
        """The trainer the others are compared with: ``requested``, else nnU-Net's ``nnUNetTrainer`` when
        benchmarked, else the first named."""
        names = self.trainer_names
        if requested is not None:
            if requested not in names:
                raise ValueError(f"--reference {requested} is not among --trainers ({' '.join(names)}).")
            return requested
        return "nnUNetTrainer" if "nnUNetTrainer" in names else names[0]
