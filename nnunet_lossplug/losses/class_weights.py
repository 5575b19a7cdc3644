"""Class weights of the multi-class Dice loss of Shen et al. 2018, eq. 3-5."""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Literal

import torch
from torch import Tensor

__all__ = ["WEIGHT_SCHEMES", "dice_class_weights"]

WEIGHT_SCHEMES = ("uniform", "simple", "square")


def dice_class_weights(
    voxel_counts: Sequence[float] | Tensor,
    scheme: Literal["uniform", "simple", "square"] = "uniform",
    normalize: bool = False,
    epsilon: float = 1.0,
    total_voxels: float | None = None,
) -> Tensor:
    """Per-class weights ``w_l`` of :class:`~nnunet_lossplug.losses.DiceLoss` from training-set voxel counts.

    Shen et al. 2018 (*On the influence of Dice loss function in multi-class organ segmentation*),
    eq. 3-5, with ``|R_l|`` the number of voxels of class ``l`` over the **whole training set**,
    ``N = Σ_l |R_l|`` the total voxel count and ``L`` the number of labels, background included:

    - ``"uniform"`` (eq. 3): ``W_u = 1``;
    - ``"simple"``  (eq. 4): ``W_s = N / (L·|R_l| + ε)``;
    - ``"square"``  (eq. 5): ``W_q = N / (L·|R_l|² + ε)``.

    The weights enter eq. (6) as ``L_MD = (1/L) Σ_l w_l L_DSC,l`` (see ``DiceLoss(class_weights=...)``).

    Args:
        voxel_counts: ``|R_l|`` for ``l = 0 .. L-1`` (background first, one entry per output channel),
            non-negative and finite.
        scheme: ``"uniform"``, ``"simple"`` or ``"square"``. Default ``"uniform"`` (plain Dice).
        normalize: ``False`` (default) returns the paper's weights exactly. They differ by orders of
            magnitude (the square weight of a large organ is ~1e-8 of that of a small one), which is why the
            paper finds they interact with the learning rate; ``True`` rescales them to mean 1 so that the
            loss keeps the scale of the unweighted Dice loss while the ratios between classes are unchanged.
        epsilon: ``ε`` of eq. (4)-(5); the paper sets ``ε = 1`` "to avoid division by zero".
        total_voxels: ``N``; default ``Σ_l |R_l|`` (exclusive classes). For nnU-Net's overlapping regions
            (docs/conventions.md, Regions: ``|R_r|`` per region) pass the number of annotated voxels; one
            region is then allowed.

    Returns:
        A float64 tensor of shape ``(L,)``.

    Empty class: a class with ``|R_l| = 0`` gets the finite weight ``N / ε`` under both ``"simple"`` and
    ``"square"``, the largest weight any class can have. The Dice term of a class absent from a batch has
    zero gradient when ``smooth = 0`` (numerator and its derivative vanish), so such a weight only adds a
    constant to the loss; with ``smooth > 0`` it strongly penalises predicting that class.
    """
    if scheme not in WEIGHT_SCHEMES:
        raise ValueError(f"scheme must be one of {WEIGHT_SCHEMES}, got {scheme!r}.")
    if not (isinstance(epsilon, (int, float)) and math.isfinite(epsilon) and epsilon > 0):
        raise ValueError(f"epsilon must be a finite number > 0 (the paper uses 1), got {epsilon!r}.")
    counts = torch.as_tensor(voxel_counts, dtype=torch.float64).detach().cpu()
    if counts.ndim != 1 or counts.numel() < (1 if total_voxels is not None else 2):
        raise ValueError(
            f"voxel_counts must be a 1-D sequence with one count per class (background included, so at least "
            f"2 entries), got shape {tuple(counts.shape)}."
        )
    if not bool(torch.all(torch.isfinite(counts))) or bool(torch.any(counts < 0)):
        raise ValueError(f"voxel_counts must be finite and non-negative, got {counts.tolist()}.")
    num_labels = counts.numel()
    total = counts.sum() if total_voxels is None else torch.tensor(float(total_voxels), dtype=torch.float64)
    if not bool(total > 0):
        raise ValueError("voxel_counts are all zero: the class weights need at least one labelled voxel.")
    if scheme == "uniform":
        weights = torch.ones_like(counts)
    elif scheme == "simple":
        weights = total / (num_labels * counts + epsilon)
    else:
        weights = total / (num_labels * counts**2 + epsilon)
    if normalize:
        weights = weights / weights.mean()
    return weights
