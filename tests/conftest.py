"""Shared fixtures: an isolated nnU-Net folder layout and one small dataset preprocessed by nnU-Net's own CLI.

``preprocessed_dataset`` writes the synthetic cardiac dataset (nnunet_lossplug.demo.synthetic) and runs the real
``nnUNetv2_plan_and_preprocess`` once per test session for the ``2d`` and ``3d_fullres`` configurations;
tests that need nnU-Net data share it (about a minute on 2 CPU cores).
"""

from __future__ import annotations

import contextlib
import os
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest

from nnunet_lossplug.demo.synthetic import SyntheticSpec, write_synthetic_dataset

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


@contextlib.contextmanager
def _environment(**values: str):
    """Set environment variables for the block and restore the previous values (or absence) afterwards."""
    saved = {key: os.environ.get(key) for key in values}
    os.environ.update(values)
    try:
        yield
    finally:
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


@pytest.fixture(scope="session", autouse=True)
def _nnunet_process_settings():
    """Keep nnU-Net small on a 2-core CPU machine and never compile."""
    with _environment(nnUNet_def_n_proc="2", nnUNet_compile="f", nnUNet_n_proc_DA="2"):
        yield


@pytest.fixture(scope="session")
def nnunet_folders(tmp_path_factory) -> NnunetFolders:
    """Fresh nnUNet_raw / nnUNet_preprocessed / nnUNet_results folders, also set in os.environ for the session."""
    base = tmp_path_factory.mktemp("nnunet")
    folders = NnunetFolders(base / "raw", base / "preprocessed", base / "results")
    for path in (folders.raw, folders.preprocessed, folders.results):
        path.mkdir()
    with _environment(nnUNet_raw=str(folders.raw), nnUNet_preprocessed=str(folders.preprocessed),
                      nnUNet_results=str(folders.results)):
        yield folders


@pytest.fixture(scope="session")
def preprocessed_dataset(nnunet_folders) -> PreprocessedDataset:
    """The tiny synthetic dataset, planned and preprocessed by nnU-Net (2d and 3d_fullres)."""
    write_synthetic_dataset(nnunet_folders.raw, DATASET_ID, "LossPlugTest", TINY_SPEC)
    run_cli(["nnUNetv2_plan_and_preprocess", "-d", str(DATASET_ID), "-c", "2d", "3d_fullres",
             "-np", "2", "2", "-npfp", "2", "--verify_dataset_integrity"], nnunet_folders.environ())
    return PreprocessedDataset(nnunet_folders, DATASET_ID, DATASET_NAME)


@pytest.fixture
def fresh_cache(preprocessed_dataset):
    """Remove the plugin's precompute cache before and after a test that builds it."""
    cache = preprocessed_dataset.preprocessed_folder / "lossplug_cache"
    shutil.rmtree(cache, ignore_errors=True)
    yield cache
    shutil.rmtree(cache, ignore_errors=True)
