"""Smoke and property tests of the experiments' building blocks (experiments/common), seconds on one core."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest
import torch

REPO_ROOT = Path(__file__).resolve().parents[2]
if str(REPO_ROOT) not in sys.path:  # the experiments folder is not an installed package
    sys.path.insert(0, str(REPO_ROOT))

from experiments.common.components import (  # noqa: E402
    keep_largest_component_per_class,
    stray_components,
    stray_mask,
)
from experiments.common.generators import (  # noqa: E402
    ORGAN_LESION_SPACING,
    ORGAN_NAMES,
    Segmentation2d,
    binary_with_empty_images,
    cardiac_like_images,
    cardiac_slices,
    imbalanced_organs,
    organ_lesion_volumes,
)
from experiments.common.metrics import dice_per_group, false_positive_voxels, per_image_dice  # noqa: E402
from experiments.common.reporting import markdown_table  # noqa: E402
from experiments.common.training import (  # noqa: E402
    TrainSettings,
    poly_learning_rate,
    predict_labels,
    train_model,
)
from experiments.common.unet2d import TinyUNet2d  # noqa: E402

torch.set_num_threads(1)


# --- generators -----------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    "make, num_classes",
    [
        (lambda seed: cardiac_slices(2, size=32, slices=6, seed=seed), 4),
        (lambda seed: cardiac_like_images(10, size=32, seed=seed), 4),
        (lambda seed: binary_with_empty_images(10, size=32, seed=seed), 2),
        (lambda seed: imbalanced_organs(6, size=32, seed=seed), 5),
    ],
)
def test_generators_are_deterministic_normalised_and_labelled(make, num_classes):
    first, again, other = make(3), make(3), make(4)
    np.testing.assert_array_equal(first.images, again.images)
    np.testing.assert_array_equal(first.labels, again.labels)
    assert not np.array_equal(first.images, other.images)
    assert first.images.dtype == np.float32 and first.labels.dtype == np.int64
    n = len(first)
    assert first.images.shape[:2] == (n, 1) and first.labels.shape == (n, *first.images.shape[2:])
    # z-scored per image
    np.testing.assert_allclose(first.images.mean(axis=(1, 2, 3)), 0.0, atol=1e-4)
    np.testing.assert_allclose(first.images.std(axis=(1, 2, 3)), 1.0, atol=1e-3)
    assert set(np.unique(first.labels)) <= set(range(num_classes))
    assert len(set(np.unique(first.labels))) == num_classes  # every class occurs somewhere


def test_binary_dataset_has_the_requested_share_of_empty_images():
    data = binary_with_empty_images(20, size=32, empty_fraction=0.5, seed=0)
    has_target = data.labels.reshape(20, -1).any(axis=1)
    assert has_target.sum() == 10
    np.testing.assert_array_equal(data.groups, has_target.astype(np.int64))


def test_binary_confusers_brighten_empty_images_but_are_not_labelled():
    # with confusers only in the empty images vs in all images, the empty images are identical in labels
    # (all zero) and the bright confuser blobs exist in the image: the 99th intensity percentile of an empty
    # image is well above that of pure background noise (z-scored values are comparable).
    data = binary_with_empty_images(40, size=32, empty_fraction=0.5, confusers="empty", seed=2)
    empty = data.groups == 0
    assert not data.labels[empty].any()
    assert np.percentile(data.images[empty], 99.5) > 2.0


def test_cardiac_like_images_have_a_ring_between_rv_and_lv():
    data = cardiac_like_images(8, size=32, empty_fraction=0.0, seed=1)
    for labels in data.labels:
        lv = labels == 3
        # the myocardium (2) encloses the LV: every LV pixel's 4-neighbours are LV or myocardium
        padded = np.pad(labels, 1)
        rows, cols = np.nonzero(lv)
        for dr, dc in ((1, 0), (-1, 0), (0, 1), (0, -1)):
            assert set(np.unique(padded[rows + 1 + dr, cols + 1 + dc])) <= {2, 3}


def test_imbalanced_organs_are_ordered_by_size():
    data = imbalanced_organs(20, size=32, seed=0)
    shares = np.bincount(data.labels.ravel(), minlength=5) / data.labels.size
    assert len(ORGAN_NAMES) == 5
    assert shares[0] > shares[1] > shares[2] > shares[3]  # background > liver > kidney > vessel
    assert shares[3] < 0.02 and shares[4] < 0.03 and shares[1] > 0.1


def test_organ_lesion_volumes_have_empty_end_slices_and_both_structures():
    data, again = organ_lesion_volumes(3, size=32, slices=12, empty_end_slices=2, seed=5), \
        organ_lesion_volumes(3, size=32, slices=12, empty_end_slices=2, seed=5)
    np.testing.assert_array_equal(data.images, again.images)
    assert data.images.shape == (36, 1, 32, 32) and data.images.dtype == np.float32
    np.testing.assert_array_equal(data.groups, np.repeat(np.arange(3), 12))
    for case in range(3):
        volume = data.labels[data.groups == case]
        has_structure = volume.reshape(12, -1).any(axis=1)
        np.testing.assert_array_equal(has_structure, [False] * 2 + [True] * 8 + [False] * 2)
        assert (volume == 1).sum() > 500 and 10 < (volume == 2).sum() < 200  # an organ and a small lesion
        image = data.images[data.groups == case, 0]
        # z-scored per volume, not per slice: the empty end slices stay darker than the organ's slices
        assert abs(float(image.mean())) < 1e-4 and abs(float(image.std()) - 1.0) < 1e-3
        assert image[0].mean() < image[6].mean()
    assert ORGAN_LESION_SPACING == (3.0, 1.0, 1.0)
    with pytest.raises(ValueError, match="empty_end_slices"):
        organ_lesion_volumes(1, slices=6, empty_end_slices=2)


def test_segmentation2d_rejects_mismatched_shapes():
    with pytest.raises(ValueError, match="expected images"):
        Segmentation2d(np.zeros((2, 1, 8, 8), np.float32), np.zeros((3, 8, 8), np.int64),
                       np.zeros(2, np.int64))


# --- connected components ---------------------------------------------------------------------------------
def _organ_with_a_stray() -> tuple[np.ndarray, np.ndarray]:
    """Truth: a 2 x 3 x 3 block in slices 2-3 of 6; prediction: the block, a diagonal neighbour of it, and a
    2-voxel stray in the empty slice 0, 2 slices (6 mm) above and 1 column beside the block."""
    truth = np.zeros((6, 8, 8), dtype=np.int64)
    truth[2:4, 2:5, 2:5] = 1
    prediction = truth.copy()
    prediction[4, 5, 5] = 1  # touches the block only diagonally: the same component at full connectivity
    prediction[0, 3, 5:7] = 1
    return prediction, truth


def test_stray_components_hand_computed():
    prediction, truth = _organ_with_a_stray()
    strays = stray_components(prediction, truth, [1, 2], spacing=(3.0, 1.0, 1.0))
    assert len(strays) == 1
    stray = strays[0]
    assert (stray.label, stray.voxels, stray.voxels_in_empty_slices) == (1, 2, 2)
    # nearest true voxel of (0, 3, 5) is (2, 3, 4): sqrt(6^2 + 1^2) mm
    assert stray.distance_mm == pytest.approx(np.sqrt(37.0))
    assert stray_mask(prediction, truth, 1).sum() == 2 and stray_mask(prediction, truth, 1)[0, 3, 5]
    assert not stray_mask(prediction, truth, 2).any()
    with pytest.raises(ValueError, match="share a shape"):
        stray_components(prediction, truth[:5], [1], spacing=(3.0, 1.0, 1.0))


def test_predicted_class_absent_from_the_truth_is_stray_at_infinite_distance():
    truth = np.zeros((3, 4, 4), dtype=np.int64)
    prediction = truth.copy()
    prediction[1, 1, 1] = 2
    (stray,) = stray_components(prediction, truth, [2], spacing=(1.0, 1.0, 1.0))
    assert stray.voxels == 1 and stray.distance_mm == np.inf


def test_keeping_the_largest_component_removes_the_stray_and_nothing_else():
    prediction, truth = _organ_with_a_stray()
    kept = keep_largest_component_per_class(prediction, [1, 2])
    assert not kept[0].any()  # the stray went to background
    np.testing.assert_array_equal(kept[1:], prediction[1:])  # the organ and its diagonal neighbour stay
    assert prediction[0].any()  # the input is not modified


# --- network ---------------------------------------------------------------------------------------------
def test_unet_shapes_and_gradient_flow():
    torch.manual_seed(0)
    model = TinyUNet2d(in_channels=1, num_classes=3, base=4, levels=3)
    images = torch.randn(2, 1, 16, 16)
    logits = model(images)
    assert logits.shape == (2, 3, 16, 16)
    logits.square().mean().backward()
    assert all(p.grad is not None and torch.isfinite(p.grad).all() for p in model.parameters())
    with pytest.raises(ValueError, match="divisible by 4"):
        model(torch.randn(1, 1, 18, 18))


def test_unet_is_translation_consistent_at_the_centre():
    # a fully convolutional net: shifting the input by a multiple of the pooling factor shifts the output
    # (away from the zero-padded border); independent of the implementation details.
    torch.manual_seed(1)
    model = TinyUNet2d(in_channels=1, num_classes=2, base=4, levels=2).eval()
    base = torch.zeros(1, 1, 32, 32)
    base[..., 10:16, 10:16] = torch.randn(6, 6)
    shifted = torch.roll(base, shifts=(4, 4), dims=(2, 3))
    with torch.no_grad():
        a, b = model(base), model(shifted)
    # instance norm statistics are shift invariant for a shift that keeps the content inside the image
    torch.testing.assert_close(a[..., 11:15, 11:15], b[..., 15:19, 15:19], atol=1e-3, rtol=1e-3)
    assert not torch.allclose(a[..., 11:15, 11:15], a[..., 15:19, 15:19], atol=1e-2)  # content moved


# --- training --------------------------------------------------------------------------------------------
def test_poly_learning_rate_matches_nnunet_formula():
    assert poly_learning_rate(0.01, 0, 100, 0.9) == 0.01
    assert poly_learning_rate(0.01, 50, 100, 0.9) == pytest.approx(0.01 * 0.5**0.9)
    assert poly_learning_rate(0.01, 50, 100, None) == 0.01


def test_train_settings_reject_bad_values():
    with pytest.raises(ValueError, match="steps >= 1"):
        TrainSettings(steps=0)
    with pytest.raises(ValueError, match="lr"):
        TrainSettings(steps=1, lr=-1.0)


def test_training_reduces_the_loss_and_is_reproducible():
    # a trivially learnable task: label = pixel brighter than 0
    gen = torch.Generator().manual_seed(0)
    images = torch.randn(16, 1, 16, 16, generator=gen)
    labels = (images[:, 0] > 0).long()

    def run() -> tuple[list[float], np.ndarray]:
        torch.manual_seed(0)
        model = TinyUNet2d(in_channels=1, num_classes=2, base=4, levels=2)
        ce = torch.nn.CrossEntropyLoss()
        losses = train_model(model, images, lambda logits, idx: ce(logits, labels[idx]),
                             TrainSettings(steps=60, batch_size=4, lr=1e-2), seed=0)
        return losses, predict_labels(model, images)

    losses, prediction = run()
    losses_again, prediction_again = run()
    assert losses == losses_again
    np.testing.assert_array_equal(prediction, prediction_again)
    assert np.mean(losses[-5:]) < 0.5 * np.mean(losses[:5])
    assert np.mean(prediction == labels.numpy()) > 0.9


def test_training_visits_every_image_once_per_epoch():
    seen: list[int] = []
    model = TinyUNet2d(in_channels=1, num_classes=2, base=2, levels=2)
    images = torch.randn(6, 1, 8, 8)

    def loss(logits, idx):
        seen.extend(idx.tolist())
        return logits.mean()

    train_model(model, images, loss, TrainSettings(steps=6, batch_size=3), seed=5)
    assert sorted(seen[:6]) == list(range(6)) and sorted(seen[6:12]) == list(range(6))


# --- metrics and tables -----------------------------------------------------------------------------------
def test_dice_per_group_hand_computed():
    truth = np.array([[[1, 1, 0, 0]], [[0, 0, 0, 0]], [[2, 2, 2, 0]]])
    pred = np.array([[[1, 0, 0, 0]], [[1, 0, 0, 0]], [[2, 2, 0, 0]]])
    groups = np.array([0, 0, 1])
    result = dice_per_group(pred, truth, groups, classes=(1, 2))
    # group 0: class 1: |A|=2, |B|=2, |A∩B|=1 -> 0.5; class 2 absent in both -> 1
    # group 1: class 1 absent in both -> 1; class 2: |A|=2, |B|=3, |A∩B|=2 -> 0.8
    np.testing.assert_allclose(result, [[0.5, 1.0], [1.0, 0.8]])


def test_per_image_dice_and_false_positives_hand_computed():
    truth = np.array([[[0, 1, 1]], [[0, 0, 0]]])
    pred = np.array([[[1, 1, 0]], [[1, 1, 0]]])
    np.testing.assert_allclose(per_image_dice(pred, truth), [0.5, 0.0])
    np.testing.assert_array_equal(false_positive_voxels(pred, truth), [1, 2])


def test_markdown_table_format_and_errors():
    text = markdown_table(["a", "b"], [["x", 0.12345], [3, "y"]], digits=2)
    assert text.splitlines() == ["| a | b |", "|---|---|", "| x | 0.12 |", "| 3 | y |"]
    with pytest.raises(ValueError, match="2 headers"):
        markdown_table(["a", "b"], [["only one"]])
