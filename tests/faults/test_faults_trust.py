"""Files a user may have received: never lose one, never run one's code.

Real files only: a real symbolic link in the cache, a real pickle whose payload would write a marker file under the
test's tmp folder, real checkpoints made by ``torch.save`` and by a 1-iteration training with the real
``nnUNetv2_train``. Each test checks that the plugin refuses in one line naming the file, that the link's target is
untouched, and that the marker was never written.
"""

from __future__ import annotations

import json
import pickle
import shutil
import subprocess
from pathlib import Path

import pytest
import torch
from helpers.fault_data import console_script, copy_dataset
from helpers.nnunet_runs import DATASET_ID
from torch import nn

from nnunet_lossplug import discovery
from nnunet_lossplug.nnunet.codecs.chooser import source_codec
from nnunet_lossplug.nnunet.errors import PretrainedWeightsError
from nnunet_lossplug.nnunet.map_cache import CaseCache, PreprocessedSource
from nnunet_lossplug.nnunet.trainer.networks import check_pretrained_weights

TRUST_ENV_VAR = "NNUNET_LOSSPLUG_TRUST_CHECKPOINTS"  # the opt-in a refusal names

TRUST_TRAINERS = '''
from nnunet_lossplug.trainers import (
    nnUNetTrainerDiceSimple,
    nnUNetTrainerDiceSquared,
    nnUNetTrainerRRW,
    nnUNetTrainerRWBoundary,
)


class _OneIteration:
    epochs = 1
    iterations_per_epoch = 1
    val_iterations_per_epoch = 1


class nnUNetTrainerRRW_Trust(_OneIteration, nnUNetTrainerRRW):
    pass


class nnUNetTrainerRWBoundary_Trust(_OneIteration, nnUNetTrainerRWBoundary):
    pass


class nnUNetTrainerDiceSquared_Trust(_OneIteration, nnUNetTrainerDiceSquared):
    pass


class nnUNetTrainerDiceSimple_Trust(_OneIteration, nnUNetTrainerDiceSimple):
    pass
'''


class WritesMarker:
    """A pickle payload: unpickling it calls ``open(marker, "w")``, creating the marker file (nothing else)."""

    def __init__(self, marker: Path):
        self.marker = str(marker)

    def __reduce__(self):
        return (open, (self.marker, "w"))


def _message_lines(text: str) -> list[str]:
    return [line for line in text.strip().splitlines() if line.strip() and not line.startswith("lossplug ")]


def _precompute(copy, *extra: str) -> subprocess.CompletedProcess:
    argv = [console_script("nnunet-lossplug"), "precompute", "-d", str(copy.dataset_id), "-c", "2d", "-np", "1",
            *extra]
    return subprocess.run(argv, env=copy.environ(), capture_output=True, text=True, timeout=300)


@pytest.fixture
def dataset_copy(preprocessed_dataset, request):
    copy = copy_dataset(preprocessed_dataset.preprocessed_folder, 970 + request.param, f"Trust{request.param}")
    yield copy
    copy.remove()


# ---------------------------------------------------------------------------------------------- the cache's files
@pytest.mark.integration
@pytest.mark.parametrize("dataset_copy", [0], indirect=True)
def test_a_symlinked_lock_file_is_refused_and_its_target_keeps_its_bytes(dataset_copy, tmp_path):
    victim = tmp_path / "results_of_years.txt"
    victim.write_text("precious\n")
    source = PreprocessedSource(dataset_copy.name, "nnUNetPlans", "2d", dataset_copy.folder,
                                *_plans_and_dataset_json(dataset_copy.folder))
    folder = CaseCache(source, source_codec("rrw", source)).folder
    folder.parent.mkdir()
    link = folder.parent / f".{folder.name}.lock"
    link.symlink_to(victim)

    result = _precompute(dataset_copy, "--maps", "rrw")

    assert victim.read_text() == "precious\n" and link.is_symlink()
    assert result.returncode == 2, (result.stdout, result.stderr)
    lines = _message_lines(result.stderr)
    assert len(lines) == 1 and "Traceback" not in result.stderr, result.stderr
    assert str(link) in lines[0] and "symbolic link" in lines[0] and f"rm {link}" in lines[0], lines[0]


def _plans_and_dataset_json(folder: Path) -> tuple[dict, dict]:
    return json.loads((folder / "nnUNetPlans.json").read_text()), json.loads((folder / "dataset.json").read_text())


@pytest.mark.integration
@pytest.mark.parametrize("dataset_copy", [1], indirect=True)
def test_a_symlink_in_place_of_a_cached_map_is_refused_never_read_or_replaced(dataset_copy, tmp_path):
    victim = tmp_path / "someone_elses.npy"
    victim.write_bytes(b"not a map")
    assert _precompute(dataset_copy, "--maps", "rrw").returncode == 0
    cache = next((dataset_copy.folder / "lossplug_cache").glob("nnUNetPlans__2d__rrw__*"))
    mapped = sorted(cache.glob("*.npy"))[0]
    mapped.unlink()
    mapped.symlink_to(victim)

    result = _precompute(dataset_copy, "--maps", "rrw")

    assert mapped.is_symlink() and victim.read_bytes() == b"not a map"
    assert result.returncode == 2, (result.stdout, result.stderr)
    lines = _message_lines(result.stderr)
    assert len(lines) == 1 and str(mapped) in lines[0] and "symbolic link" in lines[0], result.stderr


# ---------------------------------------------------------------------------------------------- received pickles
@pytest.mark.integration
@pytest.mark.parametrize("dataset_copy", [2], indirect=True)
def test_a_case_pickle_with_a_payload_is_refused_by_precompute_and_show_maps(dataset_copy, tmp_path):
    marker = tmp_path / "payload_ran"
    properties_file = sorted((dataset_copy.folder / "nnUNetPlans_2d").glob("*.pkl"))[0]
    with open(properties_file, "rb") as handle:
        properties = pickle.load(handle)  # the test's own file, written by nnU-Net's preprocessing
    properties["extra"] = WritesMarker(marker)
    with open(properties_file, "wb") as handle:
        pickle.dump(properties, handle)

    precompute = _precompute(dataset_copy, "--maps", "rrw")
    show = subprocess.run([console_script("nnunet-lossplug"), "show-maps", "-d", str(dataset_copy.dataset_id), "-c",
                           "2d", "--case", properties_file.stem, "-o", str(tmp_path / "maps.png")],
                          env=dataset_copy.environ(), capture_output=True, text=True, timeout=300)

    assert not marker.exists(), "the payload of a received .pkl ran"
    for result in (precompute, show):
        assert result.returncode == 2, (result.stdout, result.stderr)
        lines = _message_lines(result.stderr)
        assert len(lines) == 1 and "Traceback" not in result.stderr, result.stderr
        assert str(properties_file) in lines[0] and "open" in lines[0], lines[0]


# ---------------------------------------------------------------------------------------------- -pretrained_weights
def _network() -> nn.Module:
    return nn.Sequential(nn.Conv2d(1, 2, 3))


def _checkpoint(path: Path, **extra) -> Path:
    torch.save({"network_weights": _network().state_dict(), "trainer_name": "nnUNetTrainer", **extra}, path)
    return path


def _truncated(path: Path) -> Path:
    data = _checkpoint(path).read_bytes()
    path.write_bytes(data[: len(data) // 2])
    return path


@pytest.mark.parametrize(("make", "expected"), [
    (lambda p: p, "no such file"),
    (lambda p: (p.mkdir(), p)[1], "is a folder"),
    (_truncated, "truncated"),
    (lambda p: (p.write_text("<html>404 Not Found</html>"), p)[1], "not a PyTorch checkpoint"),
    (lambda p: (torch.save({"epoch": 3, "notes": "x"}, p), p)[1], "holds no network weights"),
    (lambda p: (torch.save([1, 2], p), p)[1], "holds a list"),
])
def test_pretrained_weights_that_are_not_a_checkpoint_are_named_in_one_line(tmp_path, make, expected):
    path = make(tmp_path / "weights.pth")
    with pytest.raises(PretrainedWeightsError) as raised:
        check_pretrained_weights(_network(), str(path), "nnUNetTrainerRRW", "2d")
    message = str(raised.value)
    assert "\n" not in message and str(path) in message and expected in message, message


def test_pretrained_weights_with_a_payload_never_run_it_unless_trusted(tmp_path, monkeypatch):
    marker = tmp_path / "payload_ran"
    path = _checkpoint(tmp_path / "evil.pth", notes=WritesMarker(marker))
    with pytest.raises(PretrainedWeightsError) as raised:
        check_pretrained_weights(_network(), str(path), "nnUNetTrainerRRW", "2d")
    assert not marker.exists()
    assert str(path) in str(raised.value) and TRUST_ENV_VAR in str(raised.value)
    monkeypatch.setenv(TRUST_ENV_VAR, "1")  # the user's own file: loaded with full trust, as nnU-Net does
    check_pretrained_weights(_network(), str(path), "nnUNetTrainerRRW", "2d")
    assert marker.exists()


def test_numpy_numbers_of_an_nnunet_checkpoint_load_without_trust(tmp_path):
    import numpy as np

    from nnunet_lossplug.nnunet.safe_loading import read_checkpoint

    path = _checkpoint(tmp_path / "final.pth", _best_ema=np.float64(0.5),
                       logging={"mean_fg_dice": [np.float32(0.25)]}, inference_allowed_mirroring_axes=(0, 1))
    saved = read_checkpoint(path)
    assert saved["_best_ema"] == 0.5 and saved["logging"]["mean_fg_dice"][0] == np.float32(0.25)


# ---------------------------------------------------------------------------------------------- nnUNetv2_train
@pytest.fixture(scope="module")
def trust_trainers(preprocessed_dataset, tmp_path_factory):
    """``nnUNetv2_train`` environment with the tiny trainers above, and one finished RRW training (1 iteration)."""
    folder = tmp_path_factory.mktemp("trust_trainers")
    (folder / "trust_trainers.py").write_text(TRUST_TRAINERS)
    env = preprocessed_dataset.folders.environ(
        nnUNet_n_proc_DA="0", nnUNet_def_n_proc="1", nnUNet_compile="f",
        **{discovery.ENV_VAR: discovery.ext_trainer_value(str(folder))})
    env.pop(TRUST_ENV_VAR, None)
    return env


def _train(env: dict, trainer: str, *extra: str) -> subprocess.CompletedProcess:
    argv = [console_script("nnUNetv2_train"), str(DATASET_ID), "2d", "0", "-tr", trainer, "-device", "cpu", *extra]
    return subprocess.run(argv, env=env, capture_output=True, text=True, timeout=600)


def _fold(preprocessed_dataset, trainer: str) -> Path:
    return preprocessed_dataset.folders.results / preprocessed_dataset.name / f"{trainer}__nnUNetPlans__2d" / "fold_0"


def _error_line(result: subprocess.CompletedProcess, error: str) -> str:
    output = result.stdout + result.stderr
    lines = [line for line in output.splitlines() if error in line]
    assert result.returncode != 0 and lines, output[-3000:]
    return lines[-1]


@pytest.mark.integration
def test_nnunetv2_train_refuses_pretrained_weights_with_a_payload_before_unpickling(
        trust_trainers, preprocessed_dataset, tmp_path):
    marker = tmp_path / "payload_ran"
    path = _checkpoint(tmp_path / "evil.pth", notes=WritesMarker(marker))
    result = _train(trust_trainers, "nnUNetTrainerRRW_Trust", "-pretrained_weights", str(path))
    assert not marker.exists(), "the payload of -pretrained_weights ran"
    line = _error_line(result, "PretrainedWeightsError")
    assert str(path) in line and TRUST_ENV_VAR in line, line


@pytest.mark.integration
def test_continuing_another_trainers_checkpoint_is_refused_naming_both(trust_trainers, preprocessed_dataset):
    trained = _train(trust_trainers, "nnUNetTrainerRRW_Trust", "--val_best")  # --val_best: its own checkpoint
    assert trained.returncode == 0, (trained.stdout + trained.stderr)[-3000:]  # loads through the safe reader
    source = _fold(preprocessed_dataset, "nnUNetTrainerRRW_Trust") / "checkpoint_final.pth"
    for trainer in ("nnUNetTrainerRWBoundary_Trust", "nnUNetTrainerDiceSquared_Trust"):  # Adam as RRW; SGD
        fold = _fold(preprocessed_dataset, trainer)
        shutil.rmtree(fold.parent, ignore_errors=True)
        fold.mkdir(parents=True)
        shutil.copy(source, fold / "checkpoint_latest.pth")
        result = _train(trust_trainers, trainer, "--c")
        line = _error_line(result, "CheckpointError")
        assert "nnUNetTrainerRRW_Trust" in line and trainer in line and str(fold / "checkpoint_latest.pth") in line
        assert "KeyError" not in result.stderr and not (fold / "checkpoint_final.pth").exists(), line


@pytest.mark.integration
@pytest.mark.parametrize("dataset_copy", [3], indirect=True)
def test_a_deleted_case_that_the_split_lists_names_nnunets_preprocessing(dataset_copy, trust_trainers):
    data = dataset_copy.folder / "nnUNetPlans_2d"
    cases = sorted(path.stem for path in data.glob("*.pkl"))
    split = [{"train": cases[:-2], "val": cases[-2:]}]  # written before the case goes, as in a real project
    (dataset_copy.folder / "splits_final.json").write_text(json.dumps(split))
    gone = cases[1]
    for path in data.glob(f"{gone}[._]*"):
        path.unlink()
    folders = ("nnUNet_raw", "nnUNet_preprocessed", "nnUNet_results")
    env = {**trust_trainers, **{name: dataset_copy.environ()[name] for name in folders}}
    argv = [console_script("nnUNetv2_train"), str(dataset_copy.dataset_id), "2d", "0", "-tr",
            "nnUNetTrainerDiceSimple_Trust", "-device", "cpu"]
    result = subprocess.run(argv, env=env, capture_output=True, text=True, timeout=600)
    line = _error_line(result, "PreprocessedCaseMissingError")
    assert gone in line and str(data) in line and f"nnUNetv2_preprocess -d {dataset_copy.dataset_id} -c 2d" in line
    assert "--force" not in line, line
