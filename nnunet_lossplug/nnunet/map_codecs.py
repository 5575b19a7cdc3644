"""How an RW map travels from the precompute cache, through augmentation, to the loss.

A map of ``K`` channels is not stored as such. Each map kind has a *codec*: ``encode`` turns the label map
of a whole case into a few channels that can be interpolated like an image (nnU-Net's spatial augmentation
treats them as a ``regression_target``), and ``decode`` rebuilds the ``K``-channel map on a training patch
from those channels **and the augmented segmentation**. The class structure of the map (which voxels are
inside which class) therefore always equals the augmented segmentation voxel for voxel, however the
continuous channels were interpolated; this is how the RRW properties (exactly 1 outside the class,
in [-1, 0) inside, rectified) survive augmentation (issue #4).

Encoded channels are zero outside the image: nnU-Net's cropping pads and its spatial transform samples
outside the image with zeros, so every encoding is chosen such that 0 is a valid, meaningful value.

- ``rrw``: one channel ``q = 1 - d/max d`` (own-class normalised depth, SPEC eq. 4). Decoding gives
  ``z_k = -(1 - q)`` where the segmentation is ``k`` and ``c_t`` (1 by default, the class emphasis of the
  voxel's true class ``t``) elsewhere. ``q = 0`` means "deepest" (``z = -1``), which is what a voxel
  outside the image is. Linear interpolation of ``q`` stays inside the range of ``q`` on the case, so
  decoded values stay inside the range of the map before augmentation.
- ``boundary`` (RW-Boundary, eq. 3): ``K`` channels of unsigned distance; the sign is re-imposed from the
  segmentation (``-D`` inside, ``+D`` outside).
- ``distance`` (one-sided HD loss): ``K`` channels of unsigned distance, decoded as they are.
- ``ac`` and ``cao``: functions of the segmentation alone; nothing is stored.
- any other kind (``rrw_reference``, users' own map functions): all ``K`` channels stored and interpolated
  as they are; the rectification check at trainer start reports what that does to them.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import torch

from nnunet_lossplug.maps import distance_to_boundary, get_map_kind, rw_map
from nnunet_lossplug.maps.registry import MapKind

CODEC_VERSION = 1


def _value_problem(encoded: np.ndarray, low: float | None, high: float | None) -> str | None:
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


def _one_hot(seg: torch.Tensor, num_classes: int) -> torch.Tensor:
    """``(1, *spatial)`` integer segmentation -> ``(K, *spatial)`` boolean one-hot."""
    labels = seg[0].long()
    classes = torch.arange(num_classes, device=seg.device).view(-1, *([1] * labels.ndim))
    return labels.unsqueeze(0) == classes


@dataclass(frozen=True)
class MapCodec:
    """Encoding of one map kind for storage and transport; see the module docstring."""

    kind: MapKind
    num_classes: int

    @property
    def name(self) -> str:
        return self.kind.name

    def channels(self) -> int:
        """Number of stored channels (0: the map is a function of the segmentation alone)."""
        return self.num_classes

    def identity(self) -> str:
        """String that changes whenever stored values would change (cache key)."""
        return f"{type(self).__name__}/v{CODEC_VERSION}/{self.kind.identity()}/K={self.num_classes}"

    def encode(self, labels: np.ndarray, spacing: tuple[float, ...] | None) -> np.ndarray:
        """Whole-case label map ``(*spatial)`` -> stored float16 channels ``(C, *spatial)``."""
        return self.kind.compute(labels, self.num_classes, spacing).astype(np.float16)

    def check_encoded(self, encoded: np.ndarray) -> str | None:
        """What is wrong with stored channels ``(C, *spatial)``, or None: any finite values (distances >= 0)."""
        return _value_problem(encoded, 0.0 if self.kind.name == "distance" else None, None)

    def decode(self, encoded: torch.Tensor | None, seg: torch.Tensor) -> torch.Tensor:
        """Encoded channels ``(C, *spatial)`` and segmentation ``(1, *spatial)`` -> map ``(K, *spatial)``."""
        assert encoded is not None
        return encoded.float()


@dataclass(frozen=True)
class RRWCodec(MapCodec):
    """Rectified RW map (paper 002 eq. 4) stored as one channel of normalised depth."""

    class_values: tuple[float, ...] | None = field(default=None)

    def channels(self) -> int:
        return 1

    def encode(self, labels: np.ndarray, spacing: tuple[float, ...] | None) -> np.ndarray:
        z = rw_map(labels, self.num_classes, kind="rrw", spacing=spacing)
        own = np.take_along_axis(z, labels[None].astype(np.int64), axis=0)  # -d/max d at each voxel's own class
        return (1.0 + own).astype(np.float16)  # q = 1 - d/max d, in [0, 1)

    def check_encoded(self, encoded: np.ndarray) -> str | None:
        """``q`` in [0, 1] (1 only by float16 rounding of a tiny depth)."""
        return _value_problem(encoded, 0.0, 1.0)

    def decode(self, encoded: torch.Tensor | None, seg: torch.Tensor) -> torch.Tensor:
        assert encoded is not None
        inside = -(1.0 - encoded[0].float())
        one_hot = _one_hot(seg, self.num_classes)
        if self.class_values is None:
            outside = torch.ones_like(inside)
        else:
            values = torch.as_tensor(self.class_values, dtype=torch.float32, device=seg.device)
            outside = values[seg[0].long()]
        return torch.where(one_hot, inside.unsqueeze(0), outside.unsqueeze(0))


@dataclass(frozen=True)
class SignedDistanceCodec(MapCodec):
    """RW-Boundary map (paper 002 eq. 3): unsigned distances stored, sign taken from the segmentation."""

    def encode(self, labels: np.ndarray, spacing: tuple[float, ...] | None) -> np.ndarray:
        return distance_to_boundary(labels, self.num_classes, spacing=spacing).astype(np.float16)

    def check_encoded(self, encoded: np.ndarray) -> str | None:
        """Unsigned distances: finite, >= 0."""
        return _value_problem(encoded, 0.0, None)

    def decode(self, encoded: torch.Tensor | None, seg: torch.Tensor) -> torch.Tensor:
        assert encoded is not None
        distance = encoded.float().abs()
        return torch.where(_one_hot(seg, self.num_classes), -distance, distance)


@dataclass(frozen=True)
class SegmentationOnlyCodec(MapCodec):
    """Maps that are a function of the segmentation alone: AC (``1 - y``) and Cao (``1 - 2y``)."""

    inside_value: float = 0.0
    outside_value: float = 1.0

    def channels(self) -> int:
        return 0

    def encode(self, labels: np.ndarray, spacing: tuple[float, ...] | None) -> np.ndarray:
        return np.zeros((0, *labels.shape), dtype=np.float16)

    def decode(self, encoded: torch.Tensor | None, seg: torch.Tensor) -> torch.Tensor:
        one_hot = _one_hot(seg, self.num_classes)
        return torch.where(one_hot, self.inside_value, self.outside_value).float()


def codec_for(kind: str | MapKind, num_classes: int) -> MapCodec:
    """The codec of a registered map kind (by name) or of a :class:`MapKind` object."""
    map_kind = get_map_kind(kind) if isinstance(kind, str) else kind
    if map_kind.name == "rrw":
        class_values = map_kind.params.get("class_values")
        return RRWCodec(map_kind, num_classes, tuple(class_values) if class_values is not None else None)
    if map_kind.name == "boundary":
        return SignedDistanceCodec(map_kind, num_classes)
    if map_kind.name == "ac":
        return SegmentationOnlyCodec(map_kind, num_classes, 0.0, 1.0)
    if map_kind.name == "cao":
        return SegmentationOnlyCodec(map_kind, num_classes, -1.0, 1.0)
    return MapCodec(map_kind, num_classes)
