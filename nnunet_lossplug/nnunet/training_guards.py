"""Checks that stop a training run early with one message naming the cause and the fix.

- :func:`check_finite_loss`: the first non-finite training loss stops the run (``NonFiniteLossError``) with
  the batch's case identifiers and what to check, instead of a run that ends with ``train_loss nan`` and a
  checkpoint full of NaN. The loss is the float32 value the loss module returns, so AMP's loss scaling
  (whose skipped steps come from overflowing float16 *gradients*) is not affected.
- :func:`check_class_counts`: a class with no voxel in the fold's training cases gets the paper-001 weight
  ``N / ε`` (eq. 4-5, ``ε = 1``), the largest possible, so the class-weighted Dice loss is dominated by a
  class the network never sees (``train_loss`` in the thousands); the trainer stops at start instead.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import torch


class NonFiniteLossError(FloatingPointError):
    """The training loss became NaN or infinite."""


class AbsentClassError(ValueError):
    """A class-weighted loss was asked for while a class has no voxel in the fold's training cases."""


def check_finite_loss(trainer: Any, loss: torch.Tensor, batch: Mapping[str, Any]) -> None:
    """Raise :class:`NonFiniteLossError` if ``loss`` is not finite; the message names the batch's cases.

    ``trainer`` is the running ``LossPlugTrainer`` (epoch, learning rate and map cache are read from it).
    """
    value = float(loss.detach().float().cpu())
    if np.isfinite(value):
        return
    keys = [str(key) for key in batch.get("keys", [])]
    lr = trainer.optimizer.param_groups[0]["lr"] if getattr(trainer, "optimizer", None) is not None else None
    checks = []
    cache = trainer._map_cache() if hasattr(trainer, "_map_cache") else None  # noqa: SLF001 - our own trainer
    if cache is not None:
        checks.append(f"the precomputed maps of these cases (verify and repair them with: "
                      f"{cache.rebuild_command(force=False)})")
    checks.append(f"the learning rate (now {lr:.3g}; lower it in the trainer's optimizer_spec)" if lr is not None
                  else "the learning rate")
    checks.append("the loss's inputs (the images and labels of these cases)")
    raise NonFiniteLossError(
        f"non-finite training loss ({value}) at epoch {trainer.current_epoch} on the batch of cases {keys}; "
        f"the run stops so that no NaN model is saved. Check " + ", ".join(checks) + "."
    )


def check_class_counts(counts: Sequence[int] | np.ndarray, scheme: str, fold: Any,
                       label_names: Mapping[int, str] | None = None) -> None:
    """Raise :class:`AbsentClassError` if a class has zero training voxels and ``scheme`` weights by counts."""
    counts = np.asarray(counts, dtype=np.int64)
    absent = [int(c) for c in np.flatnonzero(counts == 0)]
    if scheme == "uniform" or not absent:
        return
    names = label_names or {}
    described = ", ".join(f"class {c}" + (f" ({names[c]})" if c in names else "") for c in absent)
    raise AbsentClassError(
        f"{described} has no voxel in the training cases of fold {fold} (training-set class voxel counts "
        f"{[int(c) for c in counts]}): its '{scheme}' weight of paper 001 (eq. 4-5) would be N / eps = "
        f"{int(counts.sum())}, the largest any class can get, and would dominate the loss. Ways out: a split "
        f"where every class occurs in the training cases (edit splits_final.json in the dataset's "
        f"nnUNet_preprocessed folder), the uniform weights (nnUNetTrainerDiceUniform), or removing the class from "
        f"dataset.json if it does not belong there. Normalised weights (normalize=True) do not help: they keep "
        f"the ratios, so the absent class would still take almost all of the weight."
    )
