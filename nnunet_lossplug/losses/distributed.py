"""Sums over the global batch under data-parallel training (``torch.distributed``), with correct gradients.

SA Dice (Nguyen et al. 2019, eq. 4-5) sums intersections and volumes over the whole batch *before* the
ratio. Under data-parallel training every rank only holds ``B / W`` of the ``B`` images, so the sums must run
over all ranks: :func:`global_sum` all-reduces a tensor of per-class sums in the forward pass.

Gradient scaling (why the backward pass all-reduces too). Write the loss on rank ``r`` as
``L_r = f(S) + g_r`` with ``S = Σ_q s_q`` the global sum of the per-rank sums ``s_q`` (``g_r`` any rank-local
term, e.g. a cross-entropy added in a mixture). DDP optimises ``(1/W) Σ_r L_r``: it averages the parameter
gradients of the ranks. The adjoint of an all-reduce-sum is an all-reduce-sum, so the backward pass gives
``∂/∂s_r = Σ_q ∂L_q/∂S = W · f'(S)`` on every rank. Hence

- each rank's logit gradient equals ``W`` times the matching slice of the gradient of the single-process
  loss over the whole batch, and
- after DDP divides by ``W``, the parameter gradient equals the single-process gradient exactly.

This is the same convention as any batch-mean loss under DDP (a rank's local mean over ``B / W`` images has
``W`` times the per-image weight of the global mean), so SA Dice mixed with cross-entropy keeps the
relative weighting it has in a single process. nnU-Net's ``AllGatherGrad`` implements the same scaling.

Every rank must call the loss (forward and backward) in lockstep, as DDP itself requires.
"""

from __future__ import annotations

from typing import Any

import torch
import torch.distributed as dist
from torch import Tensor

__all__ = ["distributed_world_size", "global_sum", "resolve_ddp"]


def distributed_world_size() -> int:
    """Number of processes of the default ``torch.distributed`` group, or 1 when it is not initialised."""
    if dist.is_available() and dist.is_initialized():
        return dist.get_world_size()
    return 1


def resolve_ddp(ddp: bool | None) -> bool:
    """Decide whether to all-reduce: ``None`` means "when ``torch.distributed`` is initialised with >1 rank".

    ``True`` demands an initialised process group and raises a clear error otherwise.
    """
    if ddp is None:
        return distributed_world_size() > 1
    if ddp and not (dist.is_available() and dist.is_initialized()):
        raise RuntimeError(
            "ddp=True needs an initialised torch.distributed process group "
            "(torch.distributed.init_process_group); pass ddp=None to detect it automatically or ddp=False "
            "for single-process training."
        )
    return bool(ddp)


class _AllReduceSum(torch.autograd.Function):
    """Differentiable all-reduce (sum); its backward pass is the adjoint all-reduce (module docstring)."""

    @staticmethod
    def forward(ctx: Any, tensor: Tensor) -> Tensor:
        reduced = tensor.clone()
        dist.all_reduce(reduced, op=dist.ReduceOp.SUM)
        return reduced

    @staticmethod
    def backward(ctx: Any, grad_output: Tensor) -> Tensor:
        grad = grad_output.contiguous().clone()
        dist.all_reduce(grad, op=dist.ReduceOp.SUM)
        return grad


def global_sum(tensor: Tensor) -> Tensor:
    """Sum ``tensor`` over all ranks of the default process group (identity without ``torch.distributed``).

    Differentiable: each rank's gradient with respect to its local ``tensor`` is ``W`` times the
    single-process gradient, which DDP's gradient averaging turns into the exact gradient of the loss over
    the global batch (module docstring).
    """
    if distributed_world_size() == 1:
        return tensor
    return _AllReduceSum.apply(tensor)
