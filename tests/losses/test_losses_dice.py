"""DiceLoss (per-image, SA, squared, class-weighted) and dice_class_weights: hand values and gradients."""

from __future__ import annotations

import math

import pytest
import torch

from nnunet_lossplug.losses import DiceLoss, dice_class_weights

torch.set_num_threads(1)

# Two images, two classes, three voxels (2D: H=1, W=3). Foreground probabilities are chosen; background is
# their complement. Image 1 has no foreground at all (the "no-target" image of Nguyen et al. 2019 Sec. III-B).
FG_PROBS = [[0.8, 0.4, 0.1], [0.3, 0.2, 0.6]]
LABELS = [[1, 1, 0], [0, 0, 0]]


def _logits_from_probs(fg_probs: list[list[float]]) -> torch.Tensor:
    """Logits (B, 2, 1, W) whose softmax is exactly (1 - p, p): log-probabilities are valid logits."""
    p = torch.tensor(fg_probs, dtype=torch.float64)
    return torch.stack((torch.log1p(-p), torch.log(p)), dim=1).unsqueeze(2)


def _label_map(labels: list[list[int]]) -> torch.Tensor:
    return torch.tensor(labels).unsqueeze(1).unsqueeze(2)  # (B, 1, 1, W)


def test_per_image_dice_matches_hand_computation_without_background() -> None:
    # image 0: I = .8+.4, sum s = .8+.4+.1, sum y = 2;  image 1: I = 0 -> D = 0
    d0 = 2 * 1.2 / (1.3 + 2.0)
    d1 = 0.0
    expected = 1 - (d0 + d1) / 2
    loss_fn = DiceLoss(batch_dice=False, do_bg=False, smooth=0.0)
    loss = loss_fn(_logits_from_probs(FG_PROBS), _label_map(LABELS))
    assert loss.item() == pytest.approx(expected, rel=1e-12)


def test_per_image_dice_with_background_averages_over_images_and_classes() -> None:
    d0_fg = 2 * 1.2 / (1.3 + 2.0)
    d0_bg = 2 * 0.9 / ((0.2 + 0.6 + 0.9) + 1.0)  # bg probs .2 .6 .9, bg label only at voxel 3
    d1_fg = 0.0
    d1_bg = 2 * (0.7 + 0.8 + 0.4) / ((0.7 + 0.8 + 0.4) + 3.0)
    expected = 1 - (d0_fg + d0_bg + d1_fg + d1_bg) / 4
    loss = DiceLoss(do_bg=True)(_logits_from_probs(FG_PROBS), _label_map(LABELS))
    assert loss.item() == pytest.approx(expected, rel=1e-12)


def test_sa_dice_sums_over_batch_before_the_ratio() -> None:
    # eq. (4): I = 1.2 + 0, sum s = 1.3 + 1.1, sum y = 2 + 0
    expected = 1 - 2 * 1.2 / (2.4 + 2.0)
    loss = DiceLoss(batch_dice=True, do_bg=False)(_logits_from_probs(FG_PROBS), _label_map(LABELS))
    assert loss.item() == pytest.approx(expected, rel=1e-12)


def test_smoothing_enters_numerator_and_denominator() -> None:
    smooth = 0.5
    d0 = (2 * 1.2 + smooth) / (3.3 + smooth)
    d1 = (0 + smooth) / (1.1 + smooth)
    expected = 1 - (d0 + d1) / 2
    loss = DiceLoss(do_bg=False, smooth=smooth)(_logits_from_probs(FG_PROBS), _label_map(LABELS))
    assert loss.item() == pytest.approx(expected, rel=1e-12)


def test_squared_dice_uses_sum_of_squares_in_the_denominator() -> None:
    # Liu & Fu 2018: 1 - 2 s.y / (|s|^2 + |y|^2); image 0 only
    s = [0.8, 0.4, 0.1]
    expected = 1 - 2 * (0.8 + 0.4) / (sum(v * v for v in s) + 2.0)
    loss = DiceLoss(do_bg=False, squared=True)(_logits_from_probs([s]), _label_map([[1, 1, 0]]))
    assert loss.item() == pytest.approx(expected, rel=1e-12)


def test_class_weighted_dice_is_the_weighted_class_average_of_eq6() -> None:
    weights = [0.25, 3.0]
    d0_fg = 2 * 1.2 / 3.3
    d0_bg = 2 * 0.9 / 2.7
    d1_fg = 0.0
    d1_bg = 2 * 1.9 / 4.9
    per_image = [
        (weights[0] * (1 - d0_bg) + weights[1] * (1 - d0_fg)) / 2,
        (weights[0] * (1 - d1_bg) + weights[1] * (1 - d1_fg)) / 2,
    ]
    loss = DiceLoss(class_weights=torch.tensor(weights))(_logits_from_probs(FG_PROBS), _label_map(LABELS))
    assert loss.item() == pytest.approx(sum(per_image) / 2, rel=1e-12)


def test_label_map_and_one_hot_targets_give_the_same_loss() -> None:
    torch.manual_seed(0)
    logits = torch.randn(2, 3, 4, 5, dtype=torch.float64)
    labels = torch.randint(0, 3, (2, 1, 4, 5))
    one_hot = torch.nn.functional.one_hot(labels[:, 0], 3).permute(0, 3, 1, 2)
    for batch_dice in (False, True):
        loss = DiceLoss(batch_dice=batch_dice)
        assert loss(logits, labels).item() == pytest.approx(loss(logits, one_hot).item(), rel=1e-14)


@pytest.mark.parametrize(
    "kwargs",
    [
        {"batch_dice": False},
        {"batch_dice": True, "do_bg": False},
        {"batch_dice": True, "smooth": 1e-5},
        {"squared": True, "smooth": 1.0},
        {"class_weights": [0.5, 2.0, 1.5]},
    ],
)
def test_dice_gradcheck_float64(kwargs: dict) -> None:
    torch.manual_seed(1)
    logits = torch.randn(2, 3, 3, 2, dtype=torch.float64, requires_grad=True)
    labels = torch.randint(0, 3, (2, 1, 3, 2))
    loss = DiceLoss(**kwargs)
    assert torch.autograd.gradcheck(lambda x: loss(x, labels), (logits,))


def test_dice_gradcheck_3d() -> None:
    torch.manual_seed(2)
    logits = torch.randn(2, 2, 2, 2, 3, dtype=torch.float64, requires_grad=True)
    labels = torch.randint(0, 2, (2, 1, 2, 2, 3))
    loss = DiceLoss(batch_dice=True)
    assert torch.autograd.gradcheck(lambda x: loss(x, labels), (logits,))


def test_sa_dice_gives_no_target_image_a_gradient_per_image_dice_does_not() -> None:
    """Nguyen et al. 2019 Sec. III-B/C: per-image Dice is flat for an image without target, SA Dice is not."""
    labels = _label_map(LABELS)  # image 1 has no foreground
    for batch_dice, expect_gradient in ((False, False), (True, True)):
        logits = _logits_from_probs(FG_PROBS).requires_grad_(True)
        DiceLoss(batch_dice=batch_dice, do_bg=False, smooth=0.0)(logits, labels).backward()
        empty_image_gradient = logits.grad[1]
        assert bool(torch.any(empty_image_gradient != 0)) is expect_gradient
        assert bool(torch.any(logits.grad[0] != 0))
    # SA Dice pushes the empty image's foreground logits down (gradient > 0 means "decrease")
    logits = _logits_from_probs(FG_PROBS).requires_grad_(True)
    DiceLoss(batch_dice=True, do_bg=False)(logits, labels).backward()
    assert bool(torch.all(logits.grad[1, 1] > 0))


def test_empty_denominator_is_defined_as_perfect_agreement_without_nan() -> None:
    # class 2 is absent and its softmax underflows to exactly 0: 0/0 would be NaN; the loss defines D = 1
    logits = torch.tensor(
        [[1e4, -1e4], [-1e4, 1e4], [-1e4, -1e4]], dtype=torch.float64
    ).reshape(1, 3, 1, 2)
    logits.requires_grad_(True)
    labels = torch.zeros(1, 1, 1, 2, dtype=torch.long)  # both voxels background
    loss = DiceLoss(do_bg=True, smooth=0.0)(logits, labels)
    loss.backward()
    # s_bg = (1, 0): D_bg = 2/(1 + 2);  s_1 = (0, 1), y_1 = 0: D_1 = 0;  s_2 = y_2 = 0: D_2 = 1
    assert loss.item() == pytest.approx(1 - (2 / 3 + 0.0 + 1.0) / 3, rel=1e-12)
    assert bool(torch.all(torch.isfinite(logits.grad)))


def test_class_weights_must_match_the_number_of_classes() -> None:
    loss = DiceLoss(class_weights=[1.0, 2.0])
    with pytest.raises(ValueError, match=r"2 entries but the logits have K=3"):
        loss(torch.randn(1, 3, 2, 2), torch.zeros(1, 1, 2, 2))
    with pytest.raises(ValueError, match="non-negative"):
        DiceLoss(class_weights=[1.0, -2.0])
    with pytest.raises(ValueError, match="smooth"):
        DiceLoss(smooth=-1.0)


def test_dice_loss_is_non_negative_and_at_most_the_weight_mean() -> None:
    torch.manual_seed(6)
    for _ in range(5):
        logits = torch.randn(3, 4, 5, 5) * 5
        labels = torch.randint(0, 4, (3, 1, 5, 5))
        for loss in (DiceLoss(), DiceLoss(batch_dice=True, squared=True)):
            value = loss(logits, labels).item()
            assert 0.0 <= value <= 1.0


# ---- class weights of Shen et al. 2018, eq. (3)-(5) ----

COUNTS = [90, 9, 1, 0]  # N = 100 voxels, L = 4 labels, the last class is empty


def test_uniform_weights_are_one() -> None:
    assert dice_class_weights(COUNTS, "uniform").tolist() == [1.0, 1.0, 1.0, 1.0]


def test_simple_weights_follow_eq4() -> None:
    # W_s = N / (L |R_l| + 1)
    expected = [100 / 361, 100 / 37, 100 / 5, 100 / 1]
    assert dice_class_weights(COUNTS, "simple").tolist() == pytest.approx(expected, rel=1e-15)


def test_square_weights_follow_eq5() -> None:
    # W_q = N / (L |R_l|^2 + 1)
    expected = [100 / 32401, 100 / 325, 100 / 5, 100 / 1]
    assert dice_class_weights(COUNTS, "square").tolist() == pytest.approx(expected, rel=1e-15)


def test_empty_class_gets_the_finite_weight_n_over_epsilon() -> None:
    for scheme in ("simple", "square"):
        weights = dice_class_weights(COUNTS, scheme)
        assert math.isfinite(weights[-1].item()) and weights[-1].item() == 100.0
        assert weights[-1].item() == weights.max().item()
    assert dice_class_weights(COUNTS, "simple", epsilon=4.0)[-1].item() == 25.0


def test_normalized_weights_have_mean_one_and_the_same_ratios() -> None:
    raw = dice_class_weights(COUNTS, "square")
    normalized = dice_class_weights(COUNTS, "square", normalize=True)
    assert normalized.mean().item() == pytest.approx(1.0, rel=1e-14)
    torch.testing.assert_close(normalized / normalized[0], raw / raw[0], rtol=1e-12, atol=0)


def test_class_weight_inputs_are_validated() -> None:
    with pytest.raises(ValueError, match="scheme"):
        dice_class_weights(COUNTS, "inverse")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="non-negative"):
        dice_class_weights([10, -1], "simple")
    with pytest.raises(ValueError, match="at least\n?.*2"):
        dice_class_weights([10], "simple")
    with pytest.raises(ValueError, match="all zero"):
        dice_class_weights([0, 0], "simple")
