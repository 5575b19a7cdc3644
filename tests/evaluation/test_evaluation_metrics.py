"""Dice, per-class metrics with the empty-structure convention, summaries and the paper-style table."""

from __future__ import annotations

import math

import numpy as np
import pytest

from nnunet_lossplug.evaluation.case_metrics import case_metrics, class_metrics
from nnunet_lossplug.evaluation.overlap import dice_coefficient
from nnunet_lossplug.evaluation.summary import describe, parse_metrics, summarize_cases
from nnunet_lossplug.evaluation.tables import format_class_table, mean_std_text


def test_dice_hand_computed() -> None:
    a = np.zeros((3, 4), bool)
    b = np.zeros((3, 4), bool)
    a[0, :4] = True  # 4 voxels
    b[0, 1:4] = True  # 3 of them overlap ...
    b[1, 0:3] = True  # ... plus 3 more: |B| = 6
    assert dice_coefficient(a, b) == pytest.approx(2 * 3 / (4 + 6))


def test_dice_of_empty_masks_and_shape_error() -> None:
    empty = np.zeros((2, 2), bool)
    assert dice_coefficient(empty, empty) == 1.0
    assert dice_coefficient(empty, ~empty) == 0.0
    with pytest.raises(ValueError, match="one shape"):
        dice_coefficient(empty, np.zeros((2, 3), bool))


def test_class_metrics_both_present_reports_counts_and_distances() -> None:
    gt = np.zeros((1, 6, 8), bool)
    gt[0, 1:4, 1:4] = True
    pred = np.roll(gt, 2, axis=2)
    out = class_metrics(pred, gt, (5.0, 1.5, 0.5))
    assert out["status"] == "both_present"
    assert out["dice"] == pytest.approx(2 * 3 / 18)  # one shared column of 3 voxels
    assert out["hd"] == pytest.approx(2 * 0.5)
    assert (out["gt_voxels"], out["pred_voxels"]) == (9, 9)


def test_empty_structure_convention() -> None:
    shape, spacing = (3, 5, 7), (4.0, 1.5, 0.5)
    diagonal = math.sqrt((2 * 4.0) ** 2 + (4 * 1.5) ** 2 + (6 * 0.5) ** 2)
    empty = np.zeros(shape, bool)
    present = np.zeros(shape, bool)
    present[1, 2, 3] = True

    both = class_metrics(empty, empty, spacing)
    assert (both["dice"], both["hd"], both["hd95"], both["status"]) == (1.0, 0.0, 0.0, "both_empty")

    missed = class_metrics(empty, present, spacing)
    assert missed["status"] == "missed" and missed["dice"] == 0.0
    assert missed["hd"] == pytest.approx(diagonal) and missed["hd95"] == pytest.approx(diagonal)

    spurious = class_metrics(present, empty, spacing)
    assert spurious["status"] == "spurious" and spurious["hd"] == pytest.approx(diagonal)

    undefined = class_metrics(empty, present, spacing, empty_hd="nan")
    assert math.isnan(undefined["hd"]) and math.isnan(undefined["hd95"]) and undefined["dice"] == 0.0

    with pytest.raises(ValueError, match="empty_hd"):
        class_metrics(empty, present, spacing, empty_hd="zero")


def test_case_metrics_finds_labels_in_either_map_and_honours_given_labels() -> None:
    gt = np.zeros((4, 4), np.int16)
    pred = np.zeros((4, 4), np.int16)
    gt[0, 0] = 1
    pred[3, 3] = 2
    found = case_metrics(pred, gt, (1.0, 1.0))
    assert list(found) == ["1", "2"]
    assert found["1"]["status"] == "missed" and found["2"]["status"] == "spurious"
    given = case_metrics(pred, gt, (1.0, 1.0), labels=[3, 1])
    assert list(given) == ["1", "3"] and given["3"]["status"] == "both_empty"


def test_describe_hand_values_and_undefined_counting() -> None:
    stats = describe([1.0, 2.0, 4.0, math.nan])
    mean = 7 / 3
    std = math.sqrt(((1 - mean) ** 2 + (2 - mean) ** 2 + (4 - mean) ** 2) / 2)
    assert stats["mean"] == pytest.approx(mean) and stats["std"] == pytest.approx(std)
    assert stats["median"] == 2.0 and stats["n"] == 3 and stats["n_undefined"] == 1
    single = describe([5.0])
    assert single["mean"] == 5.0 and math.isnan(single["std"])


def _entry(dice, hd, status="both_present", gt_voxels=10):
    return {"dice": dice, "hd": hd, "hd95": hd, "status": status, "gt_voxels": gt_voxels, "pred_voxels": 10}


def test_summarize_counts_statuses_and_voxel_share() -> None:
    cases = {
        "a": {"1": _entry(0.8, 2.0), "2": _entry(1.0, 0.0, "both_empty", 0)},
        "b": {"1": _entry(0.6, 4.0, gt_voxels=30), "2": _entry(0.0, 50.0, "missed", 5)},
    }
    info = {"a": {"shape": [10, 10]}, "b": {"shape": [10, 10]}}
    summary = summarize_cases(cases, [1, 2], info)
    one, two = summary["classes"]["1"], summary["classes"]["2"]
    assert summary["n_cases"] == 2
    assert one["dice"]["mean"] == pytest.approx(0.7) and one["hd"]["mean"] == pytest.approx(3.0)
    assert one["gt_voxel_percent"] == pytest.approx(100 * 40 / 200)
    assert two["status_counts"] == {"both_present": 0, "both_empty": 1, "missed": 1, "spurious": 0}
    assert summary["mean_over_classes"]["dice"] == pytest.approx((0.7 + 0.5) / 2)


def test_parse_metrics() -> None:
    assert parse_metrics("Dice, hd95") == ["dice", "hd95"]
    with pytest.raises(ValueError, match="comma-separated"):
        parse_metrics("dice,jaccard")


def test_class_table_layout_like_paper_table_2() -> None:
    classes = {"1": {"dice": {"mean": 0.9, "std": 0.09}, "hd": {"mean": 14.58, "std": 11.03}}}
    other = {"1": {"dice": {"mean": 0.87, "std": 0.09}, "hd": {"mean": 16.23, "std": 10.44}}}
    text = format_class_table(
        [("RRW", classes), ("Dice", other)], ["1"], {"1": "RV"}, marks={("Dice", "1", "dice"): "*"},
        voxel_percent={"1": 1.21},
    )
    lines = text.splitlines()
    assert lines[0].strip() == "RV: 1.21 %"
    assert lines[1].split() == ["Method", "Dice", "HD", "(mm)"]
    assert "0.900 ± 0.090" in lines[3] and "14.58 ± 11.03" in lines[3]
    assert "0.870 ± 0.090*" in lines[4]
    assert mean_std_text(math.nan, math.nan, 2) == "– ± –"
