"""Map codecs for region-based datasets and ignore labels (SPEC §4); :mod:`.softmax` has the contract.

Both decode from nnU-Net's own training target at each deep-supervision level, so the class structure of the
map is the augmented target's, voxel for voxel, as for the softmax codecs:

- :class:`IgnoreLabelCodec` wraps a softmax codec for a dataset with an ignore label. Labels arrive with the
  ignore value (nnU-Net keeps it in the target); for encoding, ignored voxels are a phantom class ``K`` and the
  map is computed for ``K + 1`` classes (ignored voxels count as outside every class), for decoding they are
  set to class 0 (their map values are masked by the loss).
- :class:`RegionCodec` carries each region's two-class map. nnU-Net's target is ``(B, R, *spatial)`` (one
  binary channel per region, ``(B, R + 1, *spatial)`` with the ignore label as the last channel). RRW:
  ``R`` channels, each region's own-side normalised depth ``q = 1 − d/max d`` (inside: depth in the region,
  outside: depth outside it), decoded to a :class:`~nnunet_lossplug.losses.RectifiedMap` of the ``B·R``
  two-class problems with ``z_t = −(1 − q)`` and the other side 1. AC and Cao: nothing stored. RW-Boundary:
  ``2R`` channels of unsigned distance, signed from the target. HD distances: ``2R`` channels as they are.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

import numpy as np
import torch

from nnunet_lossplug.losses.rectified_map import RectifiedMap
from nnunet_lossplug.losses.regions import region_rectified_map
from nnunet_lossplug.maps.regions import region_maps, region_rrw_own_values
from nnunet_lossplug.nnunet.codecs.softmax import CODEC_VERSION, MapCodec

#: map kinds a region-based dataset can train with, and how many channels per region each stores
REGION_KIND_CHANNELS = {"rrw": 1, "ac": 0, "cao": 0, "boundary": 2, "distance": 2}


@dataclass(frozen=True)
class IgnoreLabelCodec(MapCodec):
    """A softmax codec on a dataset with an ignore label (see the module docstring)."""

    inner: MapCodec = None  # type: ignore[assignment]
    ignore_label: int = -1

    @property
    def name(self) -> str:
        return self.inner.name

    @property
    def rectified(self) -> bool:
        return self.inner.rectified

    def channels(self) -> int:
        return self.inner.channels()

    def identity(self) -> str:
        return f"{self.inner.identity()}/ignore={self.ignore_label}"

    def encode(self, labels: np.ndarray, spacing: tuple[float, ...] | None) -> np.ndarray:
        ignored = labels == self.ignore_label
        if not ignored.any():
            return self.inner.encode(labels, spacing)
        widened = np.where(ignored, self.num_classes, labels).astype(np.int16)
        encoded = dataclasses.replace(self.inner, num_classes=self.num_classes + 1).encode(widened, spacing)
        return encoded[: self.num_classes] if self.inner.channels() == self.num_classes else encoded

    def decode(self, encoded: torch.Tensor, labels: torch.Tensor):
        annotated_labels = torch.where(labels == self.ignore_label, torch.zeros_like(labels), labels)
        return self.inner.decode(encoded, annotated_labels)


@dataclass(frozen=True)
class RegionCodec(MapCodec):
    """Each region's two-class map (see the module docstring); ``num_classes`` is the number of labels."""

    regions: tuple[tuple[int, ...], ...] = ()
    ignore_label: int | None = None

    @property
    def rectified(self) -> bool:
        return self.name in ("rrw", "ac", "cao")

    def channels(self) -> int:
        return REGION_KIND_CHANNELS[self.name] * len(self.regions)

    def identity(self) -> str:
        return (f"RegionCodec/v{CODEC_VERSION}/{self.kind.identity()}/regions={list(map(list, self.regions))}/"
                f"ignore={self.ignore_label}")

    def encode(self, labels: np.ndarray, spacing: tuple[float, ...] | None) -> np.ndarray:
        if self.name == "rrw":
            return (region_rrw_own_values(labels, self.regions, spacing, self.ignore_label) + 1.0).astype(np.float16)
        if self.name in ("ac", "cao"):
            return np.zeros((0, *labels.shape), dtype=np.float16)
        maps = region_maps(self.kind, labels, self.regions, spacing, self.ignore_label)
        if self.name == "boundary":
            maps = np.abs(maps)
        return maps.reshape(-1, *labels.shape).astype(np.float16)

    def decode(self, encoded: torch.Tensor, labels: torch.Tensor) -> torch.Tensor | RectifiedMap:
        regions = len(self.regions)
        target = labels[:, :regions]  # a last, ignore channel is the loss's mask, not a region
        if self.name == "rrw":
            return region_rectified_map(target, encoded.float() - 1.0, 1.0)
        if self.name in ("ac", "cao"):
            return region_rectified_map(target, 0.0 if self.name == "ac" else -1.0, 1.0)
        batch, _, *spatial = encoded.shape
        pairs = encoded.float().reshape(batch, regions, 2, *spatial)
        if self.name == "distance":
            return pairs
        distance = pairs.abs()
        inside = target.bool()
        z_in = torch.where(inside, -distance[:, :, 1], distance[:, :, 1])
        z_out = torch.where(inside, distance[:, :, 0], -distance[:, :, 0])
        return torch.stack((z_out, z_in), dim=2)

