"""Two-term loss mixtures of Valverde & Tohka 2022, Sec. 4.4: "equal" (sum) and "gradual" (Kervadec's α)."""

from __future__ import annotations

from typing import Literal

from torch import Tensor, nn

from .calling import call_loss, loss_inputs, order_inputs
from .segmentation_loss import SegmentationLoss

__all__ = ["LossMixture", "gradual_alpha"]

SCHEDULES = ("equal", "gradual")


def gradual_alpha(epoch: int) -> float:
    """Kervadec et al.'s schedule used by Valverde & Tohka 2022: ``α = max((100 − epoch) / 100, 0.01)``.

    ``α = 1`` at epoch 0, decreasing by 0.01 per epoch to its floor 0.01 from epoch 99 on.
    """
    return max((100 - epoch) / 100, 0.01)


class LossMixture(SegmentationLoss):
    """Sum of two losses, with equal weights or with the gradual schedule of Valverde & Tohka 2022, Sec. 4.4.

    ::

        "equal":    L = first + second
        "gradual":  L = α · first + (1 − α) · second,   α = max((100 − epoch) / 100, 0.01)

    Valverde & Tohka 2022 combine a Dice or cross-entropy ``first`` with an RW ``second`` term (RW-Boundary,
    i.e. Boundary loss, or RRW); "gradual" is the Boundary-loss training schedule of Kervadec et al. 2019:
    the mixture starts as ``first`` alone (``α = 1`` at epoch 0) and hands over to ``second`` (``α → 0.01``).
    Epochs count from 0, as in nnU-Net; call :meth:`set_epoch` at the start of every epoch.

    Protocol flags: ``inputs`` is the union of the components' inputs in vocabulary order (``"target"``
    first); ``nonnegative`` holds when both components declare it. Maps are forwarded through
    :func:`~nnunet_lossplug.losses.call_loss`, which hands each component the form it accepts
    (``accepts_rectified``), and a mask goes to both components, each of which must accept one
    (``accepts_mask``). Region mode is a setting of the components (``regions`` stays ``False`` here).

    Args:
        first: a loss following the calling protocol (:class:`~nnunet_lossplug.losses.SegmentationLoss`, or any
            ``nn.Module`` with the protocol's defaults).
        second: likewise.
        schedule: ``"equal"`` (default) or ``"gradual"``.

    Shape:
        ``forward(logits, *inputs, target=None, rw_map=None, mask=None)``: ``logits`` ``(B, K, *spatial)``,
        then the components' inputs positionally in ``inputs`` order, or by keyword.

    Returns:
        The weighted sum, a scalar.
    """

    accepts_mask = True
    accepts_rectified = True

    def __init__(
        self,
        first: nn.Module,
        second: nn.Module,
        schedule: Literal["equal", "gradual"] = "equal",
    ) -> None:
        super().__init__()
        if schedule not in SCHEDULES:
            raise ValueError(f"schedule must be one of {SCHEDULES}, got {schedule!r}.")
        for component in (first, second):
            loss_inputs(component)  # refuse a component with invalid inputs now, not at its first forward
        self.first = first
        self.second = second
        self.schedule = schedule
        self.epoch = 0

    @property
    def inputs(self) -> tuple[str, ...]:
        """The union of the components' ``inputs``, in vocabulary order."""
        return order_inputs(loss_inputs(self.first) + loss_inputs(self.second))

    @property
    def nonnegative(self) -> bool:
        """``True`` when both components declare themselves non-negative (the weights are ``>= 0``)."""
        return all(bool(getattr(loss, "nonnegative", False)) for loss in (self.first, self.second))

    @property
    def alpha(self) -> float | None:
        """The current ``α`` of the gradual schedule; ``None`` for ``"equal"``."""
        return gradual_alpha(self.epoch) if self.schedule == "gradual" else None

    @property
    def component_weights(self) -> tuple[float, float]:
        """Current weights of ``(first, second)``: ``(1, 1)`` for "equal", ``(α, 1 − α)`` for "gradual"."""
        alpha = self.alpha
        return (1.0, 1.0) if alpha is None else (alpha, 1.0 - alpha)

    def set_epoch(self, epoch: int) -> None:
        """Set the current epoch (0-based) that determines ``α``."""
        if isinstance(epoch, bool) or not isinstance(epoch, int) or epoch < 0:
            raise ValueError(f"epoch must be an int >= 0 (nnU-Net counts from 0), got {epoch!r}.")
        self.epoch = epoch

    def constructor_settings(self) -> dict[str, object]:
        """The schedule, with the current epoch and the inputs (state worth seeing in ``repr``)."""
        return {**super().constructor_settings(), "epoch": self.epoch, "inputs": self.inputs}

    def forward(
        self,
        logits: Tensor,
        *args: Tensor,
        target: Tensor | None = None,
        rw_map: Tensor | None = None,
        mask: Tensor | None = None,
    ) -> Tensor:
        """Return the weighted sum; the inputs come positionally in ``self.inputs`` order, or by keyword."""
        if len(args) > len(self.inputs):
            raise TypeError(
                f"LossMixture takes at most {len(self.inputs)} inputs after the logits {self.inputs}, "
                f"got {len(args)} positional arguments."
            )
        given = {"target": target, "rw_map": rw_map}
        for name, value in zip(self.inputs, args, strict=False):
            if given[name] is not None:
                raise TypeError(f"LossMixture got {name!r} both positionally and by keyword.")
            given[name] = value
        terms = [
            weight * call_loss(loss, logits, **given, mask=mask)
            for weight, loss in zip(self.component_weights, (self.first, self.second), strict=True)
            if weight != 0.0  # "gradual" at epoch 0 has α = 1: the second term is not computed
        ]
        return terms[0] if len(terms) == 1 else terms[0] + terms[1]
