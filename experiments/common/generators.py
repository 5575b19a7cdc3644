"""2D synthetic segmentation datasets for the CPU experiments (numpy only, deterministic per seed).

Three generators, one per experiment family:

- :func:`cardiac_slices` -- 4 classes (background, RV, myocardium, LV), the short-axis slices of
  :func:`nnunet_lossplug.demo.synthetic.synthetic_case` volumes (Valverde & Tohka's (2022) ACDC setting in miniature);
  :func:`cardiac_like_images` -- the same anatomy drawn larger in small 2D images (for CPU training);
- :func:`binary_with_empty_images` -- one foreground class, a chosen share of images without target
  (Nguyen et al. 2019 Sec. III-B: no-target images);
- :func:`imbalanced_organs` -- 5 classes of very different sizes (Shen et al.'s (2018) abdominal organs in miniature);
- :func:`organ_lesion_volumes` -- 3 classes (background, an ellipsoid organ, a small spherical lesion), the
  slices of anisotropic 3D volumes whose end slices hold no structure (stray components, Valverde & Tohka 2022).

All return a :class:`Segmentation2d`: images z-scored per image, float32 ``(N, 1, H, W)``; labels int64
``(N, H, W)``; ``groups`` (N,) ints (the volume a slice comes from, or the image index).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy.ndimage import gaussian_filter

from nnunet_lossplug.demo.synthetic import synthetic_case

__all__ = [
    "ORGAN_NAMES",
    "Segmentation2d",
    "binary_with_empty_images",
    "cardiac_like_images",
    "cardiac_slices",
    "ellipse_mask",
    "imbalanced_organs",
    "ORGAN_LESION_NAMES",
    "ORGAN_LESION_SPACING",
    "organ_lesion_volumes",
]

ORGAN_NAMES = ("background", "liver", "kidney", "vessel", "duct")
"""Class names of :func:`imbalanced_organs`, label order."""

ORGAN_LESION_NAMES = ("background", "organ", "lesion")
"""Class names of :func:`organ_lesion_volumes`, label order."""

ORGAN_LESION_SPACING = (3.0, 1.0, 1.0)
"""Voxel size (mm) of :func:`organ_lesion_volumes` along (slices, rows, columns): thick slices."""


@dataclass(frozen=True)
class Segmentation2d:
    """Images ``(N, 1, H, W)`` float32, labels ``(N, H, W)`` int64, groups ``(N,)`` int64 (volume/case id)."""

    images: np.ndarray
    labels: np.ndarray
    groups: np.ndarray

    def __post_init__(self) -> None:
        n = self.images.shape[0]
        labels_ok = self.labels.shape == (n, *self.images.shape[2:])
        if self.images.ndim != 4 or not labels_ok or self.groups.shape != (n,):
            raise ValueError(
                f"expected images (N, 1, H, W), labels (N, H, W) and groups (N,); got images "
                f"{self.images.shape}, labels {self.labels.shape}, groups {self.groups.shape}."
            )

    def __len__(self) -> int:
        return int(self.images.shape[0])

    def subset(self, mask: np.ndarray) -> Segmentation2d:
        """The images selected by a boolean or index array."""
        return Segmentation2d(self.images[mask], self.labels[mask], self.groups[mask])


def _zscore(images: np.ndarray) -> np.ndarray:
    """Per-image zero mean, unit standard deviation over the spatial axes (nnU-Net's MRI normalisation)."""
    axes = tuple(range(1, images.ndim))
    mean = images.mean(axis=axes, keepdims=True)
    std = images.std(axis=axes, keepdims=True)
    return ((images - mean) / np.maximum(std, 1e-6)).astype(np.float32)


def _check_size(size: int, multiple: int = 4) -> None:
    if size < 16 or size % multiple:
        raise ValueError(f"size must be >= 16 and a multiple of {multiple} (U-Net pooling); got {size}.")


def cardiac_slices(num_cases: int, size: int = 40, slices: int = 8, seed: int = 0) -> Segmentation2d:
    """All short-axis slices of ``num_cases`` synthetic cardiac volumes ``(slices, size, size)``.

    Labels 0 background, 1 RV, 2 myocardium, 3 LV, from the project's demo generator
    (:func:`nnunet_lossplug.demo.synthetic.synthetic_case`); 1-2 slices at each end of a volume have no
    foreground (basal/apical slices). ``groups`` is the case index, for per-volume Dice as in Valverde & Tohka 2022.
    """
    _check_size(size)
    if num_cases < 1 or slices < 5:
        raise ValueError(f"need num_cases >= 1 and slices >= 5; got num_cases={num_cases}, slices={slices}.")
    rng = np.random.default_rng(seed)
    images, labels, groups = [], [], []
    for case in range(num_cases):
        image, label = synthetic_case(rng, (slices, size, size))
        images.append(_zscore(image))
        labels.append(label.astype(np.int64))
        groups.append(np.full(slices, case, dtype=np.int64))
    return Segmentation2d(np.concatenate(images)[:, None], np.concatenate(labels), np.concatenate(groups))


def cardiac_like_images(num_images: int, size: int = 32, empty_fraction: float = 0.1,
                        seed: int = 0) -> Segmentation2d:
    """Short-axis-like 2D images with 4 classes, the heart filling a good part of a small image.

    Labels 0 background, 1 RV, 2 myocardium (a ring), 3 LV cavity, as in
    :func:`nnunet_lossplug.demo.synthetic.synthetic_case` but zoomed so that a 32 x 32 image keeps a
    myocardium 2-4 px thick: LV radius 13-20 % of ``size``, wall 8-12 %, the RV a crescent on one side;
    the whole configuration is rotated by up to ±0.6 rad and shifted by up to ±10 % of ``size``. The
    intensities follow the demo generator (background 0.35, RV 0.8, myocardium 0.15, LV 0.9), blurred
    (sigma 1 px), with a smooth bias field and noise of std 0.12. ``empty_fraction`` of the images
    (rounded) hold no heart (like basal/apical slices). ``groups`` is 1 for images with a heart, else 0.
    """
    _check_size(size)
    if not 0.0 <= empty_fraction < 1.0:
        raise ValueError(f"empty_fraction must be in [0, 1); got {empty_fraction}.")
    rng = np.random.default_rng(seed)
    has_heart = np.ones(num_images, dtype=bool)
    has_heart[rng.permutation(num_images)[: int(round(empty_fraction * num_images))]] = False
    yy, xx = np.mgrid[0:size, 0:size].astype(np.float64)
    intensity = np.array([0.35, 0.8, 0.15, 0.9])
    images = np.empty((num_images, size, size), dtype=np.float32)
    labels = np.zeros((num_images, size, size), dtype=np.int64)
    for index in range(num_images):
        label = np.zeros((size, size), dtype=np.int64)
        if has_heart[index]:
            r_lv = rng.uniform(0.13, 0.2) * size
            r_epi = r_lv + rng.uniform(0.08, 0.12) * size
            angle = rng.uniform(-0.6, 0.6)
            cy = size / 2 + rng.uniform(-0.1, 0.1) * size
            cx = size / 2 + r_epi * 0.45 + rng.uniform(-0.1, 0.1) * size
            dist_lv = np.hypot(yy - cy, xx - cx)
            shift = rng.uniform(0.85, 1.1) * r_epi
            rv_cy, rv_cx = cy - shift * np.sin(angle), cx - shift * np.cos(angle)
            du, dv = xx - rv_cx, yy - rv_cy
            u = np.cos(angle) * du + np.sin(angle) * dv
            v = -np.sin(angle) * du + np.cos(angle) * dv
            rv_radius = r_epi * rng.uniform(0.95, 1.15)
            rv = (np.hypot(u, v / rng.uniform(1.2, 1.5)) < rv_radius) & (dist_lv >= r_epi)
            label[rv] = 1
            label[(dist_lv < r_epi) & (dist_lv >= r_lv)] = 2
            label[dist_lv < r_lv] = 3
        bias = 0.1 * np.sin(np.pi * xx / size + rng.uniform(0, np.pi)) * np.cos(np.pi * yy / size)
        image = gaussian_filter(intensity[label], 1.0) + bias + rng.normal(0.0, 0.12, (size, size))
        images[index] = image
        labels[index] = label
    return Segmentation2d(_zscore(images)[:, None], labels, has_heart.astype(np.int64))


def ellipse_mask(shape: tuple[int, int], center: tuple[float, float], radii: tuple[float, float],
             angle: float) -> np.ndarray:
    """Boolean mask of an ellipse with semi-axes ``radii`` (rows, columns) rotated by ``angle`` (radians)."""
    yy, xx = np.mgrid[0 : shape[0], 0 : shape[1]].astype(np.float64)
    dy, dx = yy - center[0], xx - center[1]
    cos, sin = np.cos(angle), np.sin(angle)
    u, v = cos * dx + sin * dy, -sin * dx + cos * dy
    return (u / radii[1]) ** 2 + (v / radii[0]) ** 2 <= 1.0


def binary_with_empty_images(
    num_images: int,
    size: int = 32,
    empty_fraction: float = 0.5,
    confusers: str = "all",
    seed: int = 0,
) -> Segmentation2d:
    """Binary task with no-target images: a bright ellipse (label 1) in a textured, noisy background.

    Each image is background texture (Gaussian-smoothed noise) plus white noise (std 0.35). A target image
    holds one ellipse of random radii 3-7 px and contrast +1.0 to +1.4. Confusers are 1-2 smaller, round
    blobs of contrast +0.5 to +0.8 (label 0) that the network must learn to ignore; ``confusers="all"``
    puts them in every image, ``"empty"`` only in no-target images (as structures that appear only on
    slices without the organ). ``empty_fraction`` of the images (exactly, rounded) have no target; their
    order is shuffled. ``groups`` is 1 for target images and 0 for empty ones.
    """
    _check_size(size)
    if not 0.0 <= empty_fraction < 1.0:
        raise ValueError(f"empty_fraction must be in [0, 1); got {empty_fraction}.")
    if confusers not in ("all", "empty"):
        raise ValueError(f"confusers must be 'all' or 'empty'; got {confusers!r}.")
    rng = np.random.default_rng(seed)
    num_empty = int(round(empty_fraction * num_images))
    has_target = np.ones(num_images, dtype=bool)
    has_target[rng.permutation(num_images)[:num_empty]] = False
    shape = (size, size)
    images = np.empty((num_images, size, size), dtype=np.float32)
    labels = np.zeros((num_images, size, size), dtype=np.int64)
    for index in range(num_images):
        image = 0.6 * gaussian_filter(rng.normal(0.0, 1.0, shape), sigma=3.0) * 3.0
        occupied = np.zeros(shape, dtype=bool)
        if has_target[index]:
            radii = (rng.uniform(3, 7), rng.uniform(3, 7))
            margin = max(radii) + 1
            center = (rng.uniform(margin, size - margin), rng.uniform(margin, size - margin))
            target = ellipse_mask(shape, center, radii, rng.uniform(0, np.pi))
            image += rng.uniform(1.0, 1.4) * gaussian_filter(target.astype(np.float64), 0.7)
            labels[index][target] = 1
            occupied = ellipse_mask(shape, center, (radii[0] + 3, radii[1] + 3), 0.0) | target
        if confusers == "all" or not has_target[index]:
            for _ in range(int(rng.integers(1, 3))):
                for _attempt in range(20):
                    radius = rng.uniform(2, 3.5)
                    low, high = radius + 1, size - radius - 1
                    center = (rng.uniform(low, high), rng.uniform(low, high))
                    blob = ellipse_mask(shape, center, (radius, radius), 0.0)
                    if not (blob & occupied).any():
                        image += rng.uniform(0.5, 0.8) * gaussian_filter(blob.astype(np.float64), 0.7)
                        occupied |= ellipse_mask(shape, center, (radius + 2, radius + 2), 0.0)
                        break
        images[index] = image + rng.normal(0.0, 0.35, shape)
    return Segmentation2d(_zscore(images)[:, None], labels, has_target.astype(np.int64))


def imbalanced_organs(num_images: int, size: int = 32, seed: int = 0) -> Segmentation2d:
    """Five classes of very different sizes, like Shen et al.'s (2018) abdominal CT (sizes in share of the image).

    ``liver`` (1): a large ellipse, about 23 %; ``kidney`` (2): a medium ellipse, about 2-3 %; ``vessel``
    (3): a small disk, about 0.7 %; ``duct`` (4): a thin curved tube 1-2 px wide (about 2 % at 32 x 32,
    less in larger images); the rest is background (0), about 72 %. Intensities overlap in part (liver
    0.55, kidney 0.75, vessel 1.0, duct 0.85 on a background of 0.2, noise std 0.12, a smooth bias field),
    so shape and context matter. Objects do not overlap, except the duct, which is drawn last. ``groups``
    is the image index.
    """
    _check_size(size)
    rng = np.random.default_rng(seed)
    shape = (size, size)
    yy, xx = np.mgrid[0:size, 0:size].astype(np.float64)
    intensity = np.array([0.2, 0.55, 0.75, 1.0, 0.85])
    images = np.empty((num_images, size, size), dtype=np.float32)
    labels = np.zeros((num_images, size, size), dtype=np.int64)
    for index in range(num_images):
        label = np.zeros(shape, dtype=np.int64)
        liver_r = (rng.uniform(0.22, 0.28) * size, rng.uniform(0.25, 0.33) * size)
        liver_c = (size * rng.uniform(0.35, 0.5), size * rng.uniform(0.3, 0.42))
        liver = ellipse_mask(shape, liver_c, liver_r, rng.uniform(-0.4, 0.4))
        label[liver] = 1
        kidney_r = (rng.uniform(0.09, 0.12) * size, rng.uniform(0.06, 0.08) * size)
        kidney_c = (size * rng.uniform(0.6, 0.75), size * rng.uniform(0.68, 0.8))
        kidney = ellipse_mask(shape, kidney_c, kidney_r, rng.uniform(0, np.pi)) & (label == 0)
        label[kidney] = 2
        vessel_r = rng.uniform(0.04, 0.06) * size
        vessel_c = (size * rng.uniform(0.2, 0.35), size * rng.uniform(0.65, 0.8))
        vessel = ellipse_mask(shape, vessel_c, (vessel_r, vessel_r), 0.0) & (label == 0)
        label[vessel] = 3
        # duct: a sine-shaped curve across the lower part of the image, width 1-2 px
        row0, amplitude = size * rng.uniform(0.8, 0.88), rng.uniform(1.5, 3.0)
        centre_row = row0 + amplitude * np.sin(2 * np.pi * xx / size + rng.uniform(0, 2 * np.pi))
        span = (xx > size * rng.uniform(0.1, 0.25)) & (xx < size * rng.uniform(0.65, 0.85))
        duct = (np.abs(yy - centre_row) <= rng.uniform(0.4, 0.7)) & span
        label[duct] = 4
        bias = 0.15 * np.sin(np.pi * (xx / size) + rng.uniform(0, np.pi)) * np.cos(np.pi * yy / size)
        image = gaussian_filter(intensity[label], 0.6) + bias + rng.normal(0.0, 0.12, shape)
        images[index] = image
        labels[index] = label
    return Segmentation2d(_zscore(images)[:, None], labels, np.arange(num_images, dtype=np.int64))


def organ_lesion_volumes(num_cases: int, size: int = 32, slices: int = 12, empty_end_slices: int = 2,
                         seed: int = 0) -> Segmentation2d:
    """The slices of ``num_cases`` 3D volumes ``(slices, size, size)`` with an ellipsoid organ and a small lesion.

    Spacing :data:`ORGAN_LESION_SPACING` (3 x 1 x 1 mm). Labels 0 background, 1 organ (an ellipsoid with
    in-plane semi-axes of 22-32 % of ``size``, randomly rotated and shifted, spanning every slice except
    ``empty_end_slices`` at each end), 2 lesion (a sphere of radius 2.5-3.5 mm next to the organ, at most 3
    slices). The ``empty_end_slices`` first and last slices hold no structure at all. Intensities: background
    0.2 with a smooth texture (std about 0.1), organ 0.6, lesion 1.0, blurred in-plane (sigma 0.7 px), white noise
    of std 0.15. Each volume is z-scored as a whole (nnU-Net's per-case normalisation), so an empty slice
    keeps its low intensity. ``groups`` is the case index; the slices of a case are consecutive, in order.
    """
    _check_size(size)
    if num_cases < 1 or empty_end_slices < 1 or slices < 2 * empty_end_slices + 3:
        raise ValueError(
            f"need num_cases >= 1, empty_end_slices >= 1 and slices >= 2 * empty_end_slices + 3; got "
            f"num_cases={num_cases}, slices={slices}, empty_end_slices={empty_end_slices}."
        )
    rng = np.random.default_rng(seed)
    spacing = np.asarray(ORGAN_LESION_SPACING)
    zz, yy, xx = np.mgrid[0:slices, 0:size, 0:size].astype(np.float64) * spacing[:, None, None, None]
    first, last = empty_end_slices, slices - 1 - empty_end_slices
    intensity = np.array([0.2, 0.6, 1.0])
    images, labels, groups = [], [], []
    for case in range(num_cases):
        label = np.zeros((slices, size, size), dtype=np.int64)
        # organ: its centre and z semi-axis put its first and last voxel centres on the first/last organ slice
        cz = 0.5 * (first + last) * spacing[0]
        rz = (0.5 * (last - first) + 0.45) * spacing[0]
        radii = rng.uniform(0.22, 0.32, 2) * size
        cy, cx = size / 2 + rng.uniform(-0.08, 0.08, 2) * size
        angle = rng.uniform(0, np.pi)
        du, dv = xx - cx, yy - cy
        u = np.cos(angle) * du + np.sin(angle) * dv
        v = -np.sin(angle) * du + np.cos(angle) * dv
        organ = ((zz - cz) / rz) ** 2 + (u / radii[1]) ** 2 + (v / radii[0]) ** 2 <= 1.0
        label[organ] = 1
        # lesion: a sphere beside the organ in a slice of the organ's middle half
        radius = rng.uniform(2.5, 3.5)
        direction = rng.uniform(0, 2 * np.pi)
        reach = max(radii) + radius + rng.uniform(1.0, 2.5)
        ly = float(np.clip(cy + reach * np.sin(direction), radius + 1, size - radius - 2))
        lx = float(np.clip(cx + reach * np.cos(direction), radius + 1, size - radius - 2))
        lz = rng.integers(first + (last - first) // 4, last - (last - first) // 4 + 1) * spacing[0]
        lesion = (zz - lz) ** 2 + (yy - ly) ** 2 + (xx - lx) ** 2 <= radius**2
        label[lesion] = 2
        texture = gaussian_filter(rng.normal(0.0, 1.0, label.shape), sigma=(0, 3.0, 3.0)) * 0.6
        image = gaussian_filter(intensity[label], sigma=(0, 0.7, 0.7)) + texture
        image = image + rng.normal(0.0, 0.15, label.shape)
        images.append(_zscore(image[None])[0])
        labels.append(label)
        groups.append(np.full(slices, case, dtype=np.int64))
    return Segmentation2d(np.concatenate(images)[:, None], np.concatenate(labels), np.concatenate(groups))
