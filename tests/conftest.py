"""Shared fixtures: an isolated nnU-Net folder layout and one small dataset preprocessed by nnU-Net's own CLI.

``preprocessed_dataset`` writes the synthetic cardiac dataset (nnunet_lossplug.demo.synthetic) and runs the real
``nnUNetv2_plan_and_preprocess`` once per test session for the ``2d`` and ``3d_fullres`` configurations;
tests that need nnU-Net data share it (about a minute on 2 CPU cores).
"""

from __future__ import annotations

import contextlib
import os
import shutil

import pytest
from helpers.nnunet_runs import DATASET_ID, DATASET_NAME, TINY_SPEC, NnunetFolders, PreprocessedDataset, run_cli

from nnunet_lossplug.demo.synthetic import write_synthetic_dataset


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
