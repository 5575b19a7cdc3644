"""One-sided Hausdorff-distance loss of Karimi & Salcudean, as restated by paper 002 Prop. 3; SPEC §1."""

from __future__ import annotations

import math
from typing import ClassVar

import torch
from torch import Tensor, nn

from ._inputs import full_precision, one_hot_target, prepare_logits, prepare_map

__all__ = ["OneSidedHausdorffLoss"]


class OneSidedHausdorffLoss(nn.Module):
    """One-sided HD loss: squared softmax error weighted by the ground-truth boundary distance to the power α.

    Paper 002, Prop. 3 (Karimi & Salcudean, *Reducing the Hausdorff distance ...*, one-sided variant)::

        L_HD = mean_{b,k,i} ( (s[b,k,i] − y[b,k,i])² · D[b,k,i]^α )

    with ``s = softmax(logits)``, ``y`` the one-hot target and ``D`` (``rw_map``) the unsigned Euclidean
    distance of each voxel to the ground-truth boundary of class ``k`` (SPEC §1: ``≡ 0`` for a class absent
    from the image or filling it). Paper 002 shows this equals an RW loss on the squared softmax.
    The normalisation by the number of elements matches :class:`RegionWiseLoss`.

    Args:
        alpha: exponent of the distance map, ``α >= 0``. Default 2, Karimi et al.'s choice (SPEC §1).

    Shapes: ``logits`` and ``rw_map`` ``(B, K, *spatial)``; ``target`` label map ``(B, 1, *spatial)`` or
    one-hot ``(B, K, *spatial)``. ``rw_map`` must be non-negative. Returns a non-negative scalar.
    """

    inputs: ClassVar[tuple[str, ...]] = ("target", "rw_map")
    nonnegative: ClassVar[bool] = True

    def __init__(self, alpha: float = 2.0) -> None:
        super().__init__()
        if not (isinstance(alpha, (int, float)) and math.isfinite(alpha) and alpha >= 0):
            raise ValueError(f"alpha must be a finite number >= 0 (Karimi et al. use 2), got {alpha!r}.")
        self.alpha = float(alpha)

    def extra_repr(self) -> str:
        return f"alpha={self.alpha}"

    def forward(self, logits: Tensor, target: Tensor, rw_map: Tensor) -> Tensor:
        """Return ``mean((softmax(logits) − y)² · rw_map^alpha)``; ``rw_map`` is the distance map ``D``."""
        logits = prepare_logits(logits)
        with full_precision(logits.device):
            onehot = one_hot_target(target, logits)
            distance = prepare_map(rw_map, logits, name="rw_map (the distance map D)")
            if bool(torch.any(distance < 0)):
                raise ValueError(
                    f"the distance map of OneSidedHausdorffLoss must be non-negative (unsigned distances "
                    f"to the ground-truth boundary), found a minimum of {float(distance.min()):g}. Signed "
                    f"maps belong to RegionWiseLoss (RW-Boundary)."
                )
            probs = torch.softmax(logits, dim=1)
            return ((probs - onehot) ** 2 * distance**self.alpha).mean()
