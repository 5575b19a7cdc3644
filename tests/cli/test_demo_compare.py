"""``nnunet-lossplug demo --compare`` end to end on a tiny budget: both trainers through nnU-Net's CLI, one table."""

from __future__ import annotations

import json

import pytest

from nnunet_lossplug.demo.run import DEFAULT_DEMO_SEED, DemoSettings, compare_caveat, run_demo
from nnunet_lossplug.demo.synthetic import SyntheticSpec


@pytest.mark.integration
def test_compare_trains_the_default_trainer_too_and_prints_both_results(tmp_path, capsys):
    spec = SyntheticSpec(num_training=5, num_test=2, shape=(6, 48, 48), seed=3)
    assert run_demo(DemoSettings(tmp_path, epochs=1, iterations_per_epoch=2, spec=spec, compare=True)) == 0
    out = capsys.readouterr().out
    results = tmp_path / "nnUNet_results" / "Dataset990_LossPlugDemo"
    assert (results / "nnUNetTrainerRRW_Demo__nnUNetPlans__2d" / "fold_0" / "checkpoint_final.pth").is_file()
    assert (results / "nnUNetTrainer_Demo__nnUNetPlans__2d" / "fold_0" / "checkpoint_final.pth").is_file()
    log = next((results / "nnUNetTrainer_Demo__nnUNetPlans__2d" / "fold_0").glob("training_log_*.txt")).read_text()
    assert "Epoch 0" in log and "Epoch 1" not in log  # the same 1-epoch budget as the RRW run
    rrw_log = next((results / "nnUNetTrainerRRW_Demo__nnUNetPlans__2d" / "fold_0").glob("training_log_*.txt"))
    for text in (log, rrw_log.read_text()):  # the demo's seed reached both trainings
        assert f"Seed: {DEFAULT_DEMO_SEED} (Python, NumPy, torch" in text
    assert f"seed {DEFAULT_DEMO_SEED} (--seed N to change" in out

    table = out[out.index("=== side by side"):]
    rows = {line.split("  ")[0]: line for line in table.splitlines() if line.startswith(("RRW", "default"))}
    for name, file in (("RRW (nnUNetTrainerRRW)", "evaluation.json"),
                       ("default (nnUNetTrainer)", "evaluation_default.json")):
        classes = json.loads((tmp_path / file).read_text())["summary"]["classes"]
        for label in ("1", "2", "3"):
            dice = classes[label]["dice"]["mean"]
            assert f"{dice:.3f} ± " in rows[name]
    assert "HD95" in table and compare_caveat(2) in out and out.count("one run proves nothing") == 1
