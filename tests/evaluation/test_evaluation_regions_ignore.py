"""Evaluation per region and without ignored voxels (docs/conventions.md#regions) against nnU-Net's own evaluation
functions."""

from __future__ import annotations

import json

import numpy as np
import pytest

from nnunet_lossplug.evaluation.case_metrics import case_metrics
from nnunet_lossplug.evaluation.label_setup import evaluation_labels

nnunet_eval = pytest.importorskip("nnunetv2.evaluation.evaluate_predictions")

REGIONS = {1: (1, 2, 3), 2: (2, 3), 3: (3,)}
IGNORE = 4


def _pair(seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    gt = np.zeros((4, 20, 20), dtype=np.int16)
    gt[:, 3:17, 3:17] = 1
    gt[:, 6:14, 6:14] = 2
    gt[:, 8:12, 8:12] = 3
    pred = gt.copy()
    flip = rng.random(gt.shape) < 0.15
    pred[flip] = rng.integers(0, 4, size=int(flip.sum()))
    gt_ignore = gt.copy()
    gt_ignore[:, :, 15:] = IGNORE
    return pred, gt_ignore


def _nnunet_dice(pred: np.ndarray, gt: np.ndarray, region, ignore: int | None) -> float:
    mask_ref = nnunet_eval.region_or_label_to_mask(gt, region)
    mask_pred = nnunet_eval.region_or_label_to_mask(pred, region)
    tp, fp, fn, _ = nnunet_eval.compute_tp_fp_fn_tn(mask_ref, mask_pred, gt == ignore if ignore is not None else None)
    return 2 * tp / (2 * tp + fp + fn)


@pytest.mark.parametrize("ignore", [None, IGNORE])
def test_region_dice_equals_nnunets_region_evaluation(ignore) -> None:
    pred, gt = _pair()
    if ignore is None:
        gt = np.where(gt == IGNORE, 0, gt)
    metrics = case_metrics(pred, gt, (3.0, 1.0, 1.0), regions=REGIONS, ignore_label=ignore)
    assert list(metrics) == ["1", "2", "3"]
    for number, region in REGIONS.items():
        expected = _nnunet_dice(pred, gt, region, ignore)
        assert metrics[str(number)]["dice"] == pytest.approx(expected, rel=1e-12)


def test_ignored_voxels_do_not_count_for_classes() -> None:
    pred, gt = _pair(1)
    metrics = case_metrics(pred, gt, (3.0, 1.0, 1.0), labels=[1, 2, 3], ignore_label=IGNORE)
    for label in (1, 2, 3):
        assert metrics[str(label)]["dice"] == pytest.approx(_nnunet_dice(pred, gt, label, IGNORE), rel=1e-12)
    # a prediction that differs only on ignored voxels scores perfectly
    perfect = np.where(gt == IGNORE, 3, gt)
    assert all(m["dice"] == 1.0 for m in case_metrics(perfect, gt, (3.0, 1.0, 1.0), ignore_label=IGNORE).values())
    assert "4" not in case_metrics(perfect, gt, (3.0, 1.0, 1.0), ignore_label=IGNORE)


def test_dataset_json_gives_regions_in_nnunet_order_and_the_ignore_label(tmp_path) -> None:
    path = tmp_path / "dataset.json"
    path.write_text(json.dumps({"labels": {"background": 0, "whole": [1, 2, 3], "core": [2, 3], "enhancing": 3,
                                           "ignore": 4}, "regions_class_order": [1, 2, 3]}))
    setup = evaluation_labels(path)
    assert setup.regions == REGIONS and setup.ignore_label == IGNORE
    assert setup.names["2"] == "core [2, 3]"
    path.write_text(json.dumps({"labels": {"background": 0, "RV": 1, "ignore": 2}}))
    assert evaluation_labels(path).regions is None and evaluation_labels(path).ignore_label == 2
