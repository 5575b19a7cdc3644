"""Deep supervision / Weighted Multi-resolution Loss Accumulation (WMLA) of Nguyen et al. 2019, eq. 6.

nnU-Net's variant trainers each copy the block that weights the per-resolution losses; here it lives in
one place: :func:`deep_supervision_weights` for fixed weights and :class:`DeepSupervisionLoss` for the sum,
with fixed or trainable weights.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Literal

import torch
from torch import Tensor, nn

from .calling import call_loss, loss_inputs
from .segmentation_loss import SegmentationLoss

__all__ = ["DeepSupervisionLoss", "deep_supervision_weights"]


def deep_supervision_weights(
    preset: Literal["nnunet"] | Sequence[float],
    num_outputs: int,
    zero_weight: float = 0.0,
) -> tuple[float, ...]:
    """Fixed per-resolution weights ``α_k``, ordered from the highest-resolution output to the lowest.

    - ``"nnunet"``: nnU-Net's default, ``α_k ∝ 1/2^k`` for ``k = 0 .. num_outputs-1`` with the
      lowest-resolution output set to 0, normalised to sum 1 (a single output gets ``(1.0,)``).
    - an explicit tuple, e.g. the best ``(1, 0.1, 0.01)`` of Nguyen et al. 2019 or ``(1, 1, 1)`` (their
      Table I): used as given,
      with levels beyond the tuple weighted 0. It is **not** renormalised, so that ``α_1 = 1`` as in the
      paper and the loss scale stays that of the full-resolution loss.

    Args:
        preset: ``"nnunet"`` or a sequence of at most ``num_outputs`` finite weights ``>= 0``, not all 0.
        num_outputs: number of network outputs (deep-supervision levels), ``>= 1``.
        zero_weight: value that replaces every zero weight (after the preset is built, before nnU-Net's
            normalisation). Default 0: zero-weight levels are skipped. Under DDP without ``torch.compile``,
            a skipped level leaves its segmentation head without gradient and DDP raises about unused
            parameters; nnU-Net then uses 1e-6 for the lowest level, which ``zero_weight=1e-6`` reproduces.

    Returns:
        A tuple of ``num_outputs`` floats.
    """
    if isinstance(num_outputs, bool) or not isinstance(num_outputs, int) or num_outputs < 1:
        raise ValueError(f"num_outputs must be an int >= 1, got {num_outputs!r}.")
    if not (isinstance(zero_weight, (int, float)) and math.isfinite(zero_weight) and zero_weight >= 0):
        raise ValueError(f"zero_weight must be a finite number >= 0, got {zero_weight!r}.")
    if isinstance(preset, str):
        if preset != "nnunet":
            raise ValueError(
                f"preset must be 'nnunet' or a sequence of weights such as (1, 0.1, 0.01), got {preset!r} "
                f"(trainable weights: DeepSupervisionLoss(loss, 'trainable', num_outputs))."
            )
        weights = [1.0 / 2**level for level in range(num_outputs)]
        if num_outputs > 1:
            weights[-1] = 0.0
        weights = [zero_weight if weight == 0.0 else weight for weight in weights]
        total = sum(weights)
        return tuple(weight / total for weight in weights)
    weights = [float(weight) for weight in preset]
    if len(weights) > num_outputs:
        raise ValueError(
            f"got {len(weights)} weights {tuple(weights)} for a network with {num_outputs} outputs; give at "
            f"most one weight per output (missing trailing levels are weighted 0)."
        )
    if not weights or any(not math.isfinite(w) or w < 0 for w in weights) or not any(w > 0 for w in weights):
        raise ValueError(f"weights must be finite, >= 0 and not all 0, got {tuple(weights)}.")
    weights += [0.0] * (num_outputs - len(weights))
    return tuple(zero_weight if weight == 0.0 else weight for weight in weights)


class DeepSupervisionLoss(SegmentationLoss):
    """Weighted sum of one loss per decoder resolution (WMLA, Nguyen et al. 2019, eq. 6; nnU-Net's deep supervision).

    ::

        L = Σ_k α_k · loss(P_k, G_k [, Z_k])            k = 1 (full resolution) .. num_outputs

    ``outputs[k]`` are the logits of level ``k`` (highest resolution first) and ``targets[k]`` /
    ``rw_maps[k]`` the ground truth / map downsampled to that resolution. Each level calls ``loss`` through
    :func:`~nnunet_lossplug.losses.call_loss`, so any loss following the calling protocol fits.

    Weights (``weights``):

    - ``"nnunet"`` or a sequence: fixed ``α_k`` from :func:`deep_supervision_weights` (explicit tuples are
      not renormalised). Levels with ``α_k = 0`` are not computed; under DDP without ``torch.compile`` pass
      ``deep_supervision_weights(preset, num_outputs, zero_weight=1e-6)`` instead, as nnU-Net does, so that
      every segmentation head receives a gradient.
    - ``"trainable"``: Nguyen et al. 2019 keep ``α_1 = 1`` and learn the others. A plain learnable ``α_k``
      would be driven to 0 by minimisation, so the project uses homoscedastic-uncertainty weighting (Kendall
      et al. 2018; docs/conventions.md, "Trainable deep-supervision weights")::

          L = loss_1 + Σ_{k>=2} ( exp(−σ_k) · loss_k + σ_k ),     α_k = exp(−σ_k)

      whose minimum over ``σ_k`` is at ``σ_k = log loss_k``, i.e. ``α_k = 1 / loss_k``: levels are
      balanced by their own loss scale and never collapse. ``σ_k`` are ``nn.Parameter`` s (attribute
      ``sigma``, shape ``(num_outputs − 1,)``, initialised to 0 = weight 1) saved by ``state_dict()``; the
      trainer must give them to its optimiser. In the forward pass they are clamped smoothly to
      ``(−sigma_limit, sigma_limit)`` by ``σ ↦ sigma_limit · tanh(σ / sigma_limit)`` (identity near 0,
      ``α_k ∈ (e^{−3}, e^{3}) ≈ (0.05, 20)`` for the default 3): this keeps the weights sane when a level's
      loss approaches 0 and, unlike a hard clamp, never zeroes the gradient of ``σ``.
      The objective is bounded below only for non-negative per-level losses, so ``loss`` must be
      non-negative: a loss whose ``nonnegative`` attribute is ``False`` (e.g. ``RegionWiseLoss`` without
      ``shift_to_nonnegative=True``) is refused here, and a loss without the attribute is checked at run time.

    Protocol flags: ``inputs`` is the wrapped loss's (what each list of ``forward`` carries); ``nonnegative``
    holds for fixed weights and a non-negative ``loss``. The wrapper takes per-level lists, so it is called
    directly, not through ``call_loss``: masks come as the list ``masks`` (``accepts_mask`` stays ``False``),
    maps reach ``loss`` through ``call_loss`` level by level, and region mode is a setting of ``loss``.

    Args:
        loss: the per-level loss module.
        weights: ``"nnunet"``, a sequence of fixed weights, or ``"trainable"``.
        num_outputs: number of network outputs; ``forward`` checks the lists against it.
        sigma_limit: bound of the smooth clamp of ``σ_k`` (trainable weights only). Default 3.

    Shape:
        ``forward(outputs, targets=None, rw_maps=None, masks=None)``: lists of ``num_outputs`` tensors, highest
        resolution first; level ``k`` holds logits ``(B, K, *spatial_k)``, the target and map of ``loss`` at
        that resolution, and an optional mask ``(B, 1, *spatial_k)``, ``True`` at annotated voxels.

    Returns:
        A scalar: ``Σ_k α_k · loss_k``, plus ``Σ σ_k`` with trainable weights.
    """

    def __init__(
        self,
        loss: nn.Module,
        weights: Literal["nnunet", "trainable"] | Sequence[float],
        num_outputs: int,
        sigma_limit: float = 3.0,
    ) -> None:
        super().__init__()
        loss_inputs(loss)  # refuse a loss with invalid inputs now, not at its first forward
        self.loss = loss
        self.trainable = isinstance(weights, str) and weights == "trainable"
        if self.trainable:
            if isinstance(num_outputs, bool) or not isinstance(num_outputs, int) or num_outputs < 1:
                raise ValueError(f"num_outputs must be an int >= 1, got {num_outputs!r}.")
            if not (isinstance(sigma_limit, (int, float)) and math.isfinite(sigma_limit) and sigma_limit > 0):
                raise ValueError(f"sigma_limit must be a finite number > 0, got {sigma_limit!r}.")
            if getattr(loss, "nonnegative", None) is False:
                raise ValueError(
                    f"trainable deep-supervision weights need a non-negative per-level loss (exp(-σ)·L + σ "
                    f"is unbounded below for L < 0), but {type(loss).__name__} declares nonnegative=False. "
                    f"For RegionWiseLoss pass shift_to_nonnegative=True (same gradients)."
                )
            self.sigma = nn.Parameter(torch.zeros(num_outputs - 1))
            self.fixed_weights: tuple[float, ...] | None = None
        else:
            self.fixed_weights = deep_supervision_weights(weights, num_outputs)
        self.num_outputs = num_outputs
        self.sigma_limit = float(sigma_limit)

    @property
    def inputs(self) -> tuple[str, ...]:
        """The wrapped loss's ``inputs``: what each of the lists ``targets`` and ``rw_maps`` carries."""
        return loss_inputs(self.loss)

    @property
    def nonnegative(self) -> bool:
        """``True`` for fixed weights and a non-negative ``loss``; ``False`` when trainable (``σ_k < 0``)."""
        return not self.trainable and bool(getattr(self.loss, "nonnegative", False))

    def constructor_settings(self) -> dict[str, object]:
        """``weights`` (``"trainable"`` or the fixed ``α_k``), ``num_outputs`` and ``sigma_limit``."""
        weights = "trainable" if self.trainable else self.fixed_weights
        return {"weights": weights, **super().constructor_settings()}

    def set_epoch(self, epoch: int) -> None:
        """Forward the epoch to the wrapped loss when it has a schedule (e.g. a gradual ``LossMixture``)."""
        set_inner_epoch = getattr(self.loss, "set_epoch", None)
        if callable(set_inner_epoch):
            set_inner_epoch(epoch)

    def clamped_sigma(self) -> Tensor:
        """``sigma_limit · tanh(σ / sigma_limit)``: the ``σ_k`` used in the forward pass (trainable only)."""
        if not self.trainable:
            raise RuntimeError("clamped_sigma() exists only for weights='trainable'.")
        return self.sigma_limit * torch.tanh(self.sigma / self.sigma_limit)

    def current_weights(self) -> tuple[float, ...]:
        """The current ``α_k`` as floats, highest resolution first (for logging)."""
        if not self.trainable:
            assert self.fixed_weights is not None
            return self.fixed_weights
        with torch.no_grad():
            return (1.0, *(float(w) for w in torch.exp(-self.clamped_sigma())))

    def forward(
        self,
        outputs: Sequence[Tensor],
        targets: Sequence[Tensor] | None = None,
        rw_maps: Sequence[Tensor] | None = None,
        masks: Sequence[Tensor] | None = None,
    ) -> Tensor:
        """Return ``Σ_k α_k · loss(outputs[k], targets[k], rw_maps[k])`` (plus ``Σ σ_k`` when trainable).

        ``masks``: optional ignore masks ``(B, 1, *spatial)`` per level (``True`` = annotated;
        docs/conventions.md, "Ignore labels"), passed to the loss as ``mask=``.
        """
        outputs = _check_levels("outputs", outputs, self.num_outputs, required=True)
        targets = _check_levels("targets", targets, self.num_outputs, required="target" in self.inputs)
        rw_maps = _check_levels("rw_maps", rw_maps, self.num_outputs, required="rw_map" in self.inputs)
        masks = _check_levels("masks", masks, self.num_outputs, required=False)

        def level_loss(level: int) -> Tensor:
            return call_loss(
                self.loss,
                outputs[level],
                targets[level] if targets is not None else None,
                rw_maps[level] if rw_maps is not None else None,
                masks[level] if masks is not None else None,
            )

        if not self.trainable:
            assert self.fixed_weights is not None
            weights = self.fixed_weights
            terms = [weight * level_loss(level) for level, weight in enumerate(weights) if weight != 0]
            fixed_total = terms[0]
            for term in terms[1:]:
                fixed_total = fixed_total + term
            return fixed_total

        total = self._checked(level_loss(0), 0)
        sigma = self.clamped_sigma()
        for level in range(1, self.num_outputs):
            level_value = self._checked(level_loss(level), level)
            total = total + torch.exp(-sigma[level - 1]) * level_value + sigma[level - 1]
        return total

    def _checked(self, value: Tensor, level: int) -> Tensor:
        if getattr(self.loss, "nonnegative", None) is None and bool(value.detach() < 0):
            raise ValueError(
                f"trainable deep-supervision weights need non-negative per-level losses, but "
                f"{type(self.loss).__name__} returned {float(value):g} at level {level}."
            )
        return value


def _check_levels(
    name: str, levels: Sequence[Tensor] | None, num_outputs: int, required: bool
) -> Sequence[Tensor] | None:
    if levels is None:
        if required:
            raise ValueError(f"{name} is required by the wrapped loss: give a list of {num_outputs} tensors.")
        return None
    if isinstance(levels, Tensor) or not isinstance(levels, (list, tuple)):
        raise TypeError(
            f"{name} must be a list or tuple with one tensor per resolution (highest first), "
            f"got {type(levels).__name__}. Without deep supervision use num_outputs=1 and [tensor]."
        )
    if len(levels) != num_outputs:
        raise ValueError(f"{name} has {len(levels)} levels, expected num_outputs={num_outputs}.")
    return levels
