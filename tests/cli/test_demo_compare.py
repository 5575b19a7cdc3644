"""``nnunet-lossplug demo --compare`` end to end on a tiny budget: the benchmark on the demo's data, both trainers
through nnU-Net's CLI on the same seed and schedule, raw and post-processed rows in one report."""

from __future__ import annotations

import json

import pytest

from nnunet_lossplug.demo.run import DEFAULT_DEMO_SEED, DemoSettings, compare_caveat, run_demo
from nnunet_lossplug.demo.synthetic import SyntheticSpec


@pytest.mark.integration
def test_compare_runs_the_benchmark_on_the_demos_data_and_prints_its_report(tmp_path, capsys):
    spec = SyntheticSpec(num_training=5, num_test=2, shape=(6, 48, 48), seed=3)
    assert run_demo(DemoSettings(tmp_path, epochs=1, iterations_per_epoch=2, spec=spec, compare=True)) == 0
    out = capsys.readouterr().out
    document = json.loads((tmp_path / "compare" / "report.json").read_text())
    assert [(run["trainer"], run["seed"]) for run in document["runs"]] == [
        ("nnUNetTrainerRRW", DEFAULT_DEMO_SEED), ("nnUNetTrainer", DEFAULT_DEMO_SEED)]
    for run in document["runs"]:
        fold = (tmp_path / "compare" / "runs" / run["variant"] / f"seed_{DEFAULT_DEMO_SEED}" / "nnUNet_results"
                / "Dataset990_LossPlugDemo" / f"{run['variant']}__nnUNetPlans__2d" / "fold_0")
        log = next(fold.glob("training_log_*.txt")).read_text()
        assert f"Seed: {DEFAULT_DEMO_SEED} (Python, NumPy, torch" in log  # the demo's seed reached both trainings
        assert "Epoch 0" in log and "Epoch 1" not in log  # the same 1-epoch budget
    assert f"seed {DEFAULT_DEMO_SEED} (--seed N to change" in out
    report = out[out.index("# Which loss for Dataset990_LossPlugDemo?"):]
    for trainer in ("nnUNetTrainerRRW", "nnUNetTrainer"):
        assert f"| {trainer} | raw | 1 |" in report and f"| {trainer} | nnU-Net post-processing | 1 |" in report
    assert compare_caveat(2) in out and out.count("one run proves nothing") == 1
