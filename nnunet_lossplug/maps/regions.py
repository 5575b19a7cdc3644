"""RW maps for nnU-Net's region-based datasets and for ignore labels (docs/conventions.md#regions), in numpy.

**Regions.** Region ``r`` is a set of labels; its target is ``y_r = [label ∈ region r]``. Each region is a
two-class problem {outside = 0, inside = 1}, so its map is any map kind of :mod:`nnunet_lossplug.maps`
computed for ``K = 2`` on ``y_r``: channel 0 ``z^out``, channel 1 ``z^in`` (:func:`region_maps`, shape
``(R, 2, *spatial)``). For RRW: ``z^in = −d_in / max d_in`` inside and 1 outside, ``z^out = −d_out / max d_out``
outside and 1 inside; the one channel that is not constant, the value of each voxel's own side, is
:func:`region_rrw_own_values` ``(R, *spatial)`` (a signed normalised depth, the form the trainers carry).

**Ignore label.** An ignored voxel counts as **outside every class** when distances are computed: it is given
a phantom class of its own (index ``K``) and the maps are computed for ``K + 1`` classes, of which the first
``K`` channels are kept (:func:`compute_with_ignore`). The depth of class ``k`` is then measured to the nearest
voxel not annotated as ``k``; the values at ignored voxels are irrelevant (the losses mask them). With
regions, an ignored voxel is neither inside nor outside any region (the phantom class 2 of each region's
problem).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from nnunet_lossplug.maps.registry import MapKind, get_map_kind
from nnunet_lossplug.maps.rw_maps import rrw_true_class_values

__all__ = [
    "compute_with_ignore",
    "region_labels",
    "region_maps",
    "region_masks",
    "region_rrw_own_values",
]

Region = int | Sequence[int]


def _labels_of(region: Region) -> list[int]:
    return [int(region)] if np.isscalar(region) else [int(label) for label in region]


def region_masks(labels: np.ndarray, regions: Sequence[Region]) -> np.ndarray:
    """``(R, *spatial)`` bool: ``y_r = [labels ∈ region r]`` (nnU-Net's ``ConvertSegmentationToRegionsTransform``)."""
    labels = np.asarray(labels)
    return np.stack([np.isin(labels, _labels_of(region)) for region in regions]) if len(regions) else \
        np.zeros((0, *labels.shape), dtype=bool)


def region_labels(labels: np.ndarray, region: Region, ignore_label: int | None = None) -> np.ndarray:
    """One region's two-class label map, int16: 0 outside, 1 inside, 2 at ignored voxels (if any)."""
    labels = np.asarray(labels)
    two_class = np.isin(labels, _labels_of(region)).astype(np.int16)
    if ignore_label is not None:
        two_class[labels == ignore_label] = 2
    return two_class


def compute_with_ignore(
    kind: str | MapKind,
    labels: np.ndarray,
    num_classes: int,
    spacing: Sequence[float] | None = None,
    ignore_label: int | None = None,
) -> np.ndarray:
    """A map kind's ``(K, *spatial)`` map where voxels labelled ``ignore_label`` count as outside every class.

    The ignored voxels get the phantom class ``K``, the map is computed for ``K + 1`` classes and its first
    ``K`` channels are returned. Without ignored voxels this is ``kind.compute(labels, K, spacing)``.
    """
    map_kind = get_map_kind(kind) if isinstance(kind, str) else kind
    labels = np.asarray(labels)
    if ignore_label is None or not np.any(labels == ignore_label):
        return map_kind.compute(labels, num_classes, spacing)
    widened = np.where(labels == ignore_label, num_classes, labels).astype(np.int16)
    return map_kind.compute(widened, num_classes + 1, spacing)[:num_classes]


def region_maps(
    kind: str | MapKind,
    labels: np.ndarray,
    regions: Sequence[Region],
    spacing: Sequence[float] | None = None,
    ignore_label: int | None = None,
) -> np.ndarray:
    """Each region's two-class map ``(R, 2, *spatial)``, float32: channel 0 ``z^out``, channel 1 ``z^in``.

    ``kind`` is any map kind (``"rrw"``, ``"boundary"``, ``"ac"``, ``"cao"``, ``"distance"``, a user's kind),
    computed for ``K = 2`` on ``y_r`` with ignored voxels as outside both sides (docs/conventions.md#ignore-labels).
    This is the dense
    ``rw_map`` of the losses' region mode (``RegionWiseLoss(regions=True)``).
    """
    maps = [
        compute_with_ignore(kind, region_labels(labels, region, ignore_label), 2, spacing,
                            2 if ignore_label is not None else None)
        for region in regions
    ]
    shape = (0, 2, *np.shape(labels))
    return np.stack(maps).astype(np.float32) if maps else np.zeros(shape, dtype=np.float32)


def region_rrw_own_values(
    labels: np.ndarray,
    regions: Sequence[Region],
    spacing: Sequence[float] | None = None,
    ignore_label: int | None = None,
) -> np.ndarray:
    """The RRW value of each voxel's own side per region, ``(R, *spatial)`` float32 in ``[−1, 0)``.

    ``−d_in/max d_in`` inside region ``r``, ``−d_out/max d_out`` outside: ``region_maps("rrw", ...)[r, y_r(i), i]``
    without the two channels (the other side's value is 1). Values at ignored voxels are meaningless.
    """
    own = []
    for region in regions:
        two_class = region_labels(labels, region, ignore_label)
        num_classes = 3 if ignore_label is not None else 2
        own.append(rrw_true_class_values(two_class, num_classes, spacing))
    return np.stack(own).astype(np.float32) if own else np.zeros((0, *np.shape(labels)), dtype=np.float32)
