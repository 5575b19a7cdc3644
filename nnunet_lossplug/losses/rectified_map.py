"""A rectified RW map in O(N) memory: the true class's value and one common value for all other classes.

A map is rectified (Valverde & Tohka 2022, Sec. 3.3-3.4) when, at every voxel ``i`` with true class
``t = t(i)``, all non-true channels hold one common value ``c_t(i)``::

    z_k(i) = z_t(i)   if k = t(i)           (RRW: −d/max d ∈ [−1, 0); AC: 0; Cao: −1)
    z_k(i) = c_t(i)   otherwise             (RRW: 1, or the class emphasis c_t of Sec. 3.3; AC, Cao: 1)

Such a map never needs its ``K`` channels: with ``Σ_k s_k = 1`` the RW loss's per-voxel term is

    Σ_k s_k z_k = c_t (1 − s_t) + s_t z_t = c_t + s_t (z_t − c_t),

which needs only the true class's softmax ``s_t = exp(x_t − logsumexp_k x_k)``. :class:`RectifiedMap`
carries ``(t, z_t, c_t)``; :class:`~nnunet_lossplug.losses.RegionWiseLoss` and
:class:`~nnunet_lossplug.losses.RWWeightedCrossEntropyLoss` use it directly (same value and gradient as the
``K``-channel form), every other loss receives :meth:`RectifiedMap.dense` through
:func:`~nnunet_lossplug.losses.call_loss`. This is what keeps RRW's loss memory independent of ``K``.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor

__all__ = ["RectifiedMap", "true_class_log_softmax"]


@dataclass(frozen=True)
class RectifiedMap:
    """``(t, z_t, c_t)`` of a rectified map; see the module docstring.

    Attributes:
        labels: true class per voxel, integer ``(B, 1, *spatial)`` in ``[0, num_classes)``.
        true_value: ``z_t``, a float tensor ``(B, 1, *spatial)`` or a number (the same at every voxel).
        other_value: ``c_t``, a float tensor ``(B, 1, *spatial)`` or a number.
        num_classes: ``K``.
    """

    labels: Tensor
    true_value: Tensor | float
    other_value: Tensor | float
    num_classes: int

    @property
    def shape(self) -> torch.Size:
        """Shape of the equivalent dense map, ``(B, K, *spatial)``."""
        return torch.Size((self.labels.shape[0], self.num_classes, *self.labels.shape[2:]))

    def values(self, dtype: torch.dtype, device: torch.device) -> tuple[Tensor, Tensor]:
        """``(z_t, c_t)`` as ``(B, 1, *spatial)`` tensors of ``dtype`` on ``device`` (detached)."""
        like = torch.empty(self.labels.shape, dtype=dtype, device=device)

        def as_tensor(value: Tensor | float) -> Tensor:
            if isinstance(value, Tensor):
                return value.detach().to(device=device, dtype=dtype).expand_as(like)
            return like.new_full((), float(value)).expand_as(like)

        return as_tensor(self.true_value), as_tensor(self.other_value)

    def dense(self, dtype: torch.dtype = torch.float32) -> Tensor:
        """The ``K``-channel map ``(B, K, *spatial)`` (for losses that need every channel)."""
        true_value, other_value = self.values(dtype, self.labels.device)
        classes = torch.arange(self.num_classes, device=self.labels.device).view(1, -1, *[1] * (self.labels.ndim - 2))
        return torch.where(self.labels.long() == classes, true_value, other_value)

    def check_against(self, logits: Tensor, name: str = "rw_map") -> None:
        """Raise ``ValueError`` unless the map describes the logits' shape ``(B, K, *spatial)``."""
        if tuple(self.shape) != tuple(logits.shape):
            raise ValueError(
                f"{name} (a rectified map of shape {tuple(self.shape)}) must have the logits' shape "
                f"{tuple(logits.shape)}. Decode it at the resolution of this output."
            )


class _TrueClassLogSoftmax(torch.autograd.Function):
    """``log s_t = x_t − logsumexp_k x_k`` with a hand-written backward that allocates one ``K``-channel tensor.

    ``∂ log s_t / ∂x_k = δ_kt − s_k``: the backward recomputes the softmax (torch's fused kernel), scales it by
    ``−g`` in place and adds ``g`` at the true class, instead of autograd's separate gradients of a gather and a
    logsumexp. Nothing ``K``-channel is kept between forward and backward but the logits (the network's output,
    alive anyway); the forward's ``log_softmax`` is a temporary.
    """

    @staticmethod
    def forward(ctx, logits: Tensor, labels: Tensor) -> Tensor:
        ctx.save_for_backward(logits, labels)
        return torch.log_softmax(logits, dim=1).gather(1, labels)

    @staticmethod
    def backward(ctx, grad: Tensor) -> tuple[Tensor, None]:
        logits, labels = ctx.saved_tensors
        grad_logits = torch.softmax(logits, dim=1)
        grad_logits.mul_(-grad)
        grad_logits.scatter_add_(1, labels, grad)
        return grad_logits, None


def true_class_log_softmax(logits: Tensor, labels: Tensor) -> Tensor:
    """``log s_t = x_t − logsumexp_k x_k`` at each voxel's true class, ``(B, 1, *spatial)``.

    Saves only ``O(N)`` tensors besides the logits for the backward pass, which allocates one ``K``-channel
    tensor (the logits' gradient itself).
    """
    return _TrueClassLogSoftmax.apply(logits, labels.long())
