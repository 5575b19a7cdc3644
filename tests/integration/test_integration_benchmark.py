"""``nnunet-lossplug benchmark`` end to end on the tiny dataset: two trainers (the plugin's and nnU-Net's own) on
one seed and a 1 × 2 schedule through nnU-Net's commands, the report folder with raw and post-processed rows, and
a second call that trains nothing."""

from __future__ import annotations

import json

import pytest
from helpers.nnunet_runs import run_cli


@pytest.mark.integration
def test_benchmark_trains_both_trainers_alike_reports_raw_and_postprocessed_and_resumes(preprocessed_dataset,
                                                                                        tmp_path):
    output = tmp_path / "which_loss"
    command = ["nnunet-lossplug", "benchmark", "-d", str(preprocessed_dataset.dataset_id), "-c", "2d",
               "--trainers", "nnUNetTrainerRRW", "nnUNetTrainer", "--seeds", "1", "--epochs", "1",
               "--iterations", "2", "-o", str(output)]
    env = preprocessed_dataset.folders.environ()
    first = run_cli(command, env)
    assert first.stdout.count("    train: $ nnUNetv2_train") == 2 and "about " in first.stdout  # a time estimate

    report = (output / "report.md").read_text()
    for trainer in ("nnUNetTrainerRRW", "nnUNetTrainer"):
        for kind in ("raw", "nnU-Net post-processing"):
            assert f"| {trainer} | {kind} | 1 |" in report
    assert "nnUNetv2_determine_postprocessing on the validation cases" in report
    assert "the 2 held-out test cases" in report and "1 seed × 2 cases = 2 pairs" in report
    assert "± nan" not in report and (output / "report.png").stat().st_size > 10_000

    document = json.loads((output / "report.json").read_text())
    assert [(run["trainer"], run["seed"]) for run in document["runs"]] == [("nnUNetTrainerRRW", 3),
                                                                           ("nnUNetTrainer", 3)]
    for run in document["runs"]:
        folder = output / "runs" / run["variant"] / "seed_3"
        evaluation = json.loads((folder / "evaluation_postprocessed.json").read_text())
        assert run["postprocessed"]["heart_008"]["2"]["dice"] == evaluation["cases"]["heart_008"]["2"]["dice"]
        assert sorted(run["raw"]) == sorted(run["postprocessed"]) == ["heart_008", "heart_009"]
        fold = folder / "nnUNet_results" / preprocessed_dataset.name / f"{run['variant']}__nnUNetPlans__2d" / "fold_0"
        log = next(fold.glob("training_log_*.txt")).read_text()
        assert "Seed: 3 (Python, NumPy, torch" in log and "Epoch 0" in log and "Epoch 1" not in log
        assert (fold / "validation" / "postprocessing.pkl").is_file()
    commands = (output / "commands.sh").read_text()
    assert "NNUNET_LOSSPLUG_SEED=3" in commands and "nnUNetv2_apply_postprocessing" in commands
    assert (output / "trainers" / f"{document['runs'][1]['variant']}.py").is_file()

    again = run_cli(command, env)  # the same command: both runs are reused, nothing is trained
    progress = [line for line in again.stdout.splitlines() if line.startswith("[")]
    assert "train: $" not in again.stdout and again.stdout.count("reused") == 2, progress
    assert json.loads((output / "report.json").read_text())["runs"] == document["runs"]
