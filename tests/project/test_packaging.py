"""The built wheel: it ships the discovery .pth, the trainer package and the folder nnU-Net searches (one-line
re-exports of the package), and nnU-Net finds the package's own classes from it.

The wheel is built with the project's own build backend (pip downloads hatchling into an isolated build
environment) and unpacked into a site directory; a fresh interpreter that adds that directory first (as a
plain ``pip install .`` would) imports the plugin from the wheel, not from this checkout.
"""

from __future__ import annotations

import os
import subprocess
import sys
import sysconfig
import zipfile
from pathlib import Path

import pytest

pytestmark = pytest.mark.integration  # builds and installs a wheel, runs nnU-Net's trainer lookup

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def wheel(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("wheel")
    result = subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "-q", "-w", str(out), str(REPO)],
                            capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    return next(out.glob("nnunet_lossplug-*.whl"))


def test_wheel_ships_discovery_hook_and_trainers(wheel):
    archive = zipfile.ZipFile(wheel)
    names = set(archive.namelist())
    assert "nnunet-lossplug.pth" in names
    reexports = sorted((REPO / "trainers").glob("*.py"))
    assert reexports
    for reexport in reexports:
        shipped = archive.read(f"nnunet_lossplug/ext_trainer_folder/{reexport.name}").decode()
        assert shipped == reexport.read_text() and shipped.startswith("from nnunet_lossplug.trainers.")
    for module in sorted((REPO / "nnunet_lossplug" / "trainers").glob("*.py")):
        assert f"nnunet_lossplug/trainers/{module.name}" in names
    assert not any(name.startswith("nnunet_lossplug/ext_trainer_folder/__init__") for name in names)
    assert "nnunet_lossplug/nnunet/trainer/base.py" in names and "nnunet_lossplug/nnunet/errors.py" in names
    assert not any(name.startswith("tests/") for name in names)


def test_installed_wheel_is_found_by_nnunet_from_another_folder(wheel, tmp_path):
    """Python without its default site, then the wheel's site dir first and this venv's after it (for torch)."""
    site_dir = tmp_path / "site"
    zipfile.ZipFile(wheel).extractall(site_dir)
    purelib = sysconfig.get_paths()["purelib"]
    code = (
        f"import site, sys; site.addsitedir({str(site_dir)!r}); site.addsitedir({purelib!r});"
        "import nnunet_lossplug, nnunet_lossplug.discovery as d;"
        "from nnunetv2.utilities.find_objects import recursive_find_trainer_class_by_name as f;"
        "cls = f('nnUNetTrainerRRW');"
        "from nnunet_lossplug.trainers import nnUNetTrainerRRW;"
        "print('PACKAGE', nnunet_lossplug.__file__); print('FOLDER', d.trainers_folder());"
        "print('SAME', cls is nnUNetTrainerRRW, cls.__module__);"
    )
    env = {k: v for k, v in os.environ.items() if k not in ("nnUNet_extTrainer", "PYTHONPATH")}
    result = subprocess.run([sys.executable, "-S", "-c", code], cwd=tmp_path, env=env, capture_output=True,
                            text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-4000:]
    lines = dict(line.split(" ", 1) for line in result.stdout.splitlines()
                 if line.startswith(("PACKAGE", "FOLDER", "SAME")))
    folder = site_dir / "nnunet_lossplug" / "ext_trainer_folder"
    assert lines["PACKAGE"] == str(site_dir / "nnunet_lossplug" / "__init__.py")
    assert lines["FOLDER"] == str(folder)
    assert lines["SAME"] == "True nnunet_lossplug.trainers.region_wise"  # the package's class, not a copy
    # nnU-Net's own report of where it found the class
    assert f"Using trainer 'nnUNetTrainerRRW' from: {folder}" in result.stdout
