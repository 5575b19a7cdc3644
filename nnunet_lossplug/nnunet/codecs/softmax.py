"""How an RW map travels from the precompute cache, through augmentation, to the loss.

A map of ``K`` channels is not stored as such. Each map kind has a *codec*, chosen by the encoding its
registration declares (:mod:`nnunet_lossplug.maps.encodings`, looked up by type in :func:`codec_for`, never by
the kind's name): ``encode`` turns the label map of a whole case into a few channels that can be interpolated
like an image (nnU-Net's spatial augmentation treats them as a ``regression_target``), and ``decode`` rebuilds
the loss's map **in the training process, on the device**, from those channels **and the augmented
segmentation** of each deep-supervision level. The class structure of the map (which voxels are inside which
class) therefore always equals the augmented segmentation voxel for voxel, however the continuous channels were
interpolated; this is how the RRW properties (exactly ``c_t`` outside the class, in [-1, 0) inside, rectified)
survive augmentation.

Encoded channels are zero outside the image: nnU-Net's cropping pads and its spatial transform samples
outside the image with zeros, so every encoding is chosen such that 0 is a valid, meaningful value.

- ``OwnClassDepth`` (``rrw``): one channel ``q = 1 - d/max d`` (own-class normalised depth, Valverde & Tohka
  2022, eq. 4). Decodes to a :class:`~nnunet_lossplug.losses.RectifiedMap` with ``z_t = -(1 - q)`` and ``c_t``
  (1 by default, the class emphasis of the voxel's true class ``t``): the loss never builds ``K`` channels.
  ``q = 0`` means "deepest" (``z = -1``), which is what a voxel outside the image is.
- ``UnsignedDistance`` (``boundary``, RW-Boundary, eq. 3): ``K`` channels of unsigned distance; the sign is
  re-imposed from the segmentation (``-D`` inside, ``+D`` outside). Not rectified: decoded to ``K`` channels.
- ``FromSegmentation`` (``ac`` and ``cao``): functions of the segmentation alone; nothing is stored; decoded as
  rectified maps.
- ``ComputedValues`` of a kind declared rectified or found rectified by the start-up check (users' own maps,
  ``rrw_reference``): two channels, the true-class value ``z_t`` and the common value ``c_t`` of the other
  classes, decoded like RRW. Outside the image both are 0: the map is constant there, so padded voxels get no
  gradient.
- ``ComputedValues`` otherwise (``distance`` for the one-sided HD loss, non-rectified user maps): all ``K``
  channels stored, interpolated and decoded as they are; the rectification check at trainer start reports what
  that does to them.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch
from torch.nn.functional import interpolate

from nnunet_lossplug.losses import RectifiedMap
from nnunet_lossplug.maps import distance_to_boundary, get_map_kind, rrw_true_class_values
from nnunet_lossplug.maps.encodings import (
    ComputedValues,
    FromSegmentation,
    MapEncoding,
    OwnClassDepth,
    UnsignedDistance,
)
from nnunet_lossplug.maps.registry import MapKind
from nnunet_lossplug.nnunet.errors import MapNotRectifiedError, TrainerDeclarationError

CODEC_VERSION = 1

def _one_hot(labels: torch.Tensor, num_classes: int) -> torch.Tensor:
    """``(B, 1, *spatial)`` integer labels -> ``(B, K, *spatial)`` boolean one-hot."""
    classes = torch.arange(num_classes, device=labels.device).view(1, -1, *[1] * (labels.ndim - 2))
    return labels.long() == classes


def resample_like_segmentation(encoded: torch.Tensor, shape: Sequence[int]) -> torch.Tensor:
    """Batched encoded channels ``(B, C, *spatial)`` at a deep-supervision level, by nnU-Net's rule for targets.

    ``DownsampleSegForDSTransform`` uses ``interpolate(mode="nearest-exact")``; the same call here picks, for
    every low-resolution voxel, the very full-resolution voxel whose label the segmentation kept, so the
    decoded map and the downsampled segmentation agree voxel for voxel.
    """
    if tuple(encoded.shape[2:]) == tuple(shape) or encoded.shape[1] == 0:
        return encoded if encoded.shape[1] else encoded.new_zeros((encoded.shape[0], 0, *shape))
    return interpolate(encoded.float(), list(shape), mode="nearest-exact")


def value_problem(encoded: np.ndarray, low: float | None, high: float | None) -> str | None:
    """``None`` if every value of ``encoded`` is finite and in ``[low, high]``, else what is wrong (one line)."""
    for channel in range(encoded.shape[0]):
        values = np.asarray(encoded[channel], dtype=np.float32)  # float32 reductions: 2.5x faster than float16
        if not values.size:
            continue
        lowest, highest = float(values.min()), float(values.max())  # NaN propagates through min and max
        if not (np.isfinite(lowest) and np.isfinite(highest)):
            bad = values.size - int(np.count_nonzero(np.isfinite(values)))
            return f"{bad} non-finite values (NaN or infinity) in channel {channel}"
        if (low is not None and lowest < low) or (high is not None and highest > high):
            return (f"values out of the codec's range [{low}, {high if high is not None else 'inf'}] in channel "
                    f"{channel} (min {lowest:g}, max {highest:g})")
    return None


@dataclass(frozen=True)
class MapCodec:
    """Encoding of one map kind for storage and transport: all ``K`` channels as they are."""

    kind: MapKind
    num_classes: int

    @property
    def name(self) -> str:
        return self.kind.name

    @property
    def encoding(self) -> MapEncoding:
        """The kind's declared encoding that this codec implements (``region_encoding`` for region codecs)."""
        return self.kind.encoding

    @property
    def rectified(self) -> bool:
        """Whether :meth:`decode` returns a :class:`RectifiedMap` (``O(N)`` loss memory)."""
        return False

    def channels(self) -> int:
        """Number of stored channels (0: the map is a function of the segmentation alone)."""
        return self.num_classes

    def identity(self) -> str:
        """String that changes whenever stored values would change (cache key)."""
        return f"{type(self).__name__}/v{CODEC_VERSION}/{self.kind.identity()}/K={self.num_classes}"

    def encode(self, labels: np.ndarray, spacing: tuple[float, ...] | None) -> np.ndarray:
        """Whole-case (or patch) label map ``(*spatial)`` -> stored float16 channels ``(C, *spatial)``."""
        return self.kind.compute(labels, self.num_classes, spacing).astype(np.float16)

    def check_encoded(self, encoded: np.ndarray) -> str | None:
        """What is wrong with stored channels ``(C, *spatial)``, or None: finite, >= the encoding's ``minimum``."""
        encoding = self.encoding
        return value_problem(encoded, encoding.minimum if isinstance(encoding, ComputedValues) else None, None)

    def decode(self, encoded: torch.Tensor, labels: torch.Tensor) -> torch.Tensor | RectifiedMap:
        """Encoded channels ``(B, C, *spatial)`` and labels ``(B, 1, *spatial)`` -> the loss's map."""
        return encoded.float()


@dataclass(frozen=True)
class RRWCodec(MapCodec):
    """``OwnClassDepth``: the rectified RW map (Valverde & Tohka 2022, eq. 4) as one channel ``q = 1 - d/max d``.

    The class emphasis ``c_t`` is the kind's ``class_values`` parameter (``rrw_map``'s; 1 without it).
    """

    @property
    def class_values(self) -> tuple[float, ...] | None:
        values = self.kind.params.get("class_values")
        return tuple(values) if values is not None else None

    @property
    def rectified(self) -> bool:
        return True

    def channels(self) -> int:
        return 1

    def encode(self, labels: np.ndarray, spacing: tuple[float, ...] | None) -> np.ndarray:
        own = rrw_true_class_values(labels, self.num_classes, spacing)  # -d/max d, one EDT pass, any K
        own += 1.0
        return own[None].astype(np.float16)  # q in [0, 1)

    def check_encoded(self, encoded: np.ndarray) -> str | None:
        """``q`` in [0, 1] (1 only by float16 rounding of a tiny depth)."""
        return value_problem(encoded, 0.0, 1.0)

    def decode(self, encoded: torch.Tensor, labels: torch.Tensor) -> RectifiedMap:
        true_value = encoded[:, :1].float() - 1.0
        if self.class_values is None:
            return RectifiedMap(labels, true_value, 1.0, self.num_classes)
        values = torch.as_tensor(self.class_values, dtype=torch.float32, device=labels.device)
        return RectifiedMap(labels, true_value, values[labels.long()], self.num_classes)


@dataclass(frozen=True)
class RectifiedValuesCodec(MapCodec):
    """A rectified map of any kind stored as two channels: ``z_t`` and the common non-true value ``c_t``."""

    @property
    def rectified(self) -> bool:
        return True

    def channels(self) -> int:
        return 2

    def encode(self, labels: np.ndarray, spacing: tuple[float, ...] | None) -> np.ndarray:
        z = self.kind.compute(labels, self.num_classes, spacing)
        index = labels[None].astype(np.intp)
        true_value = np.take_along_axis(z, index, axis=0)[0]
        other = np.take_along_axis(z, (index + 1) % self.num_classes, axis=0)[0]
        non_true = np.ones(z.shape, dtype=bool)
        np.put_along_axis(non_true, index, False, axis=0)
        if not np.all(np.where(non_true, z, other[None]) == other[None]):
            raise MapNotRectifiedError(
                f"map kind '{self.name}' was found rectified on the start-up check's cases but is not on a case "
                f"of shape {labels.shape}: its non-true-class values differ at some voxel. Raise the trainer's "
                f"rectification_check_cases so the check covers such cases, or make the map rectified."
            )
        return np.stack([true_value, other]).astype(np.float16)

    def decode(self, encoded: torch.Tensor, labels: torch.Tensor) -> RectifiedMap:
        encoded = encoded.float()
        return RectifiedMap(labels, encoded[:, :1], encoded[:, 1:2], self.num_classes)


@dataclass(frozen=True)
class SignedDistanceCodec(MapCodec):
    """``UnsignedDistance``: RW-Boundary map (Valverde & Tohka 2022, eq. 3), ``|z|`` stored, sign from the labels."""

    def encode(self, labels: np.ndarray, spacing: tuple[float, ...] | None) -> np.ndarray:
        return distance_to_boundary(labels, self.num_classes, spacing=spacing).astype(np.float16)

    def check_encoded(self, encoded: np.ndarray) -> str | None:
        """Unsigned distances: finite, >= 0."""
        return value_problem(encoded, 0.0, None)

    def decode(self, encoded: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        distance = encoded.float().abs()
        return torch.where(_one_hot(labels, self.num_classes), -distance, distance)


@dataclass(frozen=True)
class SegmentationOnlyCodec(MapCodec):
    """``FromSegmentation``: a function of the segmentation alone, e.g. AC (``1 - y``) and Cao (``1 - 2y``)."""

    @property
    def rectified(self) -> bool:
        return True

    def channels(self) -> int:
        return 0

    def encode(self, labels: np.ndarray, spacing: tuple[float, ...] | None) -> np.ndarray:
        return np.zeros((0, *labels.shape), dtype=np.float16)

    def decode(self, encoded: torch.Tensor, labels: torch.Tensor) -> RectifiedMap:
        encoding = self.encoding
        assert isinstance(encoding, FromSegmentation), f"{type(self).__name__} needs a FromSegmentation encoding"
        return RectifiedMap(labels, encoding.inside, encoding.outside, self.num_classes)


#: the codec class of each encoding (a rectified map's ``ComputedValues``: :class:`RectifiedValuesCodec`)
CODEC_OF_ENCODING: dict[type[MapEncoding], type[MapCodec]] = {
    ComputedValues: MapCodec,
    OwnClassDepth: RRWCodec,
    UnsignedDistance: SignedDistanceCodec,
    FromSegmentation: SegmentationOnlyCodec,
}


def codec_for(kind: str | MapKind, num_classes: int, rectified: bool = False) -> MapCodec:
    """The codec of a registered map kind (by name) or of a :class:`MapKind` object, by its ``encoding``.

    ``rectified`` is the start-up rectification check's verdict; it is used for a kind that does not declare
    ``rectified`` itself and matters for the ``ComputedValues`` encoding only: a rectified map is stored in two
    channels, any other in ``K``.
    """
    map_kind = get_map_kind(kind) if isinstance(kind, str) else kind
    codec_class = CODEC_OF_ENCODING.get(type(map_kind.encoding))
    if codec_class is None:
        raise TrainerDeclarationError(
            f"map kind '{map_kind.name}': no codec for its encoding {map_kind.encoding!r}; use one of "
            f"{sorted(encoding.__name__ for encoding in CODEC_OF_ENCODING)}.")
    is_rectified = map_kind.rectified if map_kind.rectified is not None else rectified
    if codec_class is MapCodec and is_rectified:
        codec_class = RectifiedValuesCodec
    return codec_class(map_kind, num_classes)


def decode_levels(codec: MapCodec, encoded: torch.Tensor, targets: Sequence[torch.Tensor]) -> list:
    """The loss's map at every deep-supervision level: ``encoded`` (full resolution) picked like each target."""
    return [codec.decode(resample_like_segmentation(encoded, target.shape[2:]), target) for target in targets]
