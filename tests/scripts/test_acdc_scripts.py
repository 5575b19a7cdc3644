"""Experiment scripts of examples/acdc: syntax, shellcheck, a dry run with stub nnU-Net commands, figure helpers."""

from __future__ import annotations

import json
import os
import shutil
import stat
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from helpers.example_modules import ACDC_DIR, load_example

SCRIPTS = sorted(ACDC_DIR.glob("*.sh"))
EXPERIMENTS = ["table2.sh", "table5.sh", "fig5_stability.sh", "fig6_combinations.sh"]


def test_every_experiment_has_a_script_with_strict_mode() -> None:
    names = {p.name for p in SCRIPTS}
    assert set(EXPERIMENTS) | {"prepare.sh", "config.sh"} <= names
    for name in EXPERIMENTS + ["prepare.sh"]:
        text = (ACDC_DIR / name).read_text()
        assert text.startswith("#!/usr/bin/env bash\n") and "set -euo pipefail" in text


@pytest.mark.parametrize("script", SCRIPTS, ids=lambda p: p.name)
def test_bash_syntax(script: Path) -> None:
    result = subprocess.run(["bash", "-n", str(script)], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr


@pytest.mark.skipif(shutil.which("shellcheck") is None, reason="shellcheck is not installed")
def test_shellcheck_is_clean() -> None:
    result = subprocess.run(["shellcheck", "-x", "-s", "bash", *[p.name for p in SCRIPTS]], cwd=ACDC_DIR,
                            capture_output=True, text=True)
    assert result.returncode == 0, result.stdout


STUB = """#!/usr/bin/env bash
set -euo pipefail
echo "$(basename "$0") $* [results=${nnUNet_results:-}]" >> "$STUB_LOG"
"""

ID_OPTION = """
id=""; target=""
while [[ $# -gt 0 ]]; do case "$1" in -d|-s) id="$2";; -t) target="$2";; esac; shift; done
"""

STUBS = {
    "nnUNetv2_extract_fingerprint": STUB + ID_OPTION + """
mkdir -p "$nnUNet_preprocessed/$(printf 'Dataset%03d_ACDCPlanning' "$id")"
echo '{"spacings": []}' > "$nnUNet_preprocessed/$(printf 'Dataset%03d_ACDCPlanning' "$id")/dataset_fingerprint.json"
""",
    "nnUNetv2_plan_experiment": STUB + ID_OPTION + """
folder="$nnUNet_preprocessed/$(printf 'Dataset%03d_ACDCPlanning' "$id")"
echo '{"configurations": {"2d": {}}}' > "$folder/nnUNetPlans.json"
""",
    "nnUNetv2_move_plans_between_datasets": STUB + ID_OPTION + """
cp "$nnUNet_preprocessed/$(printf 'Dataset%03d_ACDCPlanning' "$id")/nnUNetPlans.json" \
  "$nnUNet_preprocessed/$(printf 'Dataset%03d_ACDC' "$target")/nnUNetPlans.json"
""",
    "nnUNetv2_preprocess": STUB,
    "nnUNetv2_train": STUB,
    "nnUNetv2_predict": STUB + """
while [[ $# -gt 0 ]]; do case "$1" in -i) src="$2";; -o) dst="$2";; esac; shift; done
mkdir -p "$dst"
for f in "$src"/*_0000.nii.gz; do b=$(basename "$f"); cp "$f" "$dst/${b%_0000.nii.gz}.nii.gz"; done
""",
    "nnunet-lossplug": STUB + """
if [[ "$1" == evaluate ]]; then
  while [[ $# -gt 0 ]]; do if [[ "$1" == -o ]]; then out="$2"; fi; shift; done
  echo '{"cases": {}, "summary": {"mean_over_classes": {"dice": 0.9}}}' > "$out"
fi
""",
}


@pytest.fixture()
def sandbox(tmp_path: Path) -> dict[str, str]:
    """Environment with stub nnU-Net / nnunet-lossplug commands and a replica ACDC download."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    for name, body in STUBS.items():
        path = bin_dir / name
        path.write_text(body)
        path.chmod(path.stat().st_mode | stat.S_IEXEC)
    python_wrapper = bin_dir / "python-wrapper"  # runs the kit's helpers, logs (not runs) the checkpoint reader
    python_wrapper.write_text(f"""#!/usr/bin/env bash
if [[ "$1" == *training_curves.py ]]; then echo "training_curves $*" >> "$STUB_LOG"; exit 0; fi
exec {sys.executable} "$@"
""")
    python_wrapper.chmod(0o755)
    load_example("make_replica").make_acdc_replica(tmp_path / "ACDC")
    env = {k: v for k, v in os.environ.items() if not k.startswith("nnUNet_")}
    env.update(
        PATH=f"{bin_dir}{os.pathsep}{env['PATH']}",
        PYTHON=str(python_wrapper),
        STUB_LOG=str(tmp_path / "calls.log"),
        ACDC_ROOT=str(tmp_path / "ACDC"),
        nnUNet_raw=str(tmp_path / "raw"),
        nnUNet_preprocessed=str(tmp_path / "pre"),
        RESULTS_ROOT=str(tmp_path / "results"),
        NUM_PROCESSES="1",
    )
    return env


def _run(script: str, env: dict[str, str], **extra: str) -> list[str]:
    result = subprocess.run(["bash", str(ACDC_DIR / script)], env={**env, **extra}, capture_output=True,
                            text=True, timeout=240)
    assert result.returncode == 0, result.stdout + result.stderr
    return Path(env["STUB_LOG"]).read_text().splitlines()


def test_table2_dry_run_issues_the_pipeline_commands(sandbox) -> None:
    calls = _run("table2.sh", sandbox, N_RUNS="1")
    results = Path(sandbox["RESULTS_ROOT"]) / "table2"
    assert [c.split(" [")[0] for c in calls[:5]] == [
        "nnUNetv2_extract_fingerprint -d 927 -np 1 --verify_dataset_integrity --clean",
        "nnUNetv2_plan_experiment -d 927",
        "nnUNetv2_move_plans_between_datasets -s 927 -t 27 -sp nnUNetPlans -tp nnUNetPlans",
        "nnUNetv2_preprocess -d 27 -plans_name nnUNetPlans -c 2d -np 1",
        "nnunet-lossplug precompute -d 27 -c 2d -p nnUNetPlans --maps rrw,boundary -np 1"]
    trainers = ["nnUNetTrainerRRW", "nnUNetTrainerDiceOnly", "nnUNetTrainerFocal", "nnUNetTrainerCERRWWeighted",
                "nnUNetTrainerBoundaryDice"]
    train_calls = [c for c in calls if c.startswith("nnUNetv2_train")]
    assert [c.split()[5] for c in train_calls] == trainers
    assert all(c.split()[1:4] == ["27", "2d", "0"] for c in train_calls)
    assert f"[results={results}/nnUNetTrainerFocal/run_1]" in train_calls[2]
    assert sum(c.startswith("nnUNetv2_predict") for c in calls) == 5
    assert sum(c.startswith("nnunet-lossplug evaluate") for c in calls) == 5
    compares = [c for c in calls if c.startswith("nnunet-lossplug compare")]
    assert len(compares) == 4 and all("nnUNetTrainerRRW/run_1/evaluation.json" in c for c in compares)
    assert sum(c.startswith("nnunet-lossplug plot") for c in calls) == 1
    split = Path(sandbox["nnUNet_preprocessed"]) / "Dataset027_ACDC" / "splits_final.json"
    assert json.loads(split.read_text())[0]["val"][0] == "patient001_frame01"


def test_planning_sees_only_fold_0_training_patients(sandbox) -> None:
    """Defect O: nnU-Net fingerprints a copy holding the even (training) patients only, not the validation ones."""
    _run("prepare.sh", sandbox, PREPARE_ONLY="1")
    planning = Path(sandbox["nnUNet_raw"]) / "Dataset927_ACDCPlanning"
    assert sorted(p.name for p in (planning / "labelsTr").iterdir()) == [
        "patient002_frame01.nii.gz", "patient002_frame07.nii.gz", "patient004_frame01.nii.gz",
        "patient004_frame05.nii.gz"]
    assert json.loads((planning / "dataset.json").read_text())["numTraining"] == 4
    assert (planning / "imagesTr" / "patient002_frame07_0000.nii.gz").resolve() == (
        Path(sandbox["nnUNet_raw"]) / "Dataset027_ACDC" / "imagesTr" / "patient002_frame07_0000.nii.gz").resolve()


def test_dataset_converted_without_full_training_set_is_refused(sandbox) -> None:
    """Defect E: Table 5's dataset id already holding the paper split must not be trained on silently."""
    _run("prepare.sh", sandbox, DATASET_ID="28", PREPARE_ONLY="1")
    result = subprocess.run(["bash", str(ACDC_DIR / "prepare.sh")], capture_output=True, text=True, timeout=240,
                            env={**sandbox, "DATASET_ID": "28", "FULL_TRAINING_SET": "1", "PREPARE_ONLY": "1"})
    assert result.returncode != 0
    assert "converted without --full-training-set" in result.stderr and "DATASET_ID" in result.stderr
    split = json.loads((Path(sandbox["nnUNet_raw"]) / "Dataset028_ACDC" / "splits_final.json").read_text())
    assert len(split[0]["train"]) == 4  # left as it was


def test_custom_plans_that_do_not_exist_are_refused_before_any_work(sandbox) -> None:
    """Defect G: PLANS naming missing plans stops with the way to create them, not in precompute."""
    result = subprocess.run(["bash", str(ACDC_DIR / "prepare.sh")], capture_output=True, text=True, timeout=240,
                            env={**sandbox, "PLANS": "nnUNetPlansACDC"})
    assert result.returncode == 2
    assert "nnUNetPlansACDC.json does not exist" in result.stderr and "table5.sh" in result.stderr
    calls = Path(sandbox["STUB_LOG"]).read_text().splitlines()
    assert not any(c.startswith(("nnUNetv2_preprocess", "nnunet-lossplug")) for c in calls)


def test_table5_without_test_patients_stops_before_any_work(sandbox) -> None:
    """Defect K: without ACDC's testing folder there is nothing to submit; say so before converting or training."""
    shutil.rmtree(Path(sandbox["ACDC_ROOT"]) / "testing")
    result = subprocess.run(["bash", str(ACDC_DIR / "table5.sh")], env=sandbox, capture_output=True, text=True,
                            timeout=240)
    assert result.returncode == 2
    assert "no test patients in" in result.stderr and "testing/" in result.stderr
    assert not Path(sandbox["STUB_LOG"]).exists() and not Path(sandbox["nnUNet_raw"]).exists()


def test_stability_and_combination_dry_runs(sandbox) -> None:
    calls = _run("fig5_stability.sh", sandbox, N_MODELS="2")
    train = [c.split()[5] for c in calls if c.startswith("nnUNetv2_train")]
    assert train == ["nnUNetTrainerRWBoundary_50epochs", "nnUNetTrainerRRW_50epochs"] * 2
    assert (Path(sandbox["RESULTS_ROOT"]) / "fig5" / "fig5_cdf.png").is_file()

    Path(sandbox["STUB_LOG"]).unlink()
    calls = _run("fig6_combinations.sh", sandbox, N_CURVE_RUNS="1", N_CDF_RUNS="1")
    train = [c.split()[5] for c in calls if c.startswith("nnUNetv2_train")]
    assert len(train) == 14 and train[4] == "nnUNetTrainerBoundaryDice"
    assert train[7:] == [t + "_50epochs" for t in train[:7]]
    assert any(c.startswith("training_curves") and "checkpoint_final.pth" in c for c in calls)
    assert (Path(sandbox["RESULTS_ROOT"]) / "fig6" / "fig6c_cdf.png").is_file()


def test_empirical_cdf_by_hand_and_run_scores(tmp_path: Path) -> None:
    cdf = load_example("stability_cdf")
    x, y = cdf.empirical_cdf([0.9, 0.5, 0.9, 0.7])
    assert x.tolist() == [0.5, 0.7, 0.9, 0.9] and y.tolist() == [0.25, 0.5, 1.0, 1.0]
    with_summary = tmp_path / "a.json"
    with_summary.write_text(json.dumps({"cases": {}, "summary": {"mean_over_classes": {"dice": 0.83}}}))
    assert cdf.run_score(with_summary) == 0.83
    cases_only = tmp_path / "b.json"
    cases_only.write_text(json.dumps({"cases": {"c1": {"1": {"dice": 0.8}, "2": {"dice": 0.6}},
                                                "c2": {"1": {"dice": 1.0}, "2": {"dice": 0.8}}}}))
    assert cdf.run_score(cases_only) == pytest.approx((0.9 + 0.7) / 2)


def test_training_curves_from_checkpoints(tmp_path: Path, capsys) -> None:
    import torch

    curves = load_example("training_curves")
    for run, offset in enumerate((0.0, 0.2)):
        log = {"mean_fg_dice": [0.1 + offset, 0.5 + offset, 0.6 + offset][: 3 - run],
               "epoch_start_timestamps": [0.0, 10.0, 20.0], "epoch_end_timestamps": [9.0, 19.0, 29.0]}
        folder = tmp_path / f"run_{run}"
        folder.mkdir()
        torch.save({"logging": log, "current_epoch": 3}, folder / "checkpoint_final.pth")
    logs = [curves.read_log(tmp_path / f"run_{i}" / "checkpoint_final.pth") for i in range(2)]
    mean, low, high = curves.mean_curve(logs)
    assert mean.tolist() == pytest.approx([0.2, 0.6]) and low.tolist() == pytest.approx([0.1, 0.5])
    assert high.tolist() == pytest.approx([0.3, 0.7])
    assert curves.mean_epoch_seconds(logs) == pytest.approx(9.0)
    out = tmp_path / "curves.png"
    assert curves.main(["-o", str(out), "--group", "RRW", str(tmp_path / "run_*" / "checkpoint_final.pth")]) == 0
    assert out.stat().st_size > 1000 and "mean epoch time 9.0 s" in capsys.readouterr().out
    torch.save({"weights": np.zeros(2)}, tmp_path / "other.pth")
    with pytest.raises(ValueError, match="training log"):
        curves.read_log(tmp_path / "other.pth")
