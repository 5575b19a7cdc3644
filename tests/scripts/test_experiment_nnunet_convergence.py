"""Experiment 5 (Valverde & Tohka 2022 Fig. 5 through nnU-Net) in ``--quick`` mode, end to end with nnU-Net's real
CLI."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parents[2]
if str(REPO_ROOT) not in sys.path:  # the experiments folder is not an installed package
    sys.path.insert(0, str(REPO_ROOT))

from experiments import nnunet_convergence  # noqa: E402

pytestmark = pytest.mark.integration  # trains every variant through nnU-Net's CLI (minutes)


def test_quick_run_trains_every_variant_with_nnunet_and_reports_its_validation_dice(tmp_path, capsys):
    workdir, out = tmp_path / "work", tmp_path / "out"
    assert nnunet_convergence.main(["--quick", "--seeds", "1", "--out-dir", str(out), "--workdir", str(workdir)]) == 0

    png, md = out / "nnunet_convergence.png", out / "nnunet_convergence.md"
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and png.stat().st_size > 10_000
    text = md.read_text()
    assert "--quick" in text and "|---|" in text
    assert "|---|" in capsys.readouterr().out

    # every trainer ran through nnUNetv2_train and ended with nnU-Net's own validation; the report's per-run
    # rows carry the Dice nnU-Net wrote (read here straight from its summary.json)
    results = workdir / "nnUNet_results" / f"Dataset{nnunet_convergence.DATASET_ID}_{nnunet_convergence.DATASET_NAME}"
    for base in nnunet_convergence.TRAINERS:
        fold = results / f"{base}_Fig5_s0__nnUNetPlansCPU__2d" / "fold_0"
        summary = json.loads((fold / "validation" / "summary.json").read_text())
        dice = [summary["mean"][str(label)]["Dice"] for label in (1, 2, 3)]
        row = f"| 0 | {nnunet_convergence.LABELS[base]} | {sum(dice) / 3:.3f} | " + " | ".join(
            f"{d:.3f}" for d in dice)
        assert row in text
        log = next(fold.glob("training_log_*.txt")).read_text()
        assert "Epoch 1" in log and "Epoch 2" not in log  # the variant's 2-epoch budget was used
        pseudo = json.loads((fold / "pseudo_dice.json").read_text())
        assert len(pseudo) == 2 and all(len(epoch) == 3 for epoch in pseudo)
