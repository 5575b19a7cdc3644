"""How a map kind is stored per case and rebuilt in training: plain data, one class per encoding.

A registration (:func:`~nnunet_lossplug.maps.register_map_kind`) names an encoding for datasets of ``K``
exclusive classes (``encoding``) and one for nnU-Net's region-based datasets (``region_encoding``; ``None``: the
kind has no region meaning there). The codecs of :mod:`nnunet_lossplug.nnunet.codecs` are looked up by the
encoding's type, never by the kind's name, so a new kind with an existing encoding needs no codec code, and
this module needs neither torch nor nnU-Net.

An encoding other than :class:`ComputedValues` is a claim about the map: its codec rebuilds the map from the
formula the encoding states (it does not call the map function in training), so register a kind with it only
when the map function computes exactly that formula. Region-based datasets: each region is a two-class problem
(``docs/conventions.md``, "Regions"), and the same encodings apply to each region's two-class map.
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["ComputedValues", "FromSegmentation", "MapEncoding", "OwnClassDepth", "UnsignedDistance"]


@dataclass(frozen=True)
class MapEncoding:
    """Base of the encodings (an abstract tag; the subclasses say what is stored)."""


@dataclass(frozen=True)
class ComputedValues(MapEncoding):
    """The map function's output as it is, for any map (the default of a registration).

    ``K`` classes: a rectified map (declared, or found so by the trainer's start-up check) is stored as two
    values per voxel, its true-class value ``z_t`` and the common value ``c_t`` of the other classes; any other
    map as all ``K`` channels. Regions: each region's two-class map, two channels per region.

    Attributes:
        minimum: lowest value the map takes (distances: 0); the cache's integrity check refuses stored values
            below it. ``None``: any finite value.
    """

    minimum: float | None = None


@dataclass(frozen=True)
class OwnClassDepth(MapEncoding):
    """The rectified region-wise map of Valverde & Tohka 2022 (eq. 4), stored as one channel.

    ``z_t(i) = -d_t(i) / max_{j∈Ω_t} d_t(j)`` on the voxel's true class ``t`` and ``c_t`` on every other class,
    with ``c_t`` the kind's ``class_values`` parameter (1 without it). Stored: the normalised depth
    ``q = 1 + z_t`` in ``[0, 1)``, one channel (one per region).
    """


@dataclass(frozen=True)
class UnsignedDistance(MapEncoding):
    """A signed distance map (Valverde & Tohka 2022, eq. 3): ``-d_k`` inside class ``k``, ``+d_k`` outside.

    Stored: the unsigned distances ``|z_k|``, ``K`` channels (two per region); the sign is taken from the
    segmentation when the map is rebuilt.
    """


@dataclass(frozen=True)
class FromSegmentation(MapEncoding):
    """A map that is a function of the segmentation alone: ``inside`` on the true class, ``outside`` elsewhere.

    Nothing is stored. Active Contour ``z = 1 - y`` is ``FromSegmentation(0.0, 1.0)``, Cao's ``z = 1 - 2y``
    ``FromSegmentation(-1.0, 1.0)`` (Valverde & Tohka 2022, Prop. 1 and 4).
    """

    inside: float
    outside: float
