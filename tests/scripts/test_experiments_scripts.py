"""The experiment scripts: their helpers checked by hand, and each ``--quick`` run end to end (seconds)."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest
import torch

REPO_ROOT = Path(__file__).resolve().parents[2]
if str(REPO_ROOT) not in sys.path:  # the experiments folder is not an installed package
    sys.path.insert(0, str(REPO_ROOT))

from experiments import (  # noqa: E402
    class_weighted_dice,
    convergence_stability,
    gradient_signs,
    sa_dice_empty_images,
    stray_components,
)
from experiments.common.unet2d import TinyUNet2d  # noqa: E402
from nnunet_lossplug.losses import DiceLoss  # noqa: E402
from nnunet_lossplug.maps import gradient_sign_counts, simplex_grid  # noqa: E402

torch.set_num_threads(1)


@pytest.mark.parametrize("z", [(1.0, 3.0, -1.0), (2.0, 2.5, -0.5), (4.0, 1.0, -2.0), (1.0, 1.0, -1.0)])
def test_closed_form_share_matches_a_fine_simplex_lattice(z):
    # (b - a) / (b - c) derived by hand; the lattice count uses the library's gradient signs
    z = np.array(z)
    lattice = np.mean(gradient_sign_counts(z, simplex_grid(3, 400)) > 1)
    assert gradient_signs.closed_form_share(z, true_class=2) == pytest.approx(lattice, abs=0.01)


def test_closed_form_share_hand_value():
    assert gradient_signs.closed_form_share(np.array([1.0, 3.0, -1.0]), true_class=2) == pytest.approx(0.5)
    assert gradient_signs.closed_form_share(np.array([1.0, 1.0, -0.3]), true_class=2) == 0.0


def test_three_class_image_has_three_touching_classes():
    labels = gradient_signs.three_class_image(32)
    assert set(np.unique(labels)) == {0, 1, 2}
    # classes 1 and 2 touch: some class-2 pixel has a class-1 horizontal neighbour
    assert np.any((labels[:, 1:] == 2) & (labels[:, :-1] == 1))


def test_empirical_cdf_steps_hand_computed():
    x, y = convergence_stability.empirical_cdf(np.array([0.9, 0.5]))
    np.testing.assert_allclose(x, [0.0, 0.5, 0.5, 0.9, 0.9, 1.0])
    np.testing.assert_allclose(y, [0.0, 0.0, 0.5, 0.5, 1.0, 1.0])


def test_empty_images_get_no_gradient_from_per_image_dice_but_do_from_sa_dice():
    # Nguyen et al. 2019 Sec. III-B/C, the mechanism of experiment 3
    torch.manual_seed(0)
    model = TinyUNet2d(in_channels=1, num_classes=2, base=2, levels=2)
    images = torch.randn(4, 1, 8, 8)
    labels = torch.zeros(4, 8, 8, dtype=torch.long)
    labels[:2, 2:5, 2:5] = 1
    has_target = torch.tensor([True, True, False, False])
    share = sa_dice_empty_images.empty_image_gradient_share
    assert share(DiceLoss(batch_dice=False, do_bg=False), model, images, labels, has_target) == 0.0
    assert share(DiceLoss(batch_dice=True, do_bg=False), model, images, labels, has_target) > 0.05
    assert 0 < share(DiceLoss(batch_dice=False, do_bg=False, smooth=1.0), model, images, labels, has_target)


def test_rw_gradient_at_a_confidently_wrong_voxel_vanishes_and_cross_entropy_does_not():
    # Valverde & Tohka 2022, eq. 2: s_k (z_k - Σ s_j z_j) / numel -> 0 as the wrong class's s -> 1; CE: s - y
    labels = torch.zeros(1, 8, 8, dtype=torch.long)
    labels[0, 5:, 5:] = 1
    rrw = torch.from_numpy(stray_components.rw_map(labels[0].numpy(), 3, "rrw"))[None].double()
    voxel, p = (0, 0, 0), np.array([0.5, 0.999])
    losses = stray_components.gradient_losses(labels, rrw, rrw, {"mixture": 0.01})
    rw = stray_components.probe_gradient(losses["RW, RRW map of the 3D volume"], labels, voxel, 1, p)
    ce = stray_components.probe_gradient(losses["CE"], labels, voxel, 1, p)
    mixture = stray_components.probe_gradient(losses["mixture"], labels, voxel, 1, p)
    # by hand at p = 0.5, z = (-1, 1, 1), s = (0.495, 0.5, 0.005): z̄ = 0.01, g = s (z - z̄) / K
    s, z = np.array([0.495, 0.5, 0.005]), np.array([-1.0, 1.0, 1.0])
    assert rw[0] == pytest.approx(np.linalg.norm(s * (z - s @ z)) / 3, rel=1e-6)
    assert rw[1] < 0.01 * rw[0]  # vanishes
    assert ce[1] == pytest.approx(np.linalg.norm([0.99e-3 - 1, 0.999, 1e-5]), rel=1e-6)  # ||s - y|| -> sqrt 2
    assert mixture[1] == pytest.approx(0.01 * ce[1] + 0.99 * rw[1], rel=0.05)  # α·CE keeps a floor


@pytest.mark.parametrize(
    "module, extra",
    [
        (gradient_signs, []),
        (convergence_stability, ["--seeds", "2"]),
        (sa_dice_empty_images, []),
        (class_weighted_dice, []),
        (stray_components, ["--seeds", "1"]),
    ],
)
def test_quick_run_writes_figure_and_table(module, extra, tmp_path, capsys):
    assert module.main(["--quick", "--out-dir", str(tmp_path), *extra]) == 0
    png, md = tmp_path / f"{module.NAME}.png", tmp_path / f"{module.NAME}.md"
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and png.stat().st_size > 10_000
    text = md.read_text()
    assert text.startswith("# ") and "|---|" in text and "--quick" in text
    assert "|---|" in capsys.readouterr().out  # the table is printed too
