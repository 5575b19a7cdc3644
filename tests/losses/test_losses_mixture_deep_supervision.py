"""LossMixture (Valverde & Tohka 2022 Sec. 4.4) and deep supervision / WMLA (Nguyen et al. 2019 eq. 6,
docs/conventions.md#wmla)."""

from __future__ import annotations

import math
from typing import ClassVar

import pytest
import torch

from nnunet_lossplug.losses import (
    CrossEntropyLoss,
    DeepSupervisionLoss,
    DiceLoss,
    LossMixture,
    OneSidedHausdorffLoss,
    RegionWiseLoss,
    call_loss,
    deep_supervision_weights,
    gradual_alpha,
)

torch.set_num_threads(1)


class SquaredMeanLoss(torch.nn.Module):
    """A loss with a trivially known value, ``mean(logits²)``, that records which levels it was called on."""

    inputs: ClassVar[tuple[str, ...]] = ("target",)
    nonnegative: ClassVar[bool] = True

    def __init__(self) -> None:
        super().__init__()
        self.calls: list[tuple[int, ...]] = []

    def forward(self, logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        self.calls.append(tuple(logits.shape))
        return (logits**2).mean()


class ConstantTimesRWMap(torch.nn.Module):
    """A loss of known value taking only the map: ``mean(rw_map)`` (may be negative, undeclared)."""

    inputs: ClassVar[tuple[str, ...]] = ("rw_map",)

    def forward(self, logits: torch.Tensor, rw_map: torch.Tensor) -> torch.Tensor:
        return rw_map.mean() + 0 * logits.mean()


def _levels(values: list[float], num_classes: int = 2) -> list[torch.Tensor]:
    """Constant logits per level, halving the resolution: level k has mean(logits²) = values[k]²."""
    return [torch.full((1, num_classes, 8 >> k, 8 >> k), v, dtype=torch.float64) for k, v in enumerate(values)]


def _targets(num_levels: int) -> list[torch.Tensor]:
    return [torch.zeros(1, 1, 8 >> k, 8 >> k, dtype=torch.long) for k in range(num_levels)]


# ---- LossMixture ----

@pytest.mark.parametrize(("epoch", "alpha"), [(0, 1.0), (30, 0.7), (50, 0.5), (99, 0.01), (100, 0.01), (400, 0.01)])
def test_gradual_alpha_schedule(epoch: int, alpha: float) -> None:
    assert gradual_alpha(epoch) == pytest.approx(alpha, abs=1e-15)


def test_equal_mixture_is_the_sum() -> None:
    first, second = SquaredMeanLoss(), ConstantTimesRWMap()
    mixture = LossMixture(first, second, schedule="equal")
    logits = torch.full((1, 2, 2, 2), 3.0, dtype=torch.float64)
    rw_map = torch.full((1, 2, 2, 2), -0.5, dtype=torch.float64)
    value = mixture(logits, torch.zeros(1, 1, 2, 2, dtype=torch.long), rw_map)
    assert value.item() == pytest.approx(9.0 - 0.5)
    assert mixture.alpha is None and mixture.component_weights == (1.0, 1.0)


def test_gradual_mixture_follows_alpha_and_skips_a_zero_weight_term() -> None:
    first, second = SquaredMeanLoss(), ConstantTimesRWMap()
    mixture = LossMixture(first, second, schedule="gradual")
    logits = torch.full((1, 2, 2, 2), 3.0, dtype=torch.float64)
    rw_map = torch.full((1, 2, 2, 2), -0.5, dtype=torch.float64)
    target = torch.zeros(1, 1, 2, 2, dtype=torch.long)
    assert mixture(logits, target, rw_map).item() == pytest.approx(9.0)  # epoch 0: α = 1
    assert mixture(logits, target=target).item() == pytest.approx(9.0)  # the map is not needed yet
    mixture.set_epoch(25)
    assert mixture.alpha == pytest.approx(0.75)
    assert mixture(logits, target, rw_map).item() == pytest.approx(0.75 * 9.0 + 0.25 * -0.5)
    with pytest.raises(ValueError, match="epoch"):
        mixture.set_epoch(-1)
    with pytest.raises(ValueError, match="schedule"):
        LossMixture(first, second, schedule="linear")  # type: ignore[arg-type]


def test_mixture_inputs_are_the_union_in_vocabulary_order() -> None:
    assert LossMixture(RegionWiseLoss(), DiceLoss()).inputs == ("target", "rw_map")
    assert LossMixture(DiceLoss(), CrossEntropyLoss()).inputs == ("target",)
    assert LossMixture(RegionWiseLoss(), RegionWiseLoss()).inputs == ("rw_map",)
    assert LossMixture(OneSidedHausdorffLoss(), DiceLoss()).inputs == ("target", "rw_map")


def test_mixture_of_map_only_losses_follows_the_positional_convention() -> None:
    torch.manual_seed(0)
    logits = torch.randn(1, 3, 4, 4, dtype=torch.float64)
    rw_map = torch.randn(1, 3, 4, 4, dtype=torch.float64)
    mixture = LossMixture(RegionWiseLoss(), RegionWiseLoss(shift_to_nonnegative=True))
    by_position = call_loss(mixture, logits, None, rw_map)
    by_keyword = mixture(logits, rw_map=rw_map)
    s = torch.softmax(logits, 1)
    expected = (s * rw_map).mean() + (s * (rw_map - rw_map.amin(1, keepdim=True))).mean()
    assert by_position.item() == pytest.approx(expected.item(), rel=1e-13)
    assert by_keyword.item() == pytest.approx(expected.item(), rel=1e-13)


def test_mixture_gradcheck() -> None:
    torch.manual_seed(1)
    logits = torch.randn(2, 3, 3, 2, dtype=torch.float64, requires_grad=True)
    labels = torch.randint(0, 3, (2, 1, 3, 2))
    rw_map = torch.randn(2, 3, 3, 2, dtype=torch.float64)
    mixture = LossMixture(DiceLoss(batch_dice=True), RegionWiseLoss(), schedule="gradual")
    mixture.set_epoch(40)
    assert torch.autograd.gradcheck(lambda x: mixture(x, labels, rw_map), (logits,))


def test_mixture_non_negativity_is_declared_from_its_components() -> None:
    assert LossMixture(DiceLoss(), CrossEntropyLoss()).nonnegative
    assert not LossMixture(DiceLoss(), RegionWiseLoss()).nonnegative
    assert LossMixture(DiceLoss(), RegionWiseLoss(shift_to_nonnegative=True)).nonnegative


# ---- deep_supervision_weights ----

def test_nnunet_preset_halves_zeroes_the_lowest_and_normalises() -> None:
    assert deep_supervision_weights("nnunet", 4) == pytest.approx((4 / 7, 2 / 7, 1 / 7, 0.0), rel=1e-15)
    assert deep_supervision_weights("nnunet", 2) == pytest.approx((1.0, 0.0))
    assert deep_supervision_weights("nnunet", 1) == (1.0,)


def test_nnunet_preset_with_ddp_zero_weight() -> None:
    expected = (1 / (1.5 + 1e-6), 0.5 / (1.5 + 1e-6), 1e-6 / (1.5 + 1e-6))
    assert deep_supervision_weights("nnunet", 3, zero_weight=1e-6) == pytest.approx(expected, rel=1e-15)


def test_explicit_weights_are_padded_with_zeros_and_not_renormalised() -> None:
    assert deep_supervision_weights((1, 0.1, 0.01), 5) == (1.0, 0.1, 0.01, 0.0, 0.0)
    assert deep_supervision_weights((1, 1, 1), 3) == (1.0, 1.0, 1.0)
    with pytest.raises(ValueError, match=r"3 weights .* 2 outputs"):
        deep_supervision_weights((1, 0.1, 0.01), 2)
    with pytest.raises(ValueError, match="not all 0"):
        deep_supervision_weights((0, 0), 2)
    with pytest.raises(ValueError, match=">= 0"):
        deep_supervision_weights((1, -0.1), 2)
    with pytest.raises(ValueError, match="preset"):
        deep_supervision_weights("uniform", 2)  # type: ignore[arg-type]


# ---- DeepSupervisionLoss, fixed weights ----

def test_fixed_weights_sum_and_zero_levels_are_not_computed() -> None:
    inner = SquaredMeanLoss()
    loss = DeepSupervisionLoss(inner, (1, 0.1, 0.01), num_outputs=4)
    value = loss(_levels([1.0, 2.0, 3.0, 5.0]), _targets(4))
    assert value.item() == pytest.approx(1.0 + 0.1 * 4.0 + 0.01 * 9.0, rel=1e-14)
    assert inner.calls == [(1, 2, 8, 8), (1, 2, 4, 4), (1, 2, 2, 2)]  # the 1x1 level was skipped
    assert loss.current_weights() == (1.0, 0.1, 0.01, 0.0)


def test_nnunet_weights_in_the_wrapper() -> None:
    loss = DeepSupervisionLoss(SquaredMeanLoss(), "nnunet", num_outputs=3)
    value = loss(_levels([1.0, 2.0, 3.0]), _targets(3))
    assert value.item() == pytest.approx((1.0 * 1.0 + 0.5 * 4.0) / 1.5, rel=1e-14)


def test_set_epoch_reaches_a_gradual_mixture_inside_deep_supervision() -> None:
    mixture = LossMixture(SquaredMeanLoss(), SquaredMeanLoss(), schedule="gradual")
    loss = DeepSupervisionLoss(mixture, (1.0, 0.5), num_outputs=2)
    loss.set_epoch(60)
    assert mixture.alpha == pytest.approx(0.4)
    DeepSupervisionLoss(SquaredMeanLoss(), (1.0,), num_outputs=1).set_epoch(3)  # no schedule: no-op


def test_levels_are_checked_against_num_outputs() -> None:
    loss = DeepSupervisionLoss(SquaredMeanLoss(), "nnunet", num_outputs=3)
    with pytest.raises(ValueError, match="outputs has 2 levels, expected num_outputs=3"):
        loss(_levels([1.0, 2.0]), _targets(2))
    with pytest.raises(TypeError, match="list or tuple"):
        loss(_levels([1.0])[0], _targets(1))
    with pytest.raises(ValueError, match="targets is required"):
        loss(_levels([1.0, 2.0, 3.0]))
    rw_loss = DeepSupervisionLoss(RegionWiseLoss(), (1, 1), num_outputs=2)
    with pytest.raises(ValueError, match="rw_maps is required"):
        rw_loss(_levels([1.0, 2.0]), _targets(2))


def test_deep_supervision_passes_maps_per_level_and_is_differentiable() -> None:
    torch.manual_seed(2)
    outputs = [torch.randn(2, 3, 4 >> k, 4 >> k, dtype=torch.float64, requires_grad=True) for k in range(2)]
    targets = [torch.randint(0, 3, (2, 1, 4 >> k, 4 >> k)) for k in range(2)]
    maps = [torch.rand(2, 3, 4 >> k, 4 >> k, dtype=torch.float64) for k in range(2)]
    loss = DeepSupervisionLoss(OneSidedHausdorffLoss(), (1.0, 0.3), num_outputs=2)
    assert loss.inputs == ("target", "rw_map")
    assert torch.autograd.gradcheck(lambda a, b: loss([a, b], targets, maps), tuple(outputs))


# ---- DeepSupervisionLoss, trainable (homoscedastic uncertainty) ----

def test_trainable_weights_formula_with_the_smooth_clamp() -> None:
    loss = DeepSupervisionLoss(SquaredMeanLoss(), "trainable", num_outputs=3).double()
    with torch.no_grad():
        loss.sigma.copy_(torch.tensor([0.5, -4.0]))
    clamped = [3 * math.tanh(0.5 / 3), 3 * math.tanh(-4.0 / 3)]
    level_losses = [1.0, 4.0, 9.0]
    expected = level_losses[0] + sum(math.exp(-c) * v + c for c, v in zip(clamped, level_losses[1:], strict=True))
    value = loss(_levels([1.0, 2.0, 3.0]), _targets(3))
    assert value.item() == pytest.approx(expected, rel=1e-13)
    assert loss.current_weights() == pytest.approx((1.0, math.exp(-clamped[0]), math.exp(-clamped[1])))
    assert max(loss.current_weights()) < math.exp(3)


def test_trainable_weights_start_at_one_and_are_in_the_state_dict() -> None:
    loss = DeepSupervisionLoss(DiceLoss(), "trainable", num_outputs=4)
    assert loss.current_weights() == (1.0, 1.0, 1.0, 1.0)
    assert [name for name, _ in loss.named_parameters()] == ["sigma"]
    with torch.no_grad():
        loss.sigma.copy_(torch.tensor([0.1, -0.2, 0.3]))
    state = loss.state_dict()
    assert set(state) == {"sigma"}
    restored = DeepSupervisionLoss(DiceLoss(), "trainable", num_outputs=4)
    restored.load_state_dict(state)
    torch.testing.assert_close(restored.sigma, torch.tensor([0.1, -0.2, 0.3]))
    assert restored.current_weights() == loss.current_weights()


def test_trainable_weights_converge_to_inverse_level_losses_without_collapse() -> None:
    """min over σ of exp(-σ) L + σ is at σ = log L: α = 1/L, neither 0 nor unbounded."""
    loss = DeepSupervisionLoss(SquaredMeanLoss(), "trainable", num_outputs=3).double()
    outputs, targets = _levels([1.0, 0.5**0.5, 2.0**0.5]), _targets(3)  # level losses 1, 0.5, 2
    optimizer = torch.optim.Adam(loss.parameters(), lr=0.1)
    for _ in range(200):
        optimizer.zero_grad()
        loss(outputs, targets).backward()
        optimizer.step()
    assert loss.current_weights() == pytest.approx((1.0, 2.0, 0.5), rel=1e-3)


def test_trainable_gradcheck_over_logits_and_sigma() -> None:
    torch.manual_seed(3)
    outputs = [torch.randn(2, 3, 4 >> k, 4 >> k, dtype=torch.float64, requires_grad=True) for k in range(2)]
    targets = [torch.randint(0, 3, (2, 1, 4 >> k, 4 >> k)) for k in range(2)]
    loss = DeepSupervisionLoss(DiceLoss(batch_dice=True), "trainable", num_outputs=2).double()
    sigma = torch.tensor([0.7], dtype=torch.float64, requires_grad=True)

    def functional(a: torch.Tensor, b: torch.Tensor, s: torch.Tensor) -> torch.Tensor:
        return torch.func.functional_call(loss, {"sigma": s}, ([a, b], targets))

    assert torch.autograd.gradcheck(functional, (*outputs, sigma))


def test_trainable_weights_refuse_losses_that_can_be_negative() -> None:
    with pytest.raises(ValueError, match="shift_to_nonnegative=True"):
        DeepSupervisionLoss(RegionWiseLoss(), "trainable", num_outputs=3)
    with pytest.raises(ValueError, match="non-negative"):
        DeepSupervisionLoss(LossMixture(DiceLoss(), RegionWiseLoss()), "trainable", num_outputs=3)
    DeepSupervisionLoss(RegionWiseLoss(shift_to_nonnegative=True), "trainable", num_outputs=3)
    # an undeclared loss is checked at run time
    loss = DeepSupervisionLoss(ConstantTimesRWMap(), "trainable", num_outputs=2)
    maps = [torch.full((1, 2, 8 >> k, 8 >> k), -1.0) for k in range(2)]
    with pytest.raises(ValueError, match=r"returned -1 at level 0"):
        loss(_levels([0.0, 0.0]), None, maps)
