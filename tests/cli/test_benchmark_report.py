"""The benchmark's plan and report: runs in order, budgets, raw and post-processed rows, "—" for one run, and the
paired test with pairs = seeds × cases (hand-made runs; no training)."""

from __future__ import annotations

import argparse
import math

import numpy as np
import pytest

from nnunet_lossplug.benchmark.plan import BUDGETS, BenchmarkPlan, parse_trainer_items, variant_name
from nnunet_lossplug.benchmark.report import markdown_report, paired_comparisons, quality_rows
from nnunet_lossplug.benchmark.short_trainers import ShortSchedule
from nnunet_lossplug.cli.benchmark import plan_from_args
from nnunet_lossplug.evaluation.permutation_test import smallest_p_value


def _cases(organ: list[float], lesion: list[float], hd95: float = 3.0) -> dict:
    return {f"case_{i}": {"1": {"dice": o, "hd": 9.0, "hd95": hd95}, "2": {"dice": le, "hd": 9.0, "hd95": None}}
            for i, (o, le) in enumerate(zip(organ, lesion, strict=True))}


def _run(trainer: str, seed: int, organ: list[float], lesion: list[float], lesion_pp: list[float] | None = None):
    return {"trainer": trainer, "variant": trainer + "_q", "seed": seed, "seconds": {"train": 60.0, "predict": 6.0},
            "raw": _cases(organ, lesion), "postprocessed": _cases(organ, lesion_pp or lesion, hd95=2.0),
            "postprocessing": [], "postprocessing_text": "nothing", "commands": []}


def _document(runs: list[dict], trainers=("RRW", "nnUNetTrainer")) -> dict:
    return {"written_by": "a test", "dataset": "Dataset501_Organ", "configuration": "2d", "fold": 0, "device": "cpu",
            "trainers": list(trainers), "reference": "nnUNetTrainer",
            "schedule": {"epochs": 12, "iterations_per_epoch": 40, "val_iterations_per_epoch": 4, "adam_lr": 1e-3},
            "held_out": "the 3 held-out test cases", "held_out_kind": "test", "postprocessing_step": "nnU-Net's",
            "label_names": {"1": "organ", "2": "lesion"}, "ext_trainer_line": "export nnUNet_extTrainer=x",
            "runs": runs}


def test_one_run_per_trainer_prints_a_dash_not_nan_and_both_rows():
    text = markdown_report(_document([_run("RRW", 3, [0.9, 0.8, 0.7], [0.1, 0.2, 0.3], [0.4, 0.5, 0.6]),
                                      _run("nnUNetTrainer", 3, [0.9, 0.9, 0.9], [0.8, 0.8, 0.8])]))
    assert "nan" not in text.lower()
    assert "as HD95, the image's diagonal" in text  # the penalty behind a large mean HD95 is named
    rows = [line for line in text.splitlines() if line.startswith("| RRW |")][:2]  # the quality table first
    assert [row.split(" | ")[1] for row in rows] == ["raw", "nnU-Net post-processing"]
    assert "| 0.800 ± — (0.800) | 0.200 ± — (0.200) |" in rows[0]  # a run's Dice: its mean over the cases
    assert "| 0.500 ± — (0.500) |" in rows[1]  # the post-processed lesion
    assert "lesion: 1" in rows[0] and "lesion: 1" not in rows[1]  # raw lost the lesion (0.2 < 0.5), pp did not
    assert "| 3.0 ± — | — |" in rows[0]  # HD95 of the lesion undefined in every case: a dash
    assert "1 seed × 3 cases = 3 pairs" in text and "2/2^3 = 0.25, not below 0.05" in text
    assert "No test can be significant with 3 pairs" in text and "cannot be told apart" not in text


def test_several_seeds_give_mean_sd_and_pairs_are_seeds_times_cases():
    runs = [_run("RRW", seed, [0.9 - 0.1 * k, 0.8, 0.7], [0.1, 0.2, 0.3]) for k, seed in enumerate((3, 4, 5))]
    runs += [_run("nnUNetTrainer", seed, [0.95, 0.9, 0.9], [0.8, 0.8, 0.85]) for seed in (3, 4, 5)]
    document = _document(runs)
    (rrw_raw, _, default_raw, _) = quality_rows(document)
    organ = np.array([0.8, 0.8 - 0.1 / 3, 0.8 - 0.2 / 3])
    assert np.allclose(rrw_raw.dice[:, 0], organ) and rrw_raw.seeds == [3, 4, 5]
    text = markdown_report(document, target=0.85)
    assert f"{organ.mean():.3f} ± {organ.std(ddof=1):.3f} ({organ.min():.3f})" in text
    ((trainer, kind, report, seeds), _) = paired_comparisons(document)
    assert (trainer, kind, seeds, report.n_paired_cases) == ("RRW", "raw", [3, 4, 5], 9)
    lesion = next(row for row in report.rows if row.label == "2" and row.metric == "dice")
    assert lesion.p_value == pytest.approx(smallest_p_value(9)) and lesion.significant  # every pair favours A
    assert "3 seeds × 3 cases = 9 pairs" in text and "RRW (raw) worse than nnUNetTrainer on lesion Dice" in text
    assert "| 0 / 3 |" in text and "| 3 / 3 |" not in text  # no run has every class >= 0.85 (the lesion)
    assert math.isclose(smallest_p_value(6), 2 / 64)


def test_fifteen_pairs_name_the_random_sign_flips_floor_not_the_exact_one():
    # 5 seeds x 3 cases: 2^15 sign vectors exceed the 10 000 random flips, so the floor is 1 / 10 001, not 2 / 2^15
    runs = [_run("RRW", seed, [0.7, 0.7, 0.7], [0.2, 0.2, 0.2]) for seed in range(3, 8)]
    runs += [_run("nnUNetTrainer", seed, [0.9, 0.9, 0.9], [0.8, 0.8, 0.8]) for seed in range(3, 8)]
    text = markdown_report(_document(runs))
    assert "5 seeds × 3 cases = 15 pairs" in text
    assert "flips signs 10000 times at random, so its smallest p is 1/10001 = 0.0001" in text
    assert "2/2^15" not in text


def test_runs_go_seed_by_seed_and_the_reference_is_nnunets_trainer_when_named():
    plan = BenchmarkPlan("501", "2d", (("RRW", 2), ("nnUNetTrainer", 1)), ShortSchedule(2, 3))
    assert [(r.trainer, r.seed) for r in plan.runs()] == [("RRW", 3), ("nnUNetTrainer", 3), ("RRW", 4)]
    assert plan.reference() == "nnUNetTrainer" and plan.reference("RRW") == "RRW"
    with pytest.raises(ValueError, match="--reference Other is not among"):
        plan.reference("Other")
    assert BenchmarkPlan("501", "2d", (("A", 1), ("B", 1)), ShortSchedule(2, 3)).reference() == "A"


def test_trainer_items_and_variant_names():
    assert parse_trainer_items(["nnUNetTrainerRRW:10", "nnUNetTrainer"], 3) == [("nnUNetTrainerRRW", 10),
                                                                              ("nnUNetTrainer", 3)]
    for wrong in (["nnUNetTrainerRRW:0"], ["nnUNetTrainerRRW:x"], ["no-name:2"], ["A", "A:2"]):
        with pytest.raises(ValueError):
            parse_trainer_items(wrong, 3)
    names = {variant_name("nnUNetTrainerRRW", ShortSchedule(e, i, lr))
             for e, i, lr in ((6, 20, 1e-3), (6, 20, 3e-3), (12, 20, 1e-3), (6, 40, None))}
    names.add(variant_name("nnUNetTrainerRRW", BUDGETS["gpu"].schedule))
    assert len(names) == 5 and all(name.isidentifier() for name in names)


def _args(**given) -> argparse.Namespace:
    values = dict(dataset="501", configuration="2d", trainers=["nnUNetTrainerRRW", "nnUNetTrainer"], seeds=3,
                  first_seed=None, budget="cpu", epochs=None, iterations=None, adam_lr=None, device=None)
    return argparse.Namespace(**{**values, **given})


def test_budgets_set_schedule_and_device_and_options_override_them():
    cpu = plan_from_args(_args())
    assert (cpu.schedule.epochs, cpu.schedule.iterations_per_epoch, cpu.device, cpu.first_seed) == (12, 40, "cpu", 3)
    gpu = plan_from_args(_args(budget="gpu-short", epochs=20))
    assert (gpu.schedule.epochs, gpu.schedule.iterations_per_epoch, gpu.device) == (20, 250, "cuda")
    assert plan_from_args(_args(budget="gpu", device="cpu")).device == "cpu"
    with pytest.raises(ValueError, match="--seeds 0"):
        plan_from_args(_args(seeds=0))
