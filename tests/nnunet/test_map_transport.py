"""Map transport: crop, augmentation, deep supervision, and delivery to the loss.

The data loaders are built exactly as a training builds them: ``nnUNetTrainerRRW`` & co. from
:mod:`nnunet_lossplug.trainers` are instantiated on the session's preprocessed dataset with
``device=cpu``, initialised, and asked for ``get_dataloaders()`` with ``nnUNet_n_proc_DA=0`` (one process).
Every check compares with values computed here independently: whole-case maps with
:func:`nnunet_lossplug.maps.rw_map` on segmentations read with ``blosc2``, crops by plain slicing, shapes from
the plans' pooling strides, the loss by hand from the network's outputs.
"""

from __future__ import annotations

import math
import shutil
from pathlib import Path

import blosc2
import numpy as np
import pytest
import torch
from batchgenerators.utilities.file_and_folder_operations import load_json
from helpers.label_maps import PROBE_OFFSET, onehot_probe
from helpers.nnunet_runs import TINY_SPEC
from torch.nn.functional import interpolate

from nnunet_lossplug.maps import MapKind, rectification_report, rw_map
from nnunet_lossplug.nnunet import CaseCache
from nnunet_lossplug.nnunet.codecs.softmax import codec_for
from nnunet_lossplug.nnunet.map_cache.atomic import write_npy_atomic

pytestmark = pytest.mark.integration

NUM_CLASSES = 4
FLOAT16_ATOL = 2.0**-11  # storage rounding of q = 1 - d/max d in [0, 1)
SMALL_PATCH = {"2d": [32, 32], "3d_fullres": [10, 32, 32]}  # crops inside the slice plane, padding along z in 3D


def scaled_rrw(labels: np.ndarray, num_classes: int, spacing=None) -> np.ndarray:
    """A user's rectified map kind: twice the RRW depth inside, 3 outside."""
    z = rw_map(labels, num_classes, "rrw", spacing=spacing)
    return np.where(z > 0, 3.0, 2.0 * z).astype(np.float32)


def _load_trainers():
    from nnunet_lossplug.trainers import region_wise as module

    class BoundaryWorkerTrainer(module.nnUNetTrainerRWBoundary):
        map_placement = "worker"

    class ProbeTrainer(module.nnUNetTrainerRRW):
        rw_map = MapKind("onehot_probe", onehot_probe)

    class RectifiedUserTrainer(module.nnUNetTrainerRRW):
        rw_map = MapKind("scaled_rrw", scaled_rrw)

    return {"user_rectified": RectifiedUserTrainer, "rrw": module.nnUNetTrainerRRW,
            "rrw_worker": module.nnUNetTrainerRRWOnline,
            "boundary": module.nnUNetTrainerRWBoundary, "boundary_worker": BoundaryWorkerTrainer,
            "probe": ProbeTrainer}


class Loaders:
    """Trainers and their loaders, built once per (trainer, configuration, patch size) for this module."""

    def __init__(self, preprocessed_folder: Path):
        self.folder = preprocessed_folder
        self.trainers = _load_trainers()
        self._built: dict = {}

    def plans(self, configuration: str, patch_size: list[int] | None) -> dict:
        plans = load_json(str(self.folder / "nnUNetPlans.json"))
        if patch_size is not None:
            plans["configurations"][configuration]["patch_size"] = list(patch_size)
        return plans

    def get(self, name: str, configuration: str, patch_size: list[int] | None = None, seed: int = 0):
        key = (name, configuration, tuple(patch_size or ()))
        if key not in self._built:
            plans = self.plans(configuration, patch_size)
            trainer = self.trainers[name]({**plans, "continue_training": False}, configuration, 0,
                                          load_json(str(self.folder / "dataset.json")), device=torch.device("cpu"))
            trainer.initialize()
            if trainer.map_placement == "precomputed":  # what on_train_start does before the loaders start
                CaseCache(trainer.source, trainer.map_codec()).ensure(num_processes=1, progress=False)
            np.random.seed(seed)
            torch.manual_seed(seed)
            gen_tr, gen_val = trainer.get_dataloaders()
            self._built[key] = (trainer, gen_tr, gen_val)
        return self._built[key]


@pytest.fixture(scope="module")
def loaders(preprocessed_dataset):
    cache_folder = preprocessed_dataset.preprocessed_folder / "lossplug_cache"
    shutil.rmtree(cache_folder, ignore_errors=True)
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("nnUNet_n_proc_DA", "0")
        yield Loaders(preprocessed_dataset.preprocessed_folder)
    torch.set_num_threads(threads)
    shutil.rmtree(cache_folder, ignore_errors=True)


# ---------------------------------------------------------------------------------------------- helpers
def _whole_case_labels(folder: Path, configuration: str, identifier: str) -> np.ndarray:
    seg = np.asarray(blosc2.open(str(folder / f"nnUNetPlans_{configuration}" / f"{identifier}_seg.b2nd"))[:])
    labels = seg[0].astype(np.int64)
    labels[labels < 0] = 0
    return labels


def _whole_case_rrw(folder: Path, configuration: str, identifier: str) -> np.ndarray:
    """The RRW map of the whole 3D case with its spacing (what the precompute hook stores, before float16)."""
    return rw_map(_whole_case_labels(folder, configuration, identifier), NUM_CLASSES, "rrw",
                  spacing=TINY_SPEC.spacing)


def _crop(array: np.ndarray, lower: list[int], size: list[int], pad) -> np.ndarray:
    """``array[..., lower:lower+size]`` over the last ``len(size)`` axes, ``pad`` (per leading index) outside."""
    lead = array.shape[: array.ndim - len(size)]
    out = np.empty((*lead, *size), dtype=array.dtype)
    out[...] = np.asarray(pad, dtype=array.dtype).reshape(*lead, *[1] * len(size)) if np.ndim(pad) else pad
    src, dst = [], []
    for lo, n, dim in zip(lower, size, array.shape[len(lead):]):
        a, b = max(lo, 0), min(lo + n, dim)
        src.append(slice(a, b))
        dst.append(slice(a - lo, b - lo))
    out[(..., *dst)] = array[(..., *src)]
    return out


def _expected_level_shapes(plans: dict, configuration: str) -> list[tuple[int, ...]]:
    """Deep-supervision shapes: the patch divided by the cumulative pooling strides, lowest level dropped."""
    config = plans["configurations"][configuration]
    strides = np.asarray(config["architecture"]["arch_kwargs"]["strides"])
    factors = np.cumprod(strides, axis=0)[:-1]
    return [tuple(int(p) // int(f) for p, f in zip(config["patch_size"], row)) for row in factors]


def _levels(trainer, batch: dict) -> tuple[list[torch.Tensor], list[torch.Tensor]]:
    """The batch's targets and the loss's maps decoded in the training process, as dense K-channel maps."""
    targets, maps = trainer.decode_batch(batch)
    assert isinstance(targets, list) and isinstance(maps, list)
    assert len(maps) == len(targets)
    return targets, [z if isinstance(z, torch.Tensor) else z.dense() for z in maps]


def _check_shapes(trainer, batch: dict, plans: dict, configuration: str) -> None:
    targets, maps = _levels(trainer, batch)
    batch_size = plans["configurations"][configuration]["batch_size"]
    shapes = _expected_level_shapes(plans, configuration)
    assert len(targets) == len(shapes)
    assert tuple(batch["data"].shape) == (batch_size, 1, *shapes[0])
    for target, z, shape in zip(targets, maps, shapes):
        assert tuple(target.shape) == (batch_size, 1, *shape)
        assert tuple(z.shape) == (batch_size, NUM_CLASSES, *shape)
        assert z.dtype == torch.float32


def _check_rrw_structure(trainer, batch: dict) -> None:
    """Exactly 1 outside the class, in [-1, 0) inside, rectified: at every level."""
    for target, z in zip(*_levels(trainer, batch)):
        labels = target[:, 0].long()
        assert labels.min() >= 0 and labels.max() < NUM_CLASSES
        for k in range(NUM_CLASSES):
            inside = labels == k
            assert torch.all(z[:, k][~inside] == 1.0)
            assert torch.all(z[:, k][inside] >= -1.0) and torch.all(z[:, k][inside] < 0.0)
        report = rectification_report(z.numpy(), labels.numpy(), batch=True)
        assert report.fraction_unstable == 0.0 and report.n_voxels == labels.numel()


def _own_class_values(z: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    return torch.gather(z, 1, target.long())[:, 0]


# ---------------------------------------------------------------------------------------------- RRW
@pytest.mark.parametrize("configuration", ["2d", "3d_fullres"])
@pytest.mark.parametrize("placement", ["rrw", "rrw_worker"])
def test_rrw_maps_after_training_augmentation(loaders, configuration, placement):
    trainer, gen_tr, gen_val = loaders.get(placement, configuration)
    assert (trainer.map_placement == "precomputed") == (placement == "rrw")
    plans = loaders.plans(configuration, None)
    ranges = {}
    for _ in range(8):
        batch = next(gen_tr)
        _check_shapes(trainer, batch, plans, configuration)
        _check_rrw_structure(trainer, batch)
        if placement == "rrw_worker":  # decoded on the device == the map of the augmented patch, by hand
            targets, maps = _levels(trainer, batch)
            spacing = plans["configurations"][configuration]["spacing"][-(targets[0].ndim - 2):]
            for j in range(targets[0].shape[0]):
                expected = rw_map(targets[0][j, 0].numpy().astype(np.int64), NUM_CLASSES, "rrw", spacing=spacing)
                np.testing.assert_allclose(maps[0][j].numpy(), expected, rtol=0, atol=FLOAT16_ATOL)
        if placement != "rrw":
            continue
        # precomputed: interpolation keeps every value inside the range of the case's map before augmentation
        for j, identifier in enumerate(batch["keys"]):
            if identifier not in ranges:
                labels = _whole_case_labels(loaders.folder, configuration, identifier)
                own = np.take_along_axis(_whole_case_rrw(loaders.folder, configuration, identifier), labels[None],
                                         axis=0)
                ranges[identifier] = (float(own.min()), float(own.max()))
            low, high = ranges[identifier]
            assert low == -1.0 and high < -0.01
            for target, z in zip(*_levels(trainer, batch)):
                values = _own_class_values(z[j:j + 1], target[j:j + 1])
                assert values.min() >= low - 1e-6 and values.max() <= high + FLOAT16_ATOL
    for _ in range(3):
        batch = next(gen_val)
        _check_shapes(trainer, batch, plans, configuration)
        _check_rrw_structure(trainer, batch)


@pytest.mark.parametrize("configuration", ["2d", "3d_fullres"])
@pytest.mark.parametrize("placement", ["boundary", "boundary_worker"])
def test_boundary_maps_take_their_sign_from_the_augmented_segmentation(loaders, configuration, placement):
    trainer, gen_tr, _ = loaders.get(placement, configuration)
    plans = loaders.plans(configuration, None)
    unstable, nonzero = [], []
    for _ in range(4):
        batch = next(gen_tr)
        _check_shapes(trainer, batch, plans, configuration)
        for target, z in zip(*_levels(trainer, batch)):
            labels = target[:, 0].long()
            for k in range(NUM_CLASSES):
                inside = labels == k
                assert torch.all(z[:, k][inside] <= 0.0) and torch.all(z[:, k][~inside] >= 0.0)
            nonzero.append(float(torch.count_nonzero(z)) / z.numel())
            if placement == "boundary":  # never farther than the farthest voxel of the whole case
                bound = math.dist([0, 0, 0], [n * s for n, s in zip((8, 48, 48), TINY_SPEC.spacing)])
                assert z.abs().max() <= bound
            unstable.append(rectification_report(z.numpy(), labels.numpy(), batch=True).fraction_unstable)
    # distances vanish only on classes absent from (worker: the patch; precomputed: the whole case) or filling it
    assert min(nonzero) > (0.5 if placement == "boundary" else 0.0)
    assert max(unstable) > 0  # K = 4 >= 3: RW-Boundary is not rectified (Valverde & Tohka 2022 Fig. 3), as documented


@pytest.mark.parametrize("configuration", ["2d", "3d_fullres"])
def test_a_users_rectified_map_stays_rectified_after_augmentation(loaders, configuration):
    """Found rectified at start, it is carried as (z_t, c_t) and rebuilt from the augmented segmentation."""
    trainer, gen_tr, _ = loaders.get("user_rectified", configuration)
    assert trainer.map_codec().channels() == 2 and trainer.map_codec().rectified
    for _ in range(4):
        for target, z in zip(*_levels(trainer, next(gen_tr))):
            labels = target[:, 0].long()
            report = rectification_report(z.numpy(), labels.numpy(), batch=True)
            assert report.fraction_unstable == 0.0
            own = _own_class_values(z, target)
            padding = (z == 0).all(1)  # outside the image the encoding is 0: a constant map, no gradient
            assert padding.float().mean() < 0.5
            assert own[~padding].min() >= -2.0 and own[~padding].max() < 0.0  # 2 x RRW depth, within range
            other = (z.sum(1) - own)[~padding] / (NUM_CLASSES - 1)  # the common non-true value c_t
            assert other.min() >= 0.0 and other.max() <= 3.0  # 3, blended with the zero padding at the image edge
            assert (other == 3.0).float().mean() > 0.9


def test_the_worker_hands_over_only_the_compact_encoding(loaders):
    """Image channels unchanged; one float16 channel (as int16 bits) beside the full-resolution target."""
    trainer, gen_tr, gen_val = loaders.get("rrw", "2d")
    for batch in (next(gen_tr), next(gen_val)):
        assert set(batch) == {"data", "target", "keys"}
        assert batch["data"].shape[1] == 1
        assert batch["target"][0].dtype == torch.int16 and batch["target"][0].shape[1] == 2
        assert all(level.shape[1] == 1 for level in batch["target"][1:])
        targets, maps = trainer.decode_batch(batch)
        assert targets[0].shape[1] == 1 and all(type(z).__name__ == "RectifiedMap" for z in maps)


# ---------------------------------------------------------------------------------------------- alignment
@pytest.mark.parametrize("configuration", ["2d", "3d_fullres"])
def test_carried_map_follows_every_spatial_augmentation(loaders, configuration):
    """A one-hot probe map, interpolated linearly, must point at the augmented segmentation's label everywhere.

    nnU-Net resamples the segmentation by interpolating each label's indicator on the same grid and taking
    the argmax, so wherever the carried one-hot is unambiguous (> 0.6) its argmax is the augmented label,
    at every level. A map left behind by a rotation, mirror or crop would point elsewhere; a map resampled
    by nearest neighbour would have no fractional values.
    """
    trainer, gen_tr, _ = loaders.get("probe", configuration, SMALL_PATCH[configuration], seed=3)
    plans = loaders.plans(configuration, SMALL_PATCH[configuration])
    fractional = 0
    for _ in range(10):
        batch = next(gen_tr)
        _check_shapes(trainer, batch, plans, configuration)
        for level, (target, probe) in enumerate(zip(*_levels(trainer, batch))):
            top, winner = probe.max(dim=1)
            clear = top > 0.6
            assert clear.float().mean() > 0.5  # unclear: near label borders and in the zero padding
            assert torch.equal(winner[clear], target[:, 0].long()[clear])
            assert probe.min() >= 0.0 and probe.max() <= 1.0 + PROBE_OFFSET * (NUM_CLASSES - 1) + 1e-3
            if level == 0:
                fractional += int(((probe > 0.05) & (probe < 0.95)).sum())
    assert fractional > 0  # some patches were rotated or scaled, and the map was interpolated, not snapped
    # the probe is not rectified: it travels in K channels and the rectification report still says so
    assert trainer.map_codec().channels() == NUM_CLASSES
    targets, maps = _levels(trainer, next(gen_tr))
    assert rectification_report(maps[0].numpy(), targets[0][:, 0].long().numpy(), batch=True).fraction_unstable > 0


@pytest.mark.parametrize("configuration", ["2d", "3d_fullres"])
@pytest.mark.parametrize("patch", ["plans", "small"])
def test_validation_map_is_the_whole_case_map_cropped_with_the_image_box(loaders, configuration, patch):
    patch_size = SMALL_PATCH[configuration] if patch == "small" else None
    trainer, _, gen_val = loaders.get("rrw", configuration, patch_size)
    loader = gen_val.data_loader
    patch_3d = list(loader.patch_size)  # (1, y, x) for the 2d configuration: one slice of the 3D case
    for seed in (11, 12, 13):
        np.random.seed(seed)
        batch = loader.generate_train_batch()
        # replay the loader's random choices (validation transforms draw no random numbers)
        np.random.seed(seed)
        keys = loader.get_indices()
        assert list(keys) == list(batch["keys"])
        targets, maps = _levels(trainer, batch)
        for j, identifier in enumerate(keys):
            data, _, _, properties = trainer.dataset_class(trainer.preprocessed_dataset_folder,
                                                           [identifier]).load_case(identifier)
            lower, _ = loader.get_bbox(data.shape[1:], loader.get_do_oversample(j), properties["class_locations"])
            image = _crop(np.asarray(data[:]), lower, patch_3d, 0.0)
            labels = _crop(_whole_case_labels(loaders.folder, configuration, identifier), lower, patch_3d, 0)
            expected = _crop(_whole_case_rrw(loaders.folder, configuration, identifier), lower, patch_3d,
                             [-1.0] + [1.0] * (NUM_CLASSES - 1))  # outside the image: background, q = 0
            if loader.patch_size_was_2d:
                image, labels, expected = image[:, 0], labels[0], expected[:, 0]
            np.testing.assert_array_equal(batch["data"][j].numpy(), image)  # the replayed box is the image's box
            np.testing.assert_array_equal(targets[0][j, 0].numpy(), labels)
            np.testing.assert_allclose(maps[0][j].numpy(), expected, rtol=0, atol=FLOAT16_ATOL)
            for target, z in zip(targets[1:], maps[1:]):  # deep supervision: the voxels nnU-Net keeps of the target
                shape = list(z.shape[2:])
                low_labels = interpolate(torch.from_numpy(labels)[None, None].float(), shape, mode="nearest-exact")
                np.testing.assert_array_equal(target[j, 0].numpy(), low_labels[0, 0].numpy())
                low = interpolate(torch.from_numpy(expected)[None], shape, mode="nearest-exact")[0]
                np.testing.assert_allclose(z[j].numpy(), low.numpy(), rtol=0, atol=FLOAT16_ATOL)
        if patch == "small" and configuration == "3d_fullres":
            assert patch_3d[0] > 8  # this case exercises the zero padding along z


# ---------------------------------------------------------------------------------------------- to the loss
def test_batch_maps_reach_the_loss_in_train_and_validation_steps(loaders):
    trainer, gen_tr, gen_val = loaders.get("rrw", "2d")
    weights = np.array([1.0 / 2**i for i in range(3)])
    weights[-1] = 0
    weights /= weights.sum()  # nnU-Net's deep-supervision weights for three outputs: (2/3, 1/3, 0)

    def by_hand(batch) -> float:
        with torch.no_grad():
            outputs = trainer.network(batch["data"])
        _, maps = _levels(trainer, batch)  # dense K-channel maps, built from the decoded (z_t, c_t)
        return sum(w * float((torch.softmax(o, 1) * z).mean()) for w, o, z in zip(weights, outputs, maps))

    trainer.network.eval()
    batch = next(gen_val)
    expected = by_hand(batch)
    with torch.no_grad():
        result = trainer.validation_step(batch)
    assert float(result["loss"]) == pytest.approx(expected, rel=1e-5, abs=1e-7)
    assert trainer.loss.pending_maps is None

    trainer.network.train()
    batch = next(gen_tr)
    expected = by_hand(batch)  # before the step changes the weights
    result = trainer.train_step(batch)
    assert float(result["loss"]) == pytest.approx(expected, rel=1e-5, abs=1e-7)


# ---------------------------------------------------------------------------------------------- stale cache, processes
def test_stale_map_shape_stops_the_loader_and_a_rebuild_recovers(loaders):
    trainer, gen_tr, _ = loaders.get("rrw", "2d")
    cache = CaseCache(trainer.source, codec_for("rrw", NUM_CLASSES))
    ids = trainer.source.identifiers()
    for identifier in ids:  # e.g. a cache copied from another preprocessing of the same dataset
        write_npy_atomic(cache.map_path(identifier), np.zeros((1, 2, 3, 4), dtype=np.float16))
    with pytest.raises(RuntimeError) as raised:
        next(gen_tr)
    assert "stale" in str(raised.value) and cache.rebuild_command() in str(raised.value)
    assert cache.rebuild_command().endswith("-c 2d -p nnUNetPlans --maps rrw --force")
    assert cache.invalid_cases(ids) == ids  # the recorded file sizes no longer match
    assert cache.ensure(num_processes=1, progress=False).cases_computed == len(ids)
    _check_rrw_structure(trainer, next(gen_tr))


def test_augmentation_worker_processes_carry_the_maps(loaders, monkeypatch):
    monkeypatch.setenv("nnUNet_n_proc_DA", "2")
    trainer, _, _ = loaders.get("rrw", "2d")
    gen_tr, gen_val = trainer.get_dataloaders()
    try:
        assert type(gen_tr).__name__ == "NonDetMultiThreadedAugmenter"
        plans = loaders.plans("2d", None)
        for generator in (gen_tr, gen_val):
            batch = next(generator)
            _check_shapes(trainer, batch, plans, "2d")
            _check_rrw_structure(trainer, batch)
    finally:
        for generator in (gen_tr, gen_val):
            generator._finish()
