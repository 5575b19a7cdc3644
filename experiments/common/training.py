"""A plain PyTorch training loop for the CPU experiments: Adam, nnU-Net's poly schedule, epoch shuffling."""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import torch
from torch import Tensor, nn

__all__ = [
    "TrainSettings",
    "label_batch_loss",
    "map_batch_loss",
    "poly_learning_rate",
    "predict_labels",
    "train_model",
]

BatchLoss = Callable[[Tensor, Tensor], Tensor]
"""``batch_loss(logits, indices) -> scalar``: the loss of the images ``indices`` given their logits."""


def label_batch_loss(loss_fn: Callable[[Tensor, Tensor], Tensor], labels: Tensor) -> BatchLoss:
    """``batch_loss`` of a loss taking ``(logits, label map (B, 1, H, W))`` (e.g. ``DiceLoss``).

    ``labels``: the training label maps ``(N, H, W)``, indexed by the batch indices.
    """
    return lambda logits, indices: loss_fn(logits, labels[indices][:, None])


def map_batch_loss(loss_fn: Callable[[Tensor, Tensor], Tensor], maps: Tensor) -> BatchLoss:
    """``batch_loss`` of a loss taking ``(logits, rw_map (B, K, H, W))`` (e.g. ``RegionWiseLoss``).

    ``maps``: the precomputed maps of the training images ``(N, K, H, W)``, indexed by the batch indices.
    """
    return lambda logits, indices: loss_fn(logits, maps[indices])


@dataclass(frozen=True)
class TrainSettings:
    """Optimisation settings of one training run.

    Attributes:
        steps: number of optimiser steps (iterations).
        batch_size: images per step (drawn without replacement within an epoch).
        lr: initial learning rate of Adam (Valverde & Tohka 2022 uses 1e-4 with nnU-Net; at this scale 1e-3, see
        README).
        poly_exponent: ``lr_t = lr (1 - t/steps)^poly_exponent`` (nnU-Net's schedule, 0.9); ``None`` keeps
            the learning rate constant (Shen et al. 2018).
        adam_eps: Adam's epsilon (PyTorch's default 1e-8).
        grad_clip: L2 gradient-norm clipping (Nguyen et al. 2019 uses 5.0 or 3.0); ``None`` = no clipping.
    """

    steps: int
    batch_size: int = 8
    lr: float = 1e-3
    poly_exponent: float | None = 0.9
    adam_eps: float = 1e-8
    grad_clip: float | None = None

    def __post_init__(self) -> None:
        if self.steps < 1 or self.batch_size < 1 or not (self.lr > 0 and math.isfinite(self.lr)):
            raise ValueError(
                f"need steps >= 1, batch_size >= 1 and a finite lr > 0; got steps={self.steps}, "
                f"batch_size={self.batch_size}, lr={self.lr}."
            )


def poly_learning_rate(initial_lr: float, step: int, total_steps: int, exponent: float | None) -> float:
    """nnU-Net's polynomial decay ``initial_lr * (1 - step / total_steps) ** exponent`` (constant if None)."""
    if exponent is None:
        return initial_lr
    return initial_lr * (1.0 - step / total_steps) ** exponent


def _epoch_batches(num_images: int, batch_size: int, generator: torch.Generator):
    """Endless stream of index batches: a fresh permutation per epoch, the last short batch dropped."""
    if batch_size > num_images:
        raise ValueError(f"batch_size={batch_size} exceeds the {num_images} training images; lower it.")
    while True:
        order = torch.randperm(num_images, generator=generator)
        for start in range(0, num_images - batch_size + 1, batch_size):
            yield order[start : start + batch_size]


def train_model(
    model: nn.Module,
    images: Tensor,
    batch_loss: BatchLoss,
    settings: TrainSettings,
    seed: int,
    after_step: Callable[[int], None] | None = None,
) -> list[float]:
    """Train ``model`` in place on ``images`` ``(N, C, H, W)``; returns the loss of every step.

    Each step draws ``settings.batch_size`` images (a new permutation every epoch, from a generator seeded
    with ``seed``), computes ``batch_loss(model(images[idx]), idx)``, back-propagates and takes an Adam step
    with the poly learning rate; ``after_step(step)`` (0-based) is called after each step, e.g. to
    validate. A non-finite loss stops training early (the run is reported as it is).
    """
    generator = torch.Generator().manual_seed(seed)
    optimizer = torch.optim.Adam(model.parameters(), lr=settings.lr, eps=settings.adam_eps)
    batches = _epoch_batches(images.shape[0], settings.batch_size, generator)
    losses: list[float] = []
    model.train()
    for step in range(settings.steps):
        for group in optimizer.param_groups:
            group["lr"] = poly_learning_rate(settings.lr, step, settings.steps, settings.poly_exponent)
        indices = next(batches)
        loss = batch_loss(model(images[indices]), indices)
        if not torch.isfinite(loss):
            losses.append(float("nan"))
            break
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        if settings.grad_clip is not None:
            nn.utils.clip_grad_norm_(model.parameters(), settings.grad_clip)
        optimizer.step()
        losses.append(float(loss.detach()))
        if after_step is not None:
            after_step(step)
    return losses


@torch.no_grad()
def predict_labels(model: nn.Module, images: Tensor, batch_size: int = 64) -> np.ndarray:
    """Arg-max labels ``(N, H, W)`` (int64 numpy) of ``model`` on ``images`` ``(N, C, H, W)``."""
    model.eval()
    starts = range(0, len(images), batch_size)
    labels = [model(images[start : start + batch_size]).argmax(dim=1) for start in starts]
    model.train()
    return torch.cat(labels).numpy()
