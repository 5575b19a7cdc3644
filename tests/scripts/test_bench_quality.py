"""``benchmarks/bench_quality.py``: a thin wrapper of ``nnunet-lossplug benchmark`` with the demo's data and schedule
(its arguments, and the report it redraws from its JSON). The training path is ``nnunet-lossplug benchmark``'s,
tested end to end in tests/integration/test_integration_benchmark.py."""

from __future__ import annotations

import importlib.util
import json
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


def test_each_trainer_can_have_its_own_number_of_seeds_and_the_demo_schedule_is_the_default():
    bench = _load_script()
    args = bench.parse_args(["--trainers", "nnUNetTrainerRRW:10", "nnUNetTrainer", "--seeds", "3"])
    assert args.trainers == [("nnUNetTrainerRRW", 10), ("nnUNetTrainer", 3)]
    assert (args.epochs, args.iterations, args.adam_lr) == (12, 40, 1e-3)
    for wrong in ("nnUNetTrainerRRW:0", "nnUNetTrainerRRW:x", "no-name:2"):
        with pytest.raises(SystemExit):
            bench.parse_args(["--trainers", wrong])


def _cases(dice: float) -> dict:
    return {f"c{i}": {str(label): {"dice": dice, "hd": 5.0, "hd95": 2.0} for label in (1, 2, 3)} for i in range(3)}


def test_report_only_redraws_the_table_with_the_target_column_and_the_figure(tmp_path):
    runs = [{"trainer": trainer, "variant": trainer + "_q", "seed": seed, "seconds": {"train": 100.0},
             "raw": _cases(dice), "postprocessed": _cases(dice), "postprocessing": [],
             "postprocessing_text": "nothing", "commands": []}
            for trainer, dice in (("nnUNetTrainerRRW", 0.9), ("nnUNetTrainer", 0.8)) for seed in (3, 4)]
    document = {"written_by": "benchmarks/bench_quality.py", "dataset": "Dataset990_LossPlugDemo",
                "configuration": "2d", "fold": 0, "device": "cpu", "trainers": ["nnUNetTrainerRRW", "nnUNetTrainer"],
                "reference": "nnUNetTrainer", "schedule": {"epochs": 12, "iterations_per_epoch": 40,
                                                           "val_iterations_per_epoch": 4, "adam_lr": 1e-3},
                "held_out": "3 test cases", "held_out_kind": "test", "postprocessing_step": "nnU-Net's",
                "label_names": {"1": "RV", "2": "MYO", "3": "LV"}, "ext_trainer_line": "export x", "runs": runs}
    output = tmp_path / "quality"
    output.with_suffix(".json").write_text(json.dumps(document))
    done = subprocess.run([sys.executable, str(SCRIPT), "--report-only", "-o", str(output)], capture_output=True,
                          text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    table = output.with_suffix(".md").read_text()
    assert "| nnUNetTrainerRRW | raw | 2 | 0.900 ± 0.000 (0.900) |" in table and "| 2 / 2 |" in table
    assert "| nnUNetTrainer | raw | 2 | 0.800 ± 0.000 (0.800) |" in table and "| 0 / 2 |" in table
    assert output.with_suffix(".png").stat().st_size > 10_000


def test_report_only_refuses_the_json_of_the_earlier_script_in_one_line(tmp_path):
    output = tmp_path / "quality"
    output.with_suffix(".json").write_text(json.dumps({"dataset": "990", "runs": [{"trainer": "A", "classes": {}}]}))
    done = subprocess.run([sys.executable, str(SCRIPT), "--report-only", "-o", str(output)], capture_output=True,
                          text=True, timeout=300)
    assert done.returncode == 2 and "written by an earlier version" in done.stderr
    assert "Traceback" not in done.stderr and not output.with_suffix(".md").exists()
