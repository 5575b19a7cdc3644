"""Region-wise maps and distances from label maps (pure numpy/scipy/edt; no torch, no nnU-Net).

Public API:

- :func:`rw_map` -- the map of any registered kind by name: RRW (Valverde & Tohka 2022, eq. 4), RW-Boundary
  (eq. 3), AC (``1 - y``), Cao (``1 - 2y``), ...; the per-kind functions :func:`rrw_map`,
  :func:`rrw_reference_map`, :func:`boundary_map`, :func:`ac_map`, :func:`cao_map`.
- :func:`distance_to_boundary` -- unsigned distance to each class boundary (one-sided HD loss).
- :func:`rectification_report` -- exact check of the rectification principle (Sec. 3.3-3.4);
  :func:`gradient_sign_counts`, :func:`unstable_share`, :func:`simplex_grid`, :func:`rw_logit_gradient`
  reproduce Fig. 2 for a single voxel.
- :func:`region_maps`, :func:`region_rrw_own_values`, :func:`compute_with_ignore` -- maps per region
  (nnU-Net's region-based datasets) and with ignored voxels counted as outside every class
  (docs/conventions.md#regions).
- :class:`MapKind`, :func:`register_map_kind`, :func:`get_map_kind`, :func:`available_map_kinds`,
  :func:`unregister_map_kind` -- registry of built-in and user map functions with cache identities; the
  built-ins are registered in :mod:`.builtins`, each with an encoding of :mod:`.encodings` (``ComputedValues``,
  ``OwnClassDepth``, ``UnsignedDistance``, ``FromSegmentation``) that says how it is stored.
"""

from nnunet_lossplug.maps import builtins as _builtins  # noqa: F401 - registers the built-in kinds
from nnunet_lossplug.maps.distances import distance_to_boundary
from nnunet_lossplug.maps.encodings import (
    ComputedValues,
    FromSegmentation,
    MapEncoding,
    OwnClassDepth,
    UnsignedDistance,
)
from nnunet_lossplug.maps.rectification import (
    RectificationReport,
    gradient_sign_counts,
    max_negative_components,
    rectification_report,
    rw_logit_gradient,
    simplex_grid,
    unstable_share,
)
from nnunet_lossplug.maps.regions import (
    compute_with_ignore,
    region_maps,
    region_masks,
    region_rrw_own_values,
)
from nnunet_lossplug.maps.registry import (
    MapFunction,
    MapKind,
    available_map_kinds,
    get_map_kind,
    register_map_kind,
    rw_map,
    unregister_map_kind,
)
from nnunet_lossplug.maps.rw_maps import (
    ac_map,
    boundary_map,
    cao_map,
    rrw_map,
    rrw_reference_map,
    rrw_true_class_values,
)

__all__ = [
    "ComputedValues",
    "FromSegmentation",
    "MapEncoding",
    "MapFunction",
    "MapKind",
    "OwnClassDepth",
    "RectificationReport",
    "ac_map",
    "available_map_kinds",
    "boundary_map",
    "cao_map",
    "compute_with_ignore",
    "distance_to_boundary",
    "get_map_kind",
    "gradient_sign_counts",
    "max_negative_components",
    "rectification_report",
    "region_maps",
    "region_masks",
    "region_rrw_own_values",
    "register_map_kind",
    "rrw_map",
    "rrw_true_class_values",
    "rrw_reference_map",
    "rw_logit_gradient",
    "rw_map",
    "simplex_grid",
    "UnsignedDistance",
    "unregister_map_kind",
    "unstable_share",
]
