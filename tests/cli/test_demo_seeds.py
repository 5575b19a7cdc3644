"""``nnunet-lossplug demo --seed N`` / ``--compare --seeds K``: the seed's plumbing and the refusals."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np

from nnunet_lossplug.demo.run import DEFAULT_DEMO_SEED, DemoSettings, training_environment


def test_training_command_gets_the_seed_and_no_augmentation_workers():
    env = training_environment({"nnUNet_n_proc_DA": "2", "X": "1"}, 7)
    assert env["NNUNET_LOSSPLUG_SEED"] == "7" and env["nnUNet_n_proc_DA"] == "0" and env["X"] == "1"
    assert DemoSettings(Path("."), seed=5, seeds=3).seed_list() == [5, 6, 7]


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


def test_child_processes_wait_passively_unless_the_user_chose(monkeypatch, tmp_path):
    from nnunet_lossplug.demo.run import demo_environment

    monkeypatch.delenv("OMP_WAIT_POLICY", raising=False)
    env = demo_environment(tmp_path, tmp_path / "trainers")
    assert env["OMP_WAIT_POLICY"] == "PASSIVE" and env["nnUNet_raw"] == str(tmp_path / "nnUNet_raw")
    assert str(tmp_path / "trainers") in env["nnUNet_extTrainer"].split(os.pathsep)
    monkeypatch.setenv("OMP_WAIT_POLICY", "ACTIVE")
    assert demo_environment(tmp_path, tmp_path / "trainers")["OMP_WAIT_POLICY"] == "ACTIVE"
