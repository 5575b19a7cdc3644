"""The extension API on its worked examples (examples/custom_loss) and the documented README section.

Unit checks (seconds): the example map against hand values and scipy's Euclidean distance transform, its
rectification, its registered identity; the example Tversky loss against hand values, MONAI's TverskyLoss,
the plugin's SA Dice (α = β = 0.5) and finite differences; the start-up rectification check of
``LossPlugTrainer`` on custom maps (warns with the measured share for a non-rectified map, not for a
rectified one); the documentation's code blocks against the example files.

Integration (``-m integration``, about a minute each): three runs of nnU-Net's own ``nnUNetv2_train`` (one
epoch of two iterations, final validation) and ``nnUNetv2_predict`` on the tiny test dataset, with the trainer
found through ``nnUNet_extTrainer`` in a fresh folder: example 1 (custom map, cache), example 2 (custom loss,
WMLA weights), and the file of docs/plug_in_your_own_loss.md copied verbatim.
"""

from __future__ import annotations

import json
import re
import runpy
import shutil
import subprocess
import sys
import warnings
from pathlib import Path
from types import ModuleType

import numpy as np
import pytest
import SimpleITK as sitk
import torch
from batchgenerators.utilities.file_and_folder_operations import load_json
from helpers import example_modules
from helpers.nnunet_runs import run_cli
from scipy.ndimage import distance_transform_edt

from nnunet_lossplug.discovery import ext_trainer_value
from nnunet_lossplug.losses import CrossEntropyLoss, DiceLoss, LossMixture
from nnunet_lossplug.maps import get_map_kind, rectification_report, unregister_map_kind
from nnunet_lossplug.maps.registry import MapKind

REPO = Path(__file__).resolve().parents[2]
EXAMPLES = REPO / "examples" / "custom_loss"
DOC = REPO / "docs" / "plug_in_your_own_loss.md"
LABEL_SET = {0, 1, 2, 3}
SPACING_3D = (10.0, 1.5, 1.5)

SHORT_RUN = """
class {name}_Test({name}):
    epochs = 1
    iterations_per_epoch = 2
    val_iterations_per_epoch = 1
"""


def load_example(stem: str) -> ModuleType:
    """Import a custom-loss example under its file stem, as nnU-Net does (a top-level module)."""
    return example_modules.load_example(stem, EXAMPLES)


@pytest.fixture(scope="module")
def near_boundary():
    module = load_example("example_near_boundary")
    yield module
    sys.modules.pop("example_near_boundary", None)
    unregister_map_kind("near_boundary")


@pytest.fixture(scope="module")
def tversky():
    module = load_example("example_tversky")
    yield module
    sys.modules.pop("example_tversky", None)


def expected_near_boundary(labels: np.ndarray, num_classes: int, spacing, deepest: float) -> np.ndarray:
    """The example's formula computed independently with scipy's exact Euclidean distance transform."""
    z = np.ones((num_classes, *labels.shape))
    for k in range(num_classes):
        inside = labels == k
        if not inside.any():
            continue
        d = distance_transform_edt(inside, sampling=spacing)[inside]
        closeness = 1 - (d - d.min()) / (d.max() - d.min()) if d.max() > d.min() else np.ones_like(d)
        z[k][inside] = -(deepest + (1 - deepest) * closeness)
    return z


def synthetic_labels(seed: int = 3, shape=(8, 48, 48)) -> np.ndarray:
    from nnunet_lossplug.demo.synthetic import synthetic_case

    return synthetic_case(np.random.default_rng(seed), shape)[1]


def components_below_max(z: np.ndarray, tol: float = 1e-6) -> np.ndarray:
    """Per voxel, how many classes have a map value strictly below the voxel's largest value."""
    return (z < z.max(axis=0, keepdims=True) - tol).sum(axis=0)


# ----------------------------------------------------------------------------------- example 1: map
def test_near_boundary_map_hand_values(near_boundary):
    labels = np.zeros((3, 7), dtype=np.uint8)
    labels[:, 1:6] = 1  # class 1: depths 1, 2, 3, 2, 1 along each row; class 0: two columns; 2 absent
    z = near_boundary.near_boundary_map(labels, 3, None, deepest=0.1)
    row_class1 = [1.0, -1.0, -0.55, -0.1, -0.55, -1.0, 1.0]  # closeness 1, 0.5, 0, 0.5, 1 -> -(0.1 + 0.9 c)
    row_class0 = [-1.0, 1.0, 1.0, 1.0, 1.0, 1.0, -1.0]  # all voxels equally deep: counted as boundary
    np.testing.assert_allclose(z[1], np.tile(row_class1, (3, 1)), atol=1e-6)
    np.testing.assert_allclose(z[0], np.tile(row_class0, (3, 1)), atol=1e-6)
    np.testing.assert_array_equal(z[2], np.ones((3, 7)))
    # min-max normalisation: a uniform change of spacing changes nothing
    scaled = near_boundary.near_boundary_map(labels, 3, (2.0, 2.0), deepest=0.1)
    np.testing.assert_allclose(scaled, z, atol=1e-6)


def test_near_boundary_map_matches_scipy_on_anisotropic_3d(near_boundary):
    labels = synthetic_labels()
    for deepest in (0.0, 0.1, 0.5):
        z = near_boundary.near_boundary_map(labels, 4, SPACING_3D, deepest=deepest)
        np.testing.assert_allclose(z, expected_near_boundary(labels, 4, SPACING_3D, deepest), atol=1e-5)


def test_near_boundary_map_fill_absent_and_bad_parameter(near_boundary):
    z = near_boundary.near_boundary_map(np.zeros((4, 5), dtype=np.uint8), 2, None)
    np.testing.assert_array_equal(z[0], -np.ones((4, 5)))  # fills the image: no boundary, all weight
    np.testing.assert_array_equal(z[1], np.ones((4, 5)))  # absent
    with pytest.raises(ValueError, match=r"deepest must lie in \[0, 1\].*1.5"):
        near_boundary.near_boundary_map(np.zeros((4, 5), dtype=np.uint8), 2, None, deepest=1.5)


def test_near_boundary_map_is_rectified(near_boundary):
    labels = synthetic_labels(seed=5)
    z = get_map_kind("near_boundary").compute(labels, 4, SPACING_3D)
    true_values = np.take_along_axis(z, labels[None].astype(np.int64), axis=0)[0]
    other = np.ones_like(z, dtype=bool)
    np.put_along_axis(other, labels[None].astype(np.int64), False, axis=0)
    assert np.all(z[other] == 1.0)  # every non-true value equal: Valverde & Tohka's (2022) rectification principle
    assert true_values.min() >= -1.0 and true_values.max() <= -0.1 + 1e-6
    assert components_below_max(z).max() == 1
    assert rectification_report(z, labels).fraction_unstable == 0.0


def test_near_boundary_registration_identity(near_boundary):
    kind = get_map_kind("near_boundary")
    assert kind.fn is near_boundary.near_boundary_map and kind.params == {"deepest": 0.1}
    identity = kind.identity()
    assert "fn=example_near_boundary.near_boundary_map" in identity and '"deepest":0.1' in identity
    other = MapKind("near_boundary", near_boundary.near_boundary_map, {"deepest": 0.2})
    assert other.identity() != identity  # a parameter change is a new cache key
    assert near_boundary.nnUNetTrainerNearBoundaryRW.map_kind() is kind


def test_near_boundary_example_prints_rectification_report(near_boundary, capsys):
    kind = unregister_map_kind("near_boundary")  # running the file as __main__ registers it under that module
    try:
        runpy.run_path(str(EXAMPLES / "example_near_boundary.py"), run_name="__main__")
    finally:
        unregister_map_kind("near_boundary")
        from nnunet_lossplug.maps import register_map_kind

        register_map_kind(kind.name, kind.fn, **kind.params)
    out = capsys.readouterr().out
    assert re.search(r"near_boundary:\s+0\.00% \(0/18432\)", out), out
    assert re.search(r"\brrw:\s+0\.00% \(0/18432\)", out), out
    assert re.search(r"boundary:\s+100\.00% \(18432/18432\)", out), out


# ---------------------------------------------------------------------------------- example 2: loss
def test_tversky_hand_value(tversky):
    foreground = torch.tensor([0.9, 0.6, 0.2, 0.1], dtype=torch.float64)
    logits = torch.log(torch.stack([1 - foreground, foreground])).reshape(1, 2, 2, 2)
    target = torch.tensor([1.0, 1.0, 0.0, 0.0], dtype=torch.float64).reshape(1, 1, 2, 2)
    # TP = 0.9 + 0.6, FP = 0.2 + 0.1, FN = 0.1 + 0.4; T = 1.5 / (1.5 + 0.3·0.3 + 0.7·0.5)
    loss = tversky.TverskyLoss(alpha=0.3, beta=0.7, smooth=0.0)(logits, target)
    assert loss.item() == pytest.approx(1 - 1.5 / 1.94, abs=1e-12)


@pytest.mark.parametrize("spatial", [(6, 7), (3, 4, 5)])
def test_tversky_matches_monai(tversky, spatial):
    from monai.losses import TverskyLoss as MonaiTversky

    generator = torch.Generator().manual_seed(0)
    logits = torch.randn(2, 3, *spatial, generator=generator, dtype=torch.float64)
    target = torch.randint(0, 3, (2, 1, *spatial), generator=generator).double()
    ours = tversky.TverskyLoss(alpha=0.3, beta=0.7)(logits, target)
    monai = MonaiTversky(include_background=False, to_onehot_y=True, softmax=True, alpha=0.3, beta=0.7,
                         smooth_nr=1e-5, smooth_dr=1e-5, batch=True)(logits, target)
    assert ours.item() == pytest.approx(monai.item(), abs=1e-10)
    onehot = torch.nn.functional.one_hot(target[:, 0].long(), 3).movedim(-1, 1).double()
    assert tversky.TverskyLoss()(logits, onehot).item() == pytest.approx(ours.item(), abs=1e-12)
    with_bg = MonaiTversky(include_background=True, to_onehot_y=True, softmax=True, alpha=0.3, beta=0.7,
                           smooth_nr=1e-5, smooth_dr=1e-5, batch=True)(logits, target)
    assert tversky.TverskyLoss(do_bg=True)(logits, target).item() == pytest.approx(with_bg.item(), abs=1e-10)


def test_tversky_half_half_is_sa_dice(tversky):
    generator = torch.Generator().manual_seed(1)
    logits = torch.randn(3, 4, 5, 6, generator=generator, dtype=torch.float64)
    target = torch.randint(0, 4, (3, 1, 5, 6), generator=generator).double()
    half = tversky.TverskyLoss(alpha=0.5, beta=0.5, smooth=0.0)(logits, target)
    dice = DiceLoss(batch_dice=True, do_bg=False, smooth=0.0)(logits, target)
    assert half.item() == pytest.approx(dice.item(), abs=1e-12)


def test_tversky_gradcheck_and_bad_input(tversky):
    generator = torch.Generator().manual_seed(2)
    logits = torch.randn(2, 3, 4, 4, generator=generator, dtype=torch.float64, requires_grad=True)
    target = torch.randint(0, 3, (2, 1, 4, 4), generator=generator).double()
    assert torch.autograd.gradcheck(lambda x: tversky.TverskyLoss()(x, target), (logits,))
    with pytest.raises(ValueError, match=r"target must be .* got \(2, 1, 4, 5\)"):
        tversky.TverskyLoss()(logits, torch.zeros(2, 1, 4, 5))
    with pytest.raises(ValueError, match="alpha=-1"):
        tversky.TverskyLoss(alpha=-1)


def test_tversky_trainer_declaration(tversky):
    trainer = tversky.nnUNetTrainerTverskyCE
    assert trainer.ds_weights == (1.0, 0.1, 0.01) and trainer.rw_map is None
    loss = trainer.loss_spec.build(None)
    assert isinstance(loss, LossMixture) and loss.inputs == ("target",)
    assert (loss.first.alpha, loss.first.beta) == (0.3, 0.7)
    generator = torch.Generator().manual_seed(3)
    logits = torch.randn(2, 4, 6, 6, generator=generator, dtype=torch.float64)
    target = torch.randint(0, 4, (2, 1, 6, 6), generator=generator).double()
    expected = tversky.TverskyLoss(0.3, 0.7)(logits, target) + torch.nn.functional.cross_entropy(
        logits, target[:, 0].long())
    assert loss(logits, target).item() == pytest.approx(expected.item(), abs=1e-10)
    assert isinstance(loss.second, CrossEntropyLoss)


# ------------------------------------------------------------------------------ rectification check
def channel_emphasis_map(labels, num_classes, spacing=None, outside=(1.0, 1.0, 1.0, 2.0)):
    """A user's map that emphasises class 3 per channel: -1 on the true class, ``outside[k]`` on channel k.

    Not rectified (Valverde & Tohka 2022 Sec. 3.4): at a voxel of class t != 3 the non-true values are 1, 1 and 2, so a
    softmax concentrated on channel 3 makes three components negative; at a voxel of class 3 they are all 1.
    The unstable share of a case is therefore exactly the share of its voxels not labelled 3.
    """
    z = np.tile(np.asarray(outside, dtype=float).reshape(-1, *[1] * labels.ndim), (1, *labels.shape))
    np.put_along_axis(z, labels[None].astype(np.int64), -1.0, axis=0)
    return z


def make_trainer(cls, dataset):
    plans = load_json(str(dataset.preprocessed_folder / "nnUNetPlans.json"))
    plans["continue_training"] = False  # set by nnUNetv2_train before it builds a trainer
    dataset_json = load_json(str(dataset.preprocessed_folder / "dataset.json"))
    return cls(plans, "2d", 0, dataset_json, device=torch.device("cpu"))


@pytest.mark.integration
def test_rectification_check_warns_with_measured_share_for_non_rectified_map(preprocessed_dataset):
    from nnunet_lossplug.losses import RegionWiseLoss
    from nnunet_lossplug.nnunet import LossPlugTrainer, LossSpec

    class nnUNetTrainerChannelEmphasisCheck(LossPlugTrainer):
        loss_spec = LossSpec(RegionWiseLoss)
        rw_map = MapKind("user_channel_emphasis", channel_emphasis_map)

    trainer = make_trainer(nnUNetTrainerChannelEmphasisCheck, preprocessed_dataset)
    with pytest.warns(UserWarning, match="RW map 'user_channel_emphasis' is not rectified") as record:
        trainer.maps.check_rectification()
    measured = float(re.search(r"up to ([0-9.]+)% of voxels", str(record[0].message)).group(1))

    tr_keys, _ = trainer.do_split()
    shares = []  # hand-derived: the share of voxels not labelled 3, worst of the checked cases
    for identifier in list(tr_keys)[: trainer.rectification_check_cases]:
        labels = trainer.source.labels_for_maps(trainer.source.load_segmentation(identifier), identifier)
        shares.append(float(np.mean(labels != 3)))
    assert 0 < max(shares) < 1
    assert measured == pytest.approx(100 * max(shares), abs=0.006)
    assert "WARNING: RW map 'user_channel_emphasis' is not rectified" in Path(trainer.log_file).read_text()


@pytest.mark.integration
def test_rectification_check_is_silent_for_rectified_custom_map(preprocessed_dataset, near_boundary):
    trainer = make_trainer(near_boundary.nnUNetTrainerNearBoundaryRW, preprocessed_dataset)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        trainer.maps.check_rectification()
    log = Path(trainer.log_file).read_text()
    assert "Rectification check of 'near_boundary' maps: 0 unstable voxels." in log


# ------------------------------------------------------------------------------------ documentation
def doc_blocks(language: str) -> list[str]:
    return re.findall(rf"^```{language}\n(.*?)^```$", DOC.read_text(), flags=re.MULTILINE | re.DOTALL)


def doc_trainer_file() -> tuple[str, str]:
    """The file the README section tells a new user to save: ``(file name, text)``."""
    files = [block for block in doc_blocks("python") if block.startswith("# ~/my_trainers/")]
    assert len(files) == 1, "the section shows exactly one complete trainer file"
    name = re.match(r"# ~/my_trainers/(\w+\.py)\n", files[0]).group(1)
    return name, files[0]


def test_doc_excerpts_are_the_example_files():
    examples = [path.read_text() for path in EXAMPLES.glob("*.py")]
    excerpts = [block for block in doc_blocks("python") if not block.startswith("# ~/my_trainers/")]
    assert len(excerpts) >= 4
    for block in excerpts:
        assert any(block in text for text in examples), f"not in examples/custom_loss:\n{block}"


def test_doc_trainer_file_is_short_and_clean(tmp_path):
    name, text = doc_trainer_file()
    code_lines = [line for line in text.splitlines() if line.strip() and not line.startswith("#")]
    assert len(code_lines) <= 12, f"the documented file should stay about ten lines, has {len(code_lines)}"
    path = tmp_path / name
    path.write_text(text)
    ruff = Path(sys.executable).parent / "ruff"
    if ruff.exists():
        result = subprocess.run([str(ruff), "check", "--no-cache", "--isolated", "--line-length", "110",
                                 "--select", "E,F,W,I,B", str(path)], capture_output=True, text=True,
                                cwd=tmp_path)
        assert result.returncode == 0, result.stdout


# ------------------------------------------------------------------------------------ nnU-Net's CLI
def train_and_predict(dataset, ext_folder: Path, trainer: str, tmp_path: Path, env_value: str | None = None):
    """nnUNetv2_train (1 epoch, 2 iterations), nnUNetv2_predict; ``ext_folder`` in nnUNet_extTrainer."""
    env = dataset.folders.environ(nnUNet_extTrainer=env_value or ext_trainer_value(str(ext_folder)))
    run_cli(["nnUNetv2_train", str(dataset.dataset_id), "2d", "0", "-tr", trainer, "-device", "cpu"], env)
    results = dataset.folders.results / dataset.name / f"{trainer}__nnUNetPlans__2d" / "fold_0"
    checkpoint = torch.load(results / "checkpoint_final.pth", map_location="cpu", weights_only=False)
    assert checkpoint["trainer_name"] == trainer and checkpoint["current_epoch"] == 1
    out = tmp_path / "predictions"
    run_cli(["nnUNetv2_predict", "-i", str(dataset.raw_folder / "imagesTs"), "-o", str(out),
             "-d", str(dataset.dataset_id), "-c", "2d", "-f", "0", "-tr", trainer, "-device", "cpu",
             "--disable_tta", "-npp", "1", "-nps", "1"], env)
    images = sorted((dataset.raw_folder / "imagesTs").glob("*_0000.nii.gz"))
    assert images
    for image in images:
        prediction = out / image.name.replace("_0000.nii.gz", ".nii.gz")
        predicted = sitk.GetArrayFromImage(sitk.ReadImage(str(prediction)))
        assert predicted.shape == sitk.GetArrayFromImage(sitk.ReadImage(str(image))).shape
        assert set(np.unique(predicted).tolist()) <= LABEL_SET
    return results, (results / next(p.name for p in results.glob("training_log_*.txt"))).read_text()


def example_folder(tmp_path: Path, stem: str, trainer: str) -> Path:
    """A fresh trainer folder: the example file as it is, and a one-epoch subclass in a second file."""
    folder = tmp_path / "my_trainers"
    folder.mkdir()
    shutil.copy(EXAMPLES / f"{stem}.py", folder / f"{stem}.py")
    short_run = f"from {stem} import {trainer}\n\n" + SHORT_RUN.format(name=trainer)
    (folder / "short_runs.py").write_text(short_run)
    return folder


@pytest.mark.integration
def test_example_near_boundary_trains_caches_and_predicts(preprocessed_dataset, tmp_path):
    folder = example_folder(tmp_path, "example_near_boundary", "nnUNetTrainerNearBoundaryRW")
    _, log = train_and_predict(preprocessed_dataset, folder, "nnUNetTrainerNearBoundaryRW_Test", tmp_path)
    assert "Rectification check of 'near_boundary' maps: 0 unstable voxels." in log
    assert "maps: near_boundary (precomputed)" in log

    cache_root = preprocessed_dataset.preprocessed_folder / "lossplug_cache"
    caches = list(cache_root.glob("nnUNetPlans__2d__near_boundary__*"))
    assert len(caches) == 1
    codec = json.loads((caches[0] / "cache_key.json").read_text())["codec"]
    assert "fn=example_near_boundary.near_boundary_map" in codec and '"deepest":0.1' in codec

    from nnunet_lossplug.nnunet.map_cache.source import PreprocessedSource

    source = PreprocessedSource.from_names(preprocessed_dataset.dataset_id, "2d")
    identifier = source.identifiers()[0]
    labels = source.labels_for_maps(source.load_segmentation(identifier), identifier)
    stored = np.load(caches[0] / f"{identifier}.npy").astype(np.float64)
    expected = expected_near_boundary(labels, 4, source.case_spacing(identifier), 0.1)
    index = labels[None].astype(np.intp)
    true_value = np.take_along_axis(expected, index, axis=0)[0]
    other_value = np.take_along_axis(expected, (index + 1) % 4, axis=0)[0]
    assert stored.shape == (2, *labels.shape)  # rectified: stored as (z_t, c_t), rebuilt from the segmentation
    np.testing.assert_allclose(stored, np.stack([true_value, other_value]), atol=1e-3)  # stored as float16


@pytest.mark.integration
def test_example_tversky_trains_with_wmla_weights_and_predicts(preprocessed_dataset, tmp_path):
    folder = example_folder(tmp_path, "example_tversky", "nnUNetTrainerTverskyCE")
    _, log = train_and_predict(preprocessed_dataset, folder, "nnUNetTrainerTverskyCE_Test", tmp_path)
    assert "Loss: LossMixture(first=TverskyLoss(alpha=0.3, beta=0.7), second=CrossEntropyLoss()" in log
    assert re.search(r"deep-supervision weights: \[1\.0, 0\.1, 0\.01(, 0\.0)*\]", log), log


@pytest.mark.integration
def test_documented_file_works_verbatim_in_a_fresh_folder(preprocessed_dataset, tmp_path):
    name, text = doc_trainer_file()
    home = tmp_path / "home"
    export = next(line for block in doc_blocks("bash") for line in block.splitlines()
                  if line.startswith("export nnUNet_extTrainer="))
    mkdir = next(line for block in doc_blocks("bash") for line in block.splitlines()
                 if line.startswith("mkdir"))
    shell = subprocess.run(["bash", "-c", f'{mkdir} && {export} && printf %s "$nnUNet_extTrainer"'],
                           env={"HOME": str(home), "PATH": "/usr/bin:/bin"}, capture_output=True, text=True)
    assert shell.returncode == 0, shell.stderr
    folder = home / "my_trainers"
    assert folder.is_dir() and str(folder) in shell.stdout.split(":")
    (folder / name).write_text(text)
    trainer = re.search(r"^class (\w+)\(LossPlugTrainer\):", text, flags=re.MULTILINE).group(1)
    (folder / "short_runs.py").write_text(
        f"from {Path(name).stem} import {trainer}\n\n" + SHORT_RUN.format(name=trainer))
    _, log = train_and_predict(preprocessed_dataset, folder, f"{trainer}_Test", tmp_path,
                               env_value=ext_trainer_value(shell.stdout))
    assert "deep-supervision weights: [1.0, 0.1, 0.01" in log
    assert "Rectification check of 'rrw' maps: 0 unstable voxels." in log
