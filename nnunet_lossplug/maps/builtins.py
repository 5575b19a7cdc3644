"""The built-in map kinds, registered through the same :func:`~nnunet_lossplug.maps.register_map_kind` as yours.

Adding a built-in kind: its map function (e.g. in :mod:`~nnunet_lossplug.maps.rw_maps`), one registration
here and a test. The registration says how the map is stored (:mod:`~nnunet_lossplug.maps.encodings`), whether
it has a region meaning, whether it is rectified and what the command-line help shows; nothing else names it.
"""

from __future__ import annotations

from nnunet_lossplug.maps.distances import distance_to_boundary
from nnunet_lossplug.maps.encodings import ComputedValues, FromSegmentation, OwnClassDepth, UnsignedDistance
from nnunet_lossplug.maps.registry import register_map_kind
from nnunet_lossplug.maps.rw_maps import ac_map, boundary_map, cao_map, rrw_map, rrw_reference_map

__all__: list[str] = []

register_map_kind(
    "rrw", rrw_map, encoding=OwnClassDepth(), region_encoding=OwnClassDepth(), rectified=True,
    summary="rectified region-wise map: -d/max d inside each class, 1 outside (Valverde & Tohka 2022, eq. 4)")
register_map_kind(
    "rrw_reference", rrw_reference_map,
    summary="RRW exactly as the Region-wise loss reference code computes it, artefacts included")
register_map_kind(
    "boundary", boundary_map, encoding=UnsignedDistance(), region_encoding=UnsignedDistance(), rectified=False,
    unit="mm", summary="signed distance, -d inside and +d outside, not rectified (Valverde & Tohka 2022, eq. 3)")
register_map_kind(
    "ac", ac_map, encoding=FromSegmentation(0.0, 1.0), region_encoding=FromSegmentation(0.0, 1.0), rectified=True,
    summary="Active Contour map 1 - y (Valverde & Tohka 2022, Prop. 1)")
register_map_kind(
    "cao", cao_map, encoding=FromSegmentation(-1.0, 1.0), region_encoding=FromSegmentation(-1.0, 1.0),
    rectified=True, summary="Cao's map 1 - 2y (Valverde & Tohka 2022, Prop. 4)")
register_map_kind(
    "distance", distance_to_boundary, encoding=ComputedValues(minimum=0.0), region_encoding=ComputedValues(minimum=0.0),
    rectified=False, unit="mm",
    summary="unsigned distance to each class boundary, for the one-sided Hausdorff loss (not an RW map)")
