"""Map codecs for region-based datasets and ignore labels (``docs/conventions.md``); :mod:`.softmax` has the contract.

Both decode from nnU-Net's own training target at each deep-supervision level, so the class structure of the
map is the augmented target's, voxel for voxel, as for the softmax codecs:

- :class:`IgnoreLabelCodec` wraps a softmax codec for a dataset with an ignore label. Labels arrive with the
  ignore value (nnU-Net keeps it in the target); for encoding, ignored voxels are a phantom class ``K`` and the
  map is computed for ``K + 1`` classes (ignored voxels count as outside every class), for decoding they are
  set to class 0 (their map values are masked by the loss).
- :class:`RegionCodec` carries each region's two-class map, one subclass per encoding of the kind's
  ``region_encoding`` (:func:`region_codec_for` looks it up by type). nnU-Net's target is ``(B, R, *spatial)``
  (one binary channel per region, ``(B, R + 1, *spatial)`` with the ignore label as the last channel).
  ``OwnClassDepth`` (RRW): ``R`` channels, each region's own-side normalised depth ``q = 1 − d/max d`` (inside:
  depth in the region, outside: depth outside it), decoded to a :class:`~nnunet_lossplug.losses.RectifiedMap` of
  the ``B·R`` two-class problems with ``z_t = −(1 − q)`` and the other side 1. ``FromSegmentation`` (AC, Cao):
  nothing stored. ``UnsignedDistance`` (RW-Boundary): ``2R`` channels of unsigned distance, signed from the
  target. ``ComputedValues`` (HD distances): ``2R`` channels as they are.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import ClassVar

import numpy as np
import torch

from nnunet_lossplug.losses.rectified_map import RectifiedMap
from nnunet_lossplug.losses.regions import region_rectified_map
from nnunet_lossplug.maps import available_map_kinds, get_map_kind
from nnunet_lossplug.maps.encodings import (
    ComputedValues,
    FromSegmentation,
    MapEncoding,
    OwnClassDepth,
    UnsignedDistance,
)
from nnunet_lossplug.maps.regions import region_maps, region_rrw_own_values
from nnunet_lossplug.maps.registry import MapKind
from nnunet_lossplug.nnunet.codecs.softmax import CODEC_VERSION, MapCodec, value_problem
from nnunet_lossplug.nnunet.errors import TrainerDeclarationError, UnsupportedDatasetError


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

    def check_encoded(self, encoded: np.ndarray) -> str | None:
        return self.inner.check_encoded(encoded)

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
    """Each region's two-class map (see the module docstring); ``num_classes`` is the number of labels.

    The base of one subclass per ``region_encoding``; it holds the regions and the ignore label.
    """

    regions: tuple[tuple[int, ...], ...] = ()
    ignore_label: int | None = None
    #: stored channels per region
    channels_per_region: ClassVar[int] = 0

    @property
    def encoding(self) -> MapEncoding:
        assert self.kind.region_encoding is not None, f"map kind '{self.name}' has no region encoding"
        return self.kind.region_encoding

    def channels(self) -> int:
        return self.channels_per_region * len(self.regions)

    def identity(self) -> str:
        return (f"{type(self).__name__}/v{CODEC_VERSION}/{self.kind.identity()}/"
                f"regions={list(map(list, self.regions))}/ignore={self.ignore_label}")

    def _targets(self, labels: torch.Tensor) -> torch.Tensor:
        """The region channels of nnU-Net's target (a last, ignore channel is the loss's mask, not a region)."""
        return labels[:, :len(self.regions)]

    def _pairs(self, labels: np.ndarray, spacing: tuple[float, ...] | None) -> np.ndarray:
        """Each region's two-class map ``(R, 2, *spatial)`` from the kind's own function."""
        return region_maps(self.kind, labels, self.regions, spacing, self.ignore_label)


@dataclass(frozen=True)
class RegionDepthCodec(RegionCodec):
    """``OwnClassDepth`` (RRW): each region's own-side normalised depth, one channel per region."""

    channels_per_region: ClassVar[int] = 1

    def __post_init__(self) -> None:
        if self.kind.params.get("class_values") is not None:
            raise UnsupportedDatasetError(
                f"Map kind '{self.name}' with class_values has no region meaning: class emphasis is per class, and "
                f"a region-based dataset has two-class problems per region (docs/conventions.md, \"Regions\"). "
                f"Drop class_values, or convert the regions to exclusive labels (drop regions_class_order).")

    @property
    def rectified(self) -> bool:
        return True

    def encode(self, labels: np.ndarray, spacing: tuple[float, ...] | None) -> np.ndarray:
        return (region_rrw_own_values(labels, self.regions, spacing, self.ignore_label) + 1.0).astype(np.float16)

    def check_encoded(self, encoded: np.ndarray) -> str | None:
        return value_problem(encoded, 0.0, 1.0)

    def decode(self, encoded: torch.Tensor, labels: torch.Tensor) -> RectifiedMap:
        return region_rectified_map(self._targets(labels), encoded.float() - 1.0, 1.0)


@dataclass(frozen=True)
class RegionSegmentationOnlyCodec(RegionCodec):
    """``FromSegmentation`` (AC, Cao): nothing stored; ``inside`` / ``outside`` on each region's own / other side."""

    @property
    def rectified(self) -> bool:
        return True

    def encode(self, labels: np.ndarray, spacing: tuple[float, ...] | None) -> np.ndarray:
        return np.zeros((0, *labels.shape), dtype=np.float16)

    def decode(self, encoded: torch.Tensor, labels: torch.Tensor) -> RectifiedMap:
        encoding = self.encoding
        assert isinstance(encoding, FromSegmentation), f"{type(self).__name__} needs a FromSegmentation encoding"
        return region_rectified_map(self._targets(labels), encoding.inside, encoding.outside)


@dataclass(frozen=True)
class RegionSignedDistanceCodec(RegionCodec):
    """``UnsignedDistance`` (RW-Boundary): ``|z_out|, |z_in|`` per region, signed from the target."""

    channels_per_region: ClassVar[int] = 2

    def encode(self, labels: np.ndarray, spacing: tuple[float, ...] | None) -> np.ndarray:
        return np.abs(self._pairs(labels, spacing)).reshape(-1, *labels.shape).astype(np.float16)

    def check_encoded(self, encoded: np.ndarray) -> str | None:
        return value_problem(encoded, 0.0, None)

    def decode(self, encoded: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        batch, _, *spatial = encoded.shape
        distance = encoded.float().reshape(batch, len(self.regions), 2, *spatial).abs()
        inside = self._targets(labels).bool()
        z_in = torch.where(inside, -distance[:, :, 1], distance[:, :, 1])
        z_out = torch.where(inside, distance[:, :, 0], -distance[:, :, 0])
        return torch.stack((z_out, z_in), dim=2)


@dataclass(frozen=True)
class RegionComputedCodec(RegionCodec):
    """``ComputedValues`` (HD distances): each region's two-class map as computed, ``(B, R, 2, *spatial)``."""

    channels_per_region: ClassVar[int] = 2

    def encode(self, labels: np.ndarray, spacing: tuple[float, ...] | None) -> np.ndarray:
        return self._pairs(labels, spacing).reshape(-1, *labels.shape).astype(np.float16)

    def decode(self, encoded: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        batch, _, *spatial = encoded.shape
        return encoded.float().reshape(batch, len(self.regions), 2, *spatial)


#: the region codec class of each ``region_encoding``
REGION_CODEC_OF_ENCODING: dict[type[MapEncoding], type[RegionCodec]] = {
    ComputedValues: RegionComputedCodec,
    OwnClassDepth: RegionDepthCodec,
    UnsignedDistance: RegionSignedDistanceCodec,
    FromSegmentation: RegionSegmentationOnlyCodec,
}


def region_codec_for(kind: MapKind, num_classes: int, regions: tuple[tuple[int, ...], ...],
                     ignore_label: int | None = None) -> RegionCodec:
    """The region codec of ``kind`` by its ``region_encoding``; :class:`UnsupportedDatasetError` without one."""
    codec_class = REGION_CODEC_OF_ENCODING.get(type(kind.region_encoding))
    if codec_class is None and kind.region_encoding is not None:
        raise TrainerDeclarationError(
            f"map kind '{kind.name}': no region codec for its region_encoding {kind.region_encoding!r}; "
            f"use one of {sorted(encoding.__name__ for encoding in REGION_CODEC_OF_ENCODING)}.")
    if codec_class is None:
        with_regions = [name for name in available_map_kinds() if get_map_kind(name).region_encoding is not None]
        raise UnsupportedDatasetError(
            f"Map kind '{kind.name}' has no region meaning: on a region-based dataset the plugin computes two-class "
            f"maps per region for the kinds registered with a region_encoding, {with_regions} "
            f"(docs/conventions.md, \"Regions\"). Use one of those kinds, or convert the regions to exclusive "
            f"labels (drop regions_class_order) to train with this map.")
    return codec_class(kind, num_classes, tuple(tuple(region) for region in regions), ignore_label)
