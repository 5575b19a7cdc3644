"""``benchmarks/bench_quality.py``: the report over seeds (hand-made runs) and one real tiny run (integration)."""

from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

SCRIPT = Path(__file__).resolve().parents[2] / "benchmarks" / "bench_quality.py"


def _load_script():
    spec = importlib.util.spec_from_file_location("bench_quality", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _run(trainer: str, seed: int, rv: float, myo: float, lv: float, hd95: float = 4.0) -> dict:
    return {"trainer": trainer, "variant": trainer + "_q", "seed": seed, "seconds": 100.0 + seed,
            "classes": {"1": {"dice": rv, "hd": 9.0, "hd95": hd95}, "2": {"dice": myo, "hd": 9.0, "hd95": hd95},
                        "3": {"dice": lv, "hd": 9.0, "hd95": hd95}}}


DOCUMENT = {
    "dataset": "990", "configuration": "2d", "schedule": {"epochs": 6, "iterations_per_epoch": 20, "adam_lr": 1e-3},
    "label_names": {"1": "RV", "2": "MYO", "3": "LV"},
    "runs": [_run("A", 3, 0.9, 0.86, 0.97), _run("A", 4, 0.8, 0.30, 0.95), _run("A", 5, 0.7, 0.88, 0.93),
             _run("B", 3, 0.95, 0.90, 0.99, hd95=2.0), _run("B", 4, 0.95, 0.90, 0.99, hd95=float("nan"))],
}


def test_report_gives_mean_sd_min_lost_classes_and_runs_at_target():
    bench = _load_script()
    rows = bench.summarise(DOCUMENT, lost_below=0.5, target=0.85)
    text = bench.markdown_report(DOCUMENT, rows, lost_below=0.5, target=0.85)
    line_a = next(line for line in text.splitlines() if line.startswith("| A |"))
    line_b = next(line for line in text.splitlines() if line.startswith("| B |"))
    # RV of A: 0.9, 0.8, 0.7 -> mean 0.8, sample sd 0.1, min 0.7; MYO 0.86, 0.30, 0.88 -> one run lost MYO
    assert "| 3 | 0.800 ± 0.100 (0.700) |" in line_a
    assert "MYO: 1" in line_a and "RV:" not in line_a.split("|")[-4]
    assert "| 1 / 3 |" in line_a  # only seed 3 has every class >= 0.85 (seed 5's RV is 0.7)
    assert "| 2 / 2 |" in line_b and "| none |" in line_b
    assert "2.0 ± nan" in line_b  # one finite HD95 (the other run's is NaN): no sd
    assert "| 104 |" in line_a  # median seconds of 103, 104, 105
    assert "Seeds: A 3, 4, 5; B 3, 4." in text  # the trainers ran different seeds: each its own list

    same_seeds = dict(DOCUMENT, runs=[run for run in DOCUMENT["runs"] if run["seed"] != 5])
    rows = bench.summarise(same_seeds, lost_below=0.5, target=0.85)
    assert "Seeds: 3, 4." in bench.markdown_report(same_seeds, rows, lost_below=0.5, target=0.85)


def test_variant_names_are_python_identifiers_and_differ_by_schedule():
    bench = _load_script()
    from nnunet_lossplug.demo.short_schedule import ShortSchedule

    names = {bench.variant_name("nnUNetTrainerRRW", ShortSchedule(e, i, lr))
             for e, i, lr in ((6, 20, 1e-3), (6, 20, 3e-3), (12, 20, 1e-3), (6, 40, None))}
    assert len(names) == 4 and all(name.isidentifier() for name in names)


def test_each_trainer_can_have_its_own_number_of_seeds():
    bench = _load_script()
    args = bench.parse_args(["--trainers", "nnUNetTrainerRRW:10", "nnUNetTrainer", "--seeds", "3"])
    assert args.trainers == [("nnUNetTrainerRRW", 10), ("nnUNetTrainer", 3)]
    for wrong in ("nnUNetTrainerRRW:0", "nnUNetTrainerRRW:x", "no-name:2"):
        with pytest.raises(SystemExit):
            bench.parse_args(["--trainers", wrong])


def _bench(*args: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "nnUNet_def_n_proc": "2"}
    return subprocess.run([sys.executable, str(SCRIPT), *args], capture_output=True, text=True, timeout=900, env=env)


@pytest.mark.integration
def test_a_tiny_benchmark_runs_nnunet_resumes_and_redraws(tmp_path):
    work, output = tmp_path / "work", tmp_path / "out" / "quality"
    args = ("--workdir", str(work), "-o", str(output), "--trainers", "nnUNetTrainerRRW", "--seeds", "1",
            "--epochs", "1", "--iterations", "2")
    first = _bench(*args)
    assert first.returncode == 0, first.stderr[-3000:]
    assert "$ nnUNetv2_train 990 2d 0 -tr nnUNetTrainerRRW_q1x2" in first.stdout
    document = json.loads(output.with_suffix(".json").read_text())
    (run,) = document["runs"]
    evaluation = json.loads((work / "runs" / run["variant"] / "seed_3" / "evaluation.json").read_text())
    assert run["classes"]["2"]["dice"] == evaluation["summary"]["classes"]["2"]["dice"]["mean"]
    assert output.with_suffix(".png").stat().st_size > 10_000
    again = _bench(*args)  # the finished run is reused, not trained again
    assert again.returncode == 0
    assert "$ nnUNetv2_train" not in again.stdout and "=== nnU-Net planning" not in again.stdout
    assert json.loads(output.with_suffix(".json").read_text()) == document
    output.with_suffix(".md").unlink()
    redrawn = _bench("--report-only", "-o", str(output))
    assert redrawn.returncode == 0 and output.with_suffix(".md").exists()
