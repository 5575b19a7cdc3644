"""One preprocessed case with its RW map exactly as training reads it: from the precompute cache, decoded.

Used by ``nnunet-lossplug show-maps``. The read and decode of the map is :func:`read_case_maps` alone, which
does what a training batch does for a whole case instead of a patch: the cached encoding
(:meth:`CaseCache.load`, the checked reader training uses, with the dataset's codec from
:func:`~nnunet_lossplug.nnunet.codecs.chooser.source_codec`) and the case's training target
(:func:`training_target`: nnU-Net's own validation pipeline, ``-1`` outside the nonzero crop set to background
and, on a region-based dataset, one binary channel per region plus the ignore label's channel) go through the map
kind's codec (:meth:`MapCodec.decode`); a rectified map's ``(t, z_t, c_t)`` is expanded to its channels for the
picture. With exclusive labels (an ignore label or not) that is the ``K``-class map; on a region-based dataset
it is each region's two-class map ``(z_out, z_in)`` (docs/conventions.md#regions). :func:`unstable_fraction` is the
rectification
check on that map.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from nnunetv2.training.nnUNetTrainer.nnUNetTrainer import nnUNetTrainer

from nnunet_lossplug.maps import get_map_kind, rectification_report, region_masks
from nnunet_lossplug.nnunet.codecs.chooser import source_codec
from nnunet_lossplug.nnunet.errors import PreprocessedCaseMissingError
from nnunet_lossplug.nnunet.map_cache.cache import CaseCache
from nnunet_lossplug.nnunet.map_cache.source import PreprocessedSource


@dataclass(frozen=True)
class CaseMaps:
    """``image (C, *spatial)``, ``labels (*spatial)`` (the ignore label kept) and the decoded map ``z`` of one case.

    ``z`` is ``(K, *spatial)`` for exclusive labels; on a region-based dataset (``regions`` set: the label tuple
    of each region, in nnU-Net's order) it is ``(R, 2, *spatial)``, each region's two-class map with channel 0
    ``z_out`` (the "not region" class) and channel 1 ``z_in``.
    """

    identifier: str
    image: np.ndarray
    labels: np.ndarray
    z: np.ndarray
    spacing: tuple[float, ...]
    cache_folder: str
    regions: tuple[tuple[int, ...], ...] | None = None
    ignore_label: int | None = None


def training_target(source: PreprocessedSource, segmentation: np.ndarray) -> torch.Tensor:
    """The full-resolution target nnU-Net's training gives the loss for this segmentation, ``(1, C, *spatial)``.

    Built by nnU-Net's own validation pipeline (``nnUNetTrainer.get_validation_transforms`` without deep
    supervision, with the trainer's label arguments): ``RemoveLabelTansform(-1, 0)`` and, on a region-based
    dataset, ``ConvertSegmentationToRegionsTransform`` (one bool channel per region, the ignore label's last).
    Without augmentation the training pipeline ends in the same steps.
    """
    labels = source.label_manager
    pipeline = nnUNetTrainer.get_validation_transforms(
        None, is_cascaded=False, foreground_labels=labels.foreground_labels,
        regions=labels.foreground_regions if labels.has_regions else None, ignore_label=labels.ignore_label)
    return pipeline(segmentation=torch.from_numpy(np.array(segmentation[:1])))["segmentation"][None]


def read_case_maps(source: PreprocessedSource, kind: str, identifier: str, num_processes: int = 1) -> CaseMaps:
    """The case's map as training reads it; the cache of ``kind`` is built for this case first if needed."""
    if identifier not in source.identifiers():
        known = ", ".join(source.identifiers()[:10])
        raise PreprocessedCaseMissingError(
            f"No preprocessed case '{identifier}' in {source.data_folder} (cases: {known}, ...).")
    get_map_kind(kind)  # an unknown kind fails here with the registry's message listing the known ones
    cache = CaseCache(source, source_codec(kind, source))  # the dataset's codec: regions, ignore label
    cache.ensure([identifier], num_processes=num_processes, progress=False)
    assert cache.codec is not None
    segmentation = source.load_segmentation(identifier)
    labels = source.labels_for_maps(segmentation, identifier)
    encoded = cache.load(identifier, labels.shape)  # the checked reader training uses
    encoded_tensor = (torch.zeros((1, 0, *labels.shape)) if encoded is None
                      else torch.from_numpy(np.array(encoded, dtype=np.float32))[None])
    decoded = cache.codec.decode(encoded_tensor, training_target(source, segmentation))  # on the CPU here
    dense = decoded if isinstance(decoded, torch.Tensor) else decoded.dense()
    regions = source.regions
    # a batch of one: (1, K, *spatial); regions: (1·R, 2, *spatial) rectified, (1, R, 2, *spatial) dense
    z = (dense[0] if regions is None else dense.reshape(len(regions), 2, *labels.shape)).numpy()
    image, _ = source.load_case_arrays(identifier, image=True)  # never unpickles the case's .pkl
    return CaseMaps(identifier, np.asarray(image[:], dtype=np.float32), labels, z,
                    source.case_spacing(identifier), str(cache.folder), regions, source.ignore_label)


def unstable_fraction(maps: CaseMaps) -> float:
    """The rectification check (Valverde & Tohka 2022 Sec. 3.4) on the decoded map, over the annotated voxels.

    The share of annotated voxels (the loss masks ignored ones) whose RW-loss gradient can have more than one
    negative component (:func:`~nnunet_lossplug.maps.rectification_report`). On a region-based dataset it is
    taken over every (region, voxel) pair of the two-class maps, with the region's mask as labels, as the
    trainer's check does; a two-class map has at most one component below its maximum, so that share is 0.
    """
    annotated = np.ones(maps.labels.shape, dtype=bool) if maps.ignore_label is None \
        else maps.labels != maps.ignore_label
    if not annotated.any():
        return 0.0
    if maps.regions is None:
        return rectification_report(maps.z[:, annotated], maps.labels[annotated], batch=False).fraction_unstable
    masks = region_masks(maps.labels, maps.regions)[:, annotated].astype(np.int16)  # (R, N)
    return rectification_report(maps.z[:, :, annotated], masks, batch=True).fraction_unstable
