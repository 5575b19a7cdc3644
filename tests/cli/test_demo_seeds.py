"""``nnunet-lossplug demo --seed N`` / ``--compare --seeds K``: the seed's plumbing and the report."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np

from nnunet_lossplug.demo.run import DEFAULT_DEMO_SEED, DemoSettings, training_environment
from nnunet_lossplug.demo.seed_comparison import format_seed_comparison, smallest_p_value

DICE = {  # per seed: (RV, MYO, LV) mean Dice over the held-out cases
    "rrw": {3: (0.90, 0.80, 0.95), 4: (0.85, 0.82, 0.96), 5: (0.70, 0.78, 0.94)},
    "default": {3: (0.88, 0.79, 0.95), 4: (0.80, 0.80, 0.97), 5: (0.72, 0.70, 0.93)},
}


def _result(path: Path, dice: tuple[float, ...]) -> Path:
    classes = {str(label): {"dice": {"mean": d, "std": 0.01}, "hd": {"mean": 5.0 - d, "std": 1.0},
                            "hd95": {"mean": 3.0 - d, "std": 1.0}} for label, d in enumerate(dice, start=1)}
    cases = {"case_0": {label: {m: v["mean"] for m, v in c.items()} for label, c in classes.items()}}
    path.write_text(json.dumps({"cases": cases, "summary": {"classes": classes}}))
    return path


def test_training_command_gets_the_seed_and_no_augmentation_workers():
    env = training_environment({"nnUNet_n_proc_DA": "2", "X": "1"}, 7)
    assert env["NNUNET_LOSSPLUG_SEED"] == "7" and env["nnUNet_n_proc_DA"] == "0" and env["X"] == "1"
    assert DemoSettings(Path("."), seed=5, seeds=3).seed_list() == [5, 6, 7]


def test_seed_report_gives_mean_sd_over_seeds_and_says_it_is_not_significant(tmp_path):
    dataset_json = tmp_path / "dataset.json"
    dataset_json.write_text(json.dumps({"labels": {"background": 0, "RV": 1, "MYO": 2, "LV": 3}}))
    runs = {name: {seed: _result(tmp_path / f"{name}{seed}.json", dice) for seed, dice in per_seed.items()}
            for name, per_seed in DICE.items()}
    text = format_seed_comparison(runs["rrw"], runs["default"], dataset_json)
    rv_rrw = np.array([d[0] for d in DICE["rrw"].values()])
    assert f"{rv_rrw.mean():.3f} ± {rv_rrw.std(ddof=1):.3f}" in text
    assert "3 seeds (3, 4, 5)" in text and "paired 3 seeds present in both" in text
    assert "(exact)" in text and "No difference is significant" in text
    assert f"smallest p-value the exact test can give is {2 / 8:.3f}" in text and "--seeds 6" in text
    assert smallest_p_value(6) < 0.05 <= smallest_p_value(5)


def _demo_cli(*args: str) -> subprocess.CompletedProcess:
    executable = Path(sys.executable).parent / "nnunet-lossplug"
    return subprocess.run([str(executable), "demo", *args], capture_output=True, text=True, timeout=120,
                          env={**os.environ, "NNUNET_LOSSPLUG_DEBUG": ""})


def test_demo_cli_refuses_seeds_without_compare_and_names_the_default_seed(tmp_path):
    refused = _demo_cli("-o", str(tmp_path), "--seeds", "3")
    assert refused.returncode == 2 and "--seeds K needs --compare" in refused.stderr
    assert _demo_cli("-o", str(tmp_path), "--seed", "-1").returncode == 2
    assert f"(default: {DEFAULT_DEMO_SEED})" in _demo_cli("--help").stdout.replace("\n", " ")
    assert not any(tmp_path.iterdir()), "a refused demo wrote files"


def test_the_pairing_line_says_exact_when_every_sign_flip_was_enumerated():
    from nnunet_lossplug.evaluation.compare_results import compare_results, pairing_summary

    def result(values):
        return {"cases": {f"c{i}": {"1": {"dice": v}} for i, v in enumerate(values)}}

    few = compare_results(result([0.8, 0.7, 0.9]), result([0.85, 0.72, 0.95]), metrics=("dice",))
    line = pairing_summary(few, "A", "B")  # 3 pairs: 2^3 sign flips, all enumerated
    assert "exact: every sign flip" in line and "random" not in line
    rng = np.random.default_rng(1)
    many = compare_results(result(rng.uniform(0.5, 1, 20)), result(rng.uniform(0.5, 1, 20)), metrics=("dice",))
    line = pairing_summary(many, "A", "B")  # 2^20 > 10 000: random sign flips
    assert "10000 random sign flips (seed 0)" in line and "exact" not in line
