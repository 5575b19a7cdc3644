"""``demo -o DIR`` and ``benchmark -o DIR`` never delete or overwrite a user's files, with real folders and the
installed command: a non-empty folder they did not make is refused in one line naming it and the way out; in a
folder they made they delete only what their manifest lists, never through a symbolic link."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from nnunet_lossplug.benchmark.owned_folder import MANIFEST_NAME, OwnedFolder
from nnunet_lossplug.demo.run import DEMO_DATA, DEMO_OUTPUTS, WRITER

COMMAND = str(Path(sys.executable).parent / "nnunet-lossplug")
USERS_FILES = {"trainers/my_trainer.py": "class MyTrainer: ...\n", "predictions/case_001.nii.gz": "years of work",
               "predictions_2024/case_001.nii.gz": "more work", "nnUNet_results/seed_1/checkpoint_final.pth": "model",
               "evaluation.json": "{}"}


def _write(folder: Path, files: dict[str, str]) -> None:
    for name, text in files.items():
        (folder / name).parent.mkdir(parents=True, exist_ok=True)
        (folder / name).write_text(text)


def _unchanged(folder: Path, files: dict[str, str]) -> bool:
    return all((folder / name).is_file() and (folder / name).read_text() == text for name, text in files.items())


def _run(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([COMMAND, *args], capture_output=True, text=True, timeout=120,
                          env={**os.environ, "NNUNET_LOSSPLUG_DEBUG": ""})


def test_demo_refuses_a_folder_of_the_users_and_deletes_nothing(tmp_path):
    _write(tmp_path, USERS_FILES)
    refused = _run("demo", "-o", str(tmp_path), "--epochs", "1", "--iterations", "1")
    assert refused.returncode == 2, refused.stdout[-2000:] + refused.stderr[-2000:]
    (line,) = refused.stderr.strip().splitlines()
    assert str(tmp_path) in line and "not empty and was not made by nnunet-lossplug demo" in line
    assert "give another -o folder" in line and "empty it yourself" in line
    assert _unchanged(tmp_path, USERS_FILES) and not (tmp_path / MANIFEST_NAME).exists()


def test_benchmark_refuses_a_folder_of_the_users_and_one_the_demo_made(tmp_path):
    _write(tmp_path / "mine", USERS_FILES)
    for folder in (tmp_path / "mine", tmp_path / "demo"):
        if folder.name == "demo":
            OwnedFolder(folder, WRITER).claim()
            (folder / "evaluation.json").write_text("{}")
        for extra in ((), ("--report-only",)):
            refused = _run("benchmark", "-d", "501", "--trainers", "nnUNetTrainer", "-o", str(folder), *extra)
            assert refused.returncode == 2 and str(folder) in refused.stderr
            assert "was not made by nnunet-lossplug benchmark" in refused.stderr
    assert _unchanged(tmp_path / "mine", USERS_FILES)


def test_a_rerun_in_the_demos_folder_deletes_only_what_the_demo_recorded(tmp_path):
    outside = tmp_path / "elsewhere"
    _write(outside, {"keep.txt": "not the demo's"})
    demo = tmp_path / "demo"
    folder = OwnedFolder(demo, WRITER)
    folder.claim()
    _write(demo, {name if "." in Path(name).name else f"{name}/file": "the demo's" for name in DEMO_OUTPUTS})
    _write(demo, {f"{name}/data": "kept" for name in DEMO_DATA})
    folder.record(*DEMO_OUTPUTS, *DEMO_DATA)
    users = {"trainers/my_trainer.py": "mine", "predictions_2024/a.nii.gz": "mine", "nnUNet_results/seed_1/x": "mine"}
    _write(demo, users)
    (demo / "predictions").rename(demo / "predictions_moved")  # a recorded entry replaced by a link to elsewhere
    (demo / "predictions").symlink_to(outside)

    removed = folder.remove_recorded(keep=DEMO_DATA)  # what run_demo does before a rerun
    assert "trainers/nnUNetTrainerRRW_Demo.py" in removed and "evaluation.json" in removed
    assert not (demo / "trainers" / "nnUNetTrainerRRW_Demo.py").exists()
    assert not (demo / "nnUNet_results" / "Dataset990_LossPlugDemo").exists()
    assert _unchanged(demo, users) and _unchanged(outside, {"keep.txt": "not the demo's"})
    assert (demo / "predictions").is_symlink() and "predictions" not in removed
    assert all((demo / name / "data").read_text() == "kept" for name in DEMO_DATA)


def test_a_recorded_entry_behind_a_linked_folder_is_not_deleted(tmp_path):
    users_results = tmp_path / "users_results"
    _write(users_results, {"Dataset990_LossPlugDemo/fold_0/model.pth": "a user's model"})
    demo = tmp_path / "demo"
    folder = OwnedFolder(demo, WRITER)
    folder.claim()
    (demo / "nnUNet_results").symlink_to(users_results)
    folder.record("nnUNet_results/Dataset990_LossPlugDemo")
    assert folder.remove_recorded() == []
    assert _unchanged(users_results, {"Dataset990_LossPlugDemo/fold_0/model.pth": "a user's model"})


def test_a_second_benchmark_in_a_folder_another_is_writing_is_refused(tmp_path):
    from nnunet_lossplug.benchmark.execute import WRITER as BENCHMARK

    folder = OwnedFolder(tmp_path / "which_loss", BENCHMARK)
    folder.claim()
    with folder.exclusive():  # this process plays the first benchmark
        refused = _run("benchmark", "-d", "501", "--trainers", "nnUNetTrainer", "-o", str(folder.path))
    assert refused.returncode == 2
    (line,) = refused.stderr.strip().splitlines()
    assert f"{folder.path} is being written by another nnunet-lossplug benchmark (process {os.getpid()})" in line
    after = _run("benchmark", "-d", "501", "--trainers", "nnUNetTrainer", "-o", str(folder.path))
    assert "being written" not in after.stderr  # the lock went with its holder (now: no such dataset)
