"""Steps 2 to 4 of the map's ride (see :mod:`~nnunet_lossplug.nnunet.map_transport`): the transforms at both ends
of nnU-Net's augmentation pipeline, and the split of the packed target in the training process."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch
from batchgeneratorsv2.transforms.base.basic_transform import BasicTransform

from nnunet_lossplug.nnunet.codecs.softmax import MapCodec


class DetachEncoding(BasicTransform):
    """First transform: the last ``channels`` image channels become the ``regression_target``."""

    def __init__(self, channels: int):
        super().__init__()
        self.channels = channels

    def apply(self, data_dict: dict, **params) -> dict:
        image = data_dict["image"]
        data_dict["image"] = image[: image.shape[0] - self.channels]
        data_dict["regression_target"] = image[image.shape[0] - self.channels:]
        return data_dict


def _pack(data_dict: dict, encoded: torch.Tensor) -> dict:
    """Append ``encoded`` (float) as float16 bit patterns to the full-resolution int16 segmentation."""
    segmentation = data_dict["segmentation"]
    levels = segmentation if isinstance(segmentation, list) else [segmentation]
    bits = encoded.to(torch.float16).contiguous().view(torch.int16)
    levels = [torch.cat([levels[0].to(torch.int16), bits]), *levels[1:]]
    data_dict["segmentation"] = levels if isinstance(segmentation, list) else levels[0]
    data_dict.pop("regression_target", None)
    return data_dict


class PackEncoding(BasicTransform):
    """Last transform (precomputed maps): the augmented ``regression_target`` rides in the target."""

    def apply(self, data_dict: dict, **params) -> dict:
        return _pack(data_dict, data_dict["regression_target"])


class EncodePerPatch(BasicTransform):
    """Last transform (maps computed per patch, the reference code's placement): encode the augmented patch.

    The codec encodes the full-resolution augmented segmentation of the patch (a 2D slice in the 2d
    configuration) with the configuration's spacing; distances are normalised per patch, not per 3D case.
    """

    def __init__(self, codec: MapCodec, spacing: Sequence[float]):
        super().__init__()
        self.codec = codec
        self.spacing = tuple(float(s) for s in spacing)

    def apply(self, data_dict: dict, **params) -> dict:
        segmentation = data_dict["segmentation"]
        labels = (segmentation[0] if isinstance(segmentation, list) else segmentation)[0]
        spacing = self.spacing[-labels.ndim:]
        encoded = self.codec.encode(labels.numpy().astype(np.int16), spacing)
        return _pack(data_dict, torch.from_numpy(encoded))


def unpack_target(target, channels: int) -> tuple[list[torch.Tensor], torch.Tensor]:
    """Split a packed batch target into its levels ``(B, 1, *spatial)`` and the encoding ``(B, C, *spatial)``."""
    levels = list(target) if isinstance(target, (list, tuple)) else [target]
    full = levels[0]
    encoded = full[:, full.shape[1] - channels:].contiguous().view(torch.float16)
    levels[0] = full[:, : full.shape[1] - channels]
    return levels, encoded
