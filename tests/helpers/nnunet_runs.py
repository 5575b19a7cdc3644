"""What the tests share about nnU-Net runs: the tiny synthetic dataset, an isolated folder layout, and running a
console script of this virtual environment (nnU-Net's or the plugin's)."""

from __future__ import annotations

import os
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest

from nnunet_lossplug.demo.synthetic import SyntheticSpec

DATASET_ID = 991
DATASET_NAME = f"Dataset{DATASET_ID}_LossPlugTest"
TINY_SPEC = SyntheticSpec(num_training=8, num_test=2, shape=(8, 48, 48), spacing=(10.0, 1.5, 1.5), seed=1)


@dataclass(frozen=True)
class NnunetFolders:
    raw: Path
    preprocessed: Path
    results: Path

    def environ(self, **extra: str) -> dict[str, str]:
        """A copy of os.environ pointing nnU-Net at these folders, for subprocesses."""
        env = dict(os.environ)
        env.update(nnUNet_raw=str(self.raw), nnUNet_preprocessed=str(self.preprocessed),
                   nnUNet_results=str(self.results), **extra)
        return env


@dataclass(frozen=True)
class PreprocessedDataset:
    folders: NnunetFolders
    dataset_id: int
    name: str

    @property
    def raw_folder(self) -> Path:
        return self.folders.raw / self.name

    @property
    def preprocessed_folder(self) -> Path:
        return self.folders.preprocessed / self.name


def run_cli(args: list[str], env: dict[str, str], timeout: float = 900) -> subprocess.CompletedProcess:
    """Run one of nnU-Net's (or our) console scripts from this venv; fail the test with its output on error."""
    executable = Path(sys.executable).parent / args[0]
    result = subprocess.run([str(executable), *args[1:]], env=env, capture_output=True, text=True, timeout=timeout)
    if result.returncode != 0:
        pytest.fail(f"{' '.join(args)} exited {result.returncode}\n--- stdout ---\n{result.stdout[-6000:]}"
                    f"\n--- stderr ---\n{result.stderr[-6000:]}")
    return result
