"""How the plugin's trainers are found next to a user's folders, and what ``env`` and ``trainers`` say about them.

Real processes on real files: a fresh Python runs nnU-Net's own ``-tr`` lookup, and the ``nnunet-lossplug``
console script runs ``env`` and ``trainers``, with a user's ``nnUNet_extTrainer`` folder written for the test.
``new-trainer``'s scan of those folders is checked on files that bind a trainer name in an ``if`` block, a loop
or by assignment (names nnU-Net's ``getattr(module, NAME)`` finds).
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from helpers.fault_data import console_script

from nnunet_lossplug import discovery
from nnunet_lossplug.scaffold import trainer_name_conflicts

BROKEN = "import a_package_missing_on_this_machine  # noqa: F401\n"

SUBCLASS = '''
from nnunet_lossplug.trainers import nnUNetTrainerRRW, nnUNetTrainerRRW_BN


class nnUNetTrainerRRW_100epochs(nnUNetTrainerRRW):
    """RRW for 100 epochs."""

    epochs = 100


class nnUNetTrainerRRW_BN_Again(nnUNetTrainerRRW_BN):
    """The same trainer under another name."""
'''


def _environ(user_folder: Path | None = None, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in (discovery.ENV_VAR, "PYTHONPATH")}
    if user_folder is not None:
        env[discovery.ENV_VAR] = str(user_folder)  # as a user sets it; the .pth hook adds the plugin's folder
    env.update(OMP_NUM_THREADS="1", **extra)
    return env


def _folders(tmp_path: Path) -> dict[str, str]:
    folders = {name: str(tmp_path / name) for name in ("nnUNet_raw", "nnUNet_preprocessed", "nnUNet_results")}
    for path in folders.values():
        Path(path).mkdir()
    return folders


@pytest.fixture
def broken_folder(tmp_path: Path) -> Path:
    folder = tmp_path / "my_trainers"
    folder.mkdir()
    (folder / "a_broken_trainer.py").write_text(BROKEN)
    return folder


def test_a_users_file_that_does_not_import_leaves_the_plugins_trainers_found(broken_folder, tmp_path):
    code = ("from nnunetv2.utilities.find_objects import recursive_find_trainer_class_by_name as f;"
            "print('FOUND', f('nnUNetTrainerRRW').__module__)")
    result = subprocess.run([sys.executable, "-c", code], env=_environ(broken_folder), cwd=tmp_path,
                            capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-2000:]
    assert "FOUND nnunet_lossplug.trainers.region_wise" in result.stdout


@pytest.mark.parametrize("command", ["env", "trainers"])
def test_env_and_trainers_name_every_file_that_does_not_import_and_fail(broken_folder, tmp_path, command):
    (broken_folder / "another_broken.py").write_text("raise RuntimeError('needs a GPU')\n")
    (broken_folder / "fine.py").write_text(SUBCLASS)
    result = subprocess.run([console_script("nnunet-lossplug"), command],
                            env=_environ(broken_folder, **_folders(tmp_path)), cwd=tmp_path,
                            capture_output=True, text=True, timeout=300)
    output = result.stdout + result.stderr
    assert result.returncode == 1, output[-3000:]
    assert (f"{broken_folder / 'a_broken_trainer.py'}: ModuleNotFoundError: No module named "
            f"'a_package_missing_on_this_machine'") in output, output[-3000:]
    assert f"{broken_folder / 'another_broken.py'}: RuntimeError: needs a GPU" in output
    assert "2 trainer file(s) of nnUNet_extTrainer do not import" in output
    if command == "env":
        assert "found by nnU-Net:     yes" in output  # the plugin's folder comes first
    else:  # the files that import are still listed, a changed subclass not as the paper's experiment
        listed = {line.split()[0]: line for line in result.stdout.splitlines() if line.startswith("  nnUNet")}
        assert "derived from nnUNetTrainerRRW (Valverde & Tohka 2022, Tables 2-4 'RRW'); changed: epochs=100" \
            in listed["nnUNetTrainerRRW_100epochs"]
        assert listed["nnUNetTrainerRRW_BN_Again"].endswith("(Valverde & Tohka 2022, Table 5)")


def test_env_says_found_NO_when_a_failing_folder_comes_before_the_plugins(broken_folder, tmp_path):
    env = _environ(broken_folder, NNUNET_LOSSPLUG_NO_AUTOREGISTER="1", **_folders(tmp_path))
    env[discovery.ENV_VAR] = os.pathsep.join([str(broken_folder), str(discovery.trainers_folder())])
    result = subprocess.run([console_script("nnunet-lossplug"), "env"], env=env, cwd=tmp_path,
                            capture_output=True, text=True, timeout=300)
    assert result.returncode == 1
    assert "found by nnU-Net:     NO" in result.stdout
    assert "list the plugin's folder first" in result.stdout and discovery.shell_export_line() in result.stdout


@pytest.mark.parametrize("unset", [(), ("nnUNet_raw",), ("nnUNet_preprocessed", "nnUNet_results"),
                                   ("nnUNet_raw", "nnUNet_preprocessed", "nnUNet_results")])
def test_env_flags_nnunets_folders_and_fails_when_training_could_not_run(tmp_path, unset):
    folders = {k: v for k, v in _folders(tmp_path).items() if k not in unset}
    env = {k: v for k, v in _environ(**folders).items() if k not in unset}
    result = subprocess.run([console_script("nnunet-lossplug"), "env"], env=env, cwd=tmp_path,
                            capture_output=True, text=True, timeout=300)
    for name in ("nnUNet_raw", "nnUNet_preprocessed", "nnUNet_results"):
        flagged = f"{name} is not set:" in result.stdout
        assert flagged == (name in unset), result.stdout
        assert (f'export {name}="/path/to/{name}"' in result.stdout) == (name in unset)
    assert result.returncode == (1 if "nnUNet_results" in unset else 0), result.stdout
    if "nnUNet_raw" in unset:
        assert "needed by nnUNetv2_plan_and_preprocess" in result.stdout


# ---------------------------------------------------------------------------------------------- new-trainer's scan
@pytest.mark.parametrize("source", [
    "import os\n\nif os.environ.get('TEAM', '1'):\n    class {name}:\n        pass\n",
    "for _ in range(1):\n    class {name}:\n        pass\n",
    "try:\n    import torch\nexcept ImportError:\n    torch = None\nelse:\n    class {name}:\n        pass\n",
    "def make():\n    class T:\n        pass\n    return T\n\n\n{name} = make()\n",
    "{name}, other = object, object\n",
    "def declare():\n    global {name}\n\n    class {name}:\n        pass\n\n\ndeclare()\n",
])
def test_new_trainer_refuses_a_name_a_module_binds_anywhere_at_module_level(tmp_path, monkeypatch, source):
    name = "nnUNetTrainerTeamChoice"
    team = tmp_path / "team_trainers"
    team.mkdir()
    (team / "team.py").write_text(source.replace("{name}", name))
    monkeypatch.setenv(discovery.ENV_VAR, discovery.ext_trainer_value(str(team)))
    assert trainer_name_conflicts(name, tmp_path / "mine") == [team / "team.py"]
    result = subprocess.run([console_script("nnunet-lossplug"), "new-trainer", name, "--loss", "DiceLoss", "-o",
                             str(tmp_path / "mine")], env={**os.environ, "OMP_NUM_THREADS": "1"},
                            capture_output=True, text=True, timeout=300)
    assert result.returncode == 2 and f"already a trainer in {team / 'team.py'}" in result.stderr, result.stderr
    assert not (tmp_path / "mine" / f"{name}.py").exists()


def test_the_scan_ignores_names_local_to_functions_and_classes(tmp_path):
    folder = tmp_path / "team_trainers"
    folder.mkdir()
    (folder / "team.py").write_text("def make():\n    class nnUNetTrainerLocal:\n        pass\n    return 1\n\n\n"
                                    "class Holder:\n    nnUNetTrainerAttribute = 1\n")
    from nnunet_lossplug.trainer_sources import class_definitions

    found = class_definitions([folder])
    assert "nnUNetTrainerLocal" not in found and "nnUNetTrainerAttribute" not in found and "Holder" in found
