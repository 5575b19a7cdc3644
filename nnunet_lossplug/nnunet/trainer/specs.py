"""Declarations a trainer is made of: which loss, which optimiser, which dataset statistics.

They are plain values so that a trainer file reads as a list of choices::

    class nnUNetTrainerDiceSimple(LossPlugTrainer):
        loss_spec = LossSpec(DiceLoss, class_weights=TrainingSetClassWeights("simple"))
        optimizer_spec = adam(lr=1e-4)
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any, Protocol

import numpy as np
import torch
from torch import nn

from nnunet_lossplug.losses import dice_class_weights


class TrainerContext(Protocol):
    """What a declaration may ask of the trainer when it is built."""

    def training_set_class_voxel_counts(self) -> np.ndarray: ...


class Resolvable(Protocol):
    def resolve(self, trainer: TrainerContext) -> Any: ...


@dataclass(frozen=True)
class TrainingSetClassWeights:
    """Class weights of Shen et al. 2018 (eq. 3-5) from the voxel counts of the fold's training cases.

    The counts come from the precompute hook (``nnunet-lossplug precompute``), which the trainer runs when
    needed; see :func:`nnunet_lossplug.losses.dice_class_weights` for the formulas and ``normalize``.
    """

    scheme: str
    normalize: bool = False

    def resolve(self, trainer: TrainerContext) -> torch.Tensor:
        """The weights; a class with no training voxel stops a count-based scheme (``check_class_counts``)."""
        from nnunet_lossplug.nnunet.trainer.guards import check_class_counts

        counts = trainer.training_set_class_voxel_counts()
        labels = getattr(trainer, "dataset_json", {}).get("labels", {})
        names = {int(v): k for k, v in labels.items() if isinstance(v, int)}
        check_class_counts(counts, self.scheme, getattr(trainer, "fold", "?"), names)
        total = getattr(trainer, "training_set_voxel_total", lambda: None)()  # regions overlap: N ≠ Σ counts
        weights = dice_class_weights(counts, scheme=self.scheme, normalize=self.normalize, total_voxels=total)
        log = getattr(trainer, "print_to_log_file", None)
        if log is not None:
            log(f"Class weights ({self.scheme}{', normalised' if self.normalize else ''}): "
                f"{[float(f'{w:.4g}') for w in weights.tolist()]} (Shen et al. 2018 eq. 3-5, from the counts above)")
        return torch.as_tensor(weights)


def _resolve(value: Any, trainer: TrainerContext) -> Any:
    if isinstance(value, LossSpec):
        return value.build(trainer)
    if hasattr(value, "resolve"):
        return value.resolve(trainer)
    return value


@dataclass(frozen=True, init=False)
class LossSpec:
    """A loss class (any ``nn.Module`` factory) and its keyword arguments, built when the trainer starts.

    Argument values may be other :class:`LossSpec` s (for mixtures) or objects with a ``resolve(trainer)``
    method such as :class:`TrainingSetClassWeights`, which are resolved first.
    """

    factory: Callable[..., nn.Module]
    kwargs: dict = field(default_factory=dict)

    def __init__(self, factory: Callable[..., nn.Module], **kwargs: Any):
        object.__setattr__(self, "factory", factory)
        object.__setattr__(self, "kwargs", kwargs)

    def build(self, trainer: TrainerContext) -> nn.Module:
        return self.factory(**{name: _resolve(value, trainer) for name, value in self.kwargs.items()})

    def needs_class_statistics(self) -> bool:
        for value in self.kwargs.values():
            if isinstance(value, TrainingSetClassWeights):
                return True
            if isinstance(value, LossSpec) and value.needs_class_statistics():
                return True
        return False

    def describe(self) -> str:
        args = ", ".join(f"{k}={v.describe() if isinstance(v, LossSpec) else repr(v)}" for k, v in self.kwargs.items())
        return f"{getattr(self.factory, '__name__', repr(self.factory))}({args})"


@dataclass(frozen=True)
class OptimizerSpec:
    """An optimiser class, its initial learning rate and its other keyword arguments."""

    factory: Callable[..., torch.optim.Optimizer]
    lr: float
    kwargs: dict = field(default_factory=dict)

    def build(self, parameters: Iterable[nn.Parameter]) -> torch.optim.Optimizer:
        return self.factory(parameters, lr=self.lr, **self.kwargs)

    def describe(self) -> str:
        extra = "".join(f", {k}={v}" for k, v in self.kwargs.items())
        return f"{self.factory.__name__}(lr={self.lr:g}{extra})"


def adam(lr: float, weight_decay: float = 3e-5, **kwargs: Any) -> OptimizerSpec:
    """Adam as the Region-wise loss reference code uses it (nnU-Net v1's weight decay 3e-5, no AMSGrad)."""
    return OptimizerSpec(torch.optim.Adam, lr, {"weight_decay": weight_decay, **kwargs})


def sgd(lr: float = 1e-2, weight_decay: float = 3e-5, momentum: float = 0.99, nesterov: bool = True) -> OptimizerSpec:
    """nnU-Net's default optimiser (SGD, Nesterov momentum 0.99)."""
    return OptimizerSpec(torch.optim.SGD, lr, {"weight_decay": weight_decay, "momentum": momentum,
                                               "nesterov": nesterov})
