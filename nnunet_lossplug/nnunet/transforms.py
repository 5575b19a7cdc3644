"""Augmentation-pipeline transforms that turn the carried map into the loss's map at every resolution.

Both run last in nnU-Net's pipeline, in the data-augmentation worker processes (never in the training
process), after nnU-Net has augmented the patch, turned its -1 padding label into background and
downsampled the segmentation for deep supervision. They read ``segmentation`` (a tensor, or a list from
high to low resolution) and write ``regression_target`` with the same structure, one ``(K, *spatial)`` map
per resolution.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch
from batchgeneratorsv2.transforms.base.basic_transform import BasicTransform
from torch.nn.functional import interpolate

from nnunet_lossplug.maps import get_map_kind
from nnunet_lossplug.maps.registry import MapKind
from nnunet_lossplug.nnunet.map_codecs import MapCodec


def _as_levels(segmentation) -> tuple[list[torch.Tensor], bool]:
    if isinstance(segmentation, list):
        return segmentation, True
    return [segmentation], False


def resample_like_segmentation(encoded: torch.Tensor, shape: Sequence[int]) -> torch.Tensor:
    """Downsample encoded channels to a deep-supervision level with nnU-Net's own rule for the segmentation.

    ``DownsampleSegForDSTransform`` uses ``interpolate(mode="nearest-exact")``; using the same call here picks,
    for every low-resolution voxel, the very full-resolution voxel whose label the segmentation kept, so the
    decoded map and the downsampled segmentation agree voxel for voxel.
    """
    if tuple(encoded.shape[1:]) == tuple(shape) or encoded.shape[0] == 0:
        return encoded if encoded.shape[0] else encoded.new_zeros((0, *shape))
    return interpolate(encoded[None].float(), list(shape), mode="nearest-exact")[0]


class DecodeRWMaps(BasicTransform):
    """Precomputed mode: rebuild the ``K``-channel map from the carried encoding and the augmented segmentation."""

    def __init__(self, codec: MapCodec):
        super().__init__()
        self.codec = codec

    def apply(self, data_dict: dict, **params) -> dict:
        levels, is_list = _as_levels(data_dict["segmentation"])
        encoded = data_dict.get("regression_target")
        if encoded is None:
            encoded = torch.zeros((0, *levels[0].shape[1:]))
        maps = [self.codec.decode(resample_like_segmentation(encoded, seg.shape[1:]), seg) for seg in levels]
        data_dict["regression_target"] = maps if is_list else maps[0]
        return data_dict


class ComputeRWMapsPerPatch(BasicTransform):
    """Per-patch mode (the reference code's placement): compute the map from each level's augmented patch.

    Distances are measured on the patch (a 2D slice in the 2d configuration) with the configuration's
    spacing, scaled by the level's downsampling factor, and normalised per patch — not per 3D case, which
    is the difference to the precomputed mode documented in the README.
    """

    def __init__(self, kind: str | MapKind, num_classes: int, spacing: Sequence[float],
                 ds_scales: Sequence[Sequence[float]] | None):
        super().__init__()
        self.kind = get_map_kind(kind) if isinstance(kind, str) else kind
        self.num_classes = num_classes
        self.spacing = tuple(float(s) for s in spacing)
        self.ds_scales = [list(s) for s in ds_scales] if ds_scales is not None else None

    def apply(self, data_dict: dict, **params) -> dict:
        levels, is_list = _as_levels(data_dict["segmentation"])
        scales = self.ds_scales if self.ds_scales is not None else [[1.0] * len(self.spacing)]
        maps = []
        for seg, scale in zip(levels, scales):
            spacing = tuple(sp / sc for sp, sc in zip(self.spacing[-(seg.ndim - 1):], scale[-(seg.ndim - 1):]))
            labels = seg[0].numpy().astype(np.int16)
            maps.append(torch.from_numpy(self.kind.compute(labels, self.num_classes, spacing)))
        data_dict["regression_target"] = maps if is_list else maps[0]
        return data_dict
