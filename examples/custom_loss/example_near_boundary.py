"""Example 1: your own RW map function, registered and trained with the plugin's RW loss.

Valverde & Tohka's (2022) rectified map (RRW, eq. 4) gives each voxel of class t the value ``-d/max d``: the deepest
voxels get the strongest push. Caliva et al. (ref. [24] of Valverde & Tohka 2022, "Distance map loss penalty term")
put more weight near the boundary instead, and Valverde & Tohka 2022 Sec. 6 names that as a use of RW maps ("assigning
higher importance to the segmentation boundaries ... vascular trees"). This file declares such a map,
registers it and trains with it; everything else (precompute hook, cache, deep supervision, checkpoints,
prediction) is the plugin's. The non-true-class values stay 1, so the map is rectified (Sec. 3.4).

Use: list this folder in nnUNet_extTrainer, then train and predict with nnU-Net's own commands::

    export nnUNet_extTrainer="$nnUNet_extTrainer:/path/to/examples/custom_loss"
    nnUNetv2_train DATASET 2d 0 -tr nnUNetTrainerNearBoundaryRW
    nnUNetv2_predict -i IMAGES -o OUT -d DATASET -c 2d -f 0 -tr nnUNetTrainerNearBoundaryRW

``python example_near_boundary.py`` prints the rectification report of this map beside RRW and RW-Boundary.
"""

import numpy as np

from nnunet_lossplug.losses import RegionWiseLoss
from nnunet_lossplug.maps import distance_to_boundary, register_map_kind
from nnunet_lossplug.nnunet import LossPlugTrainer, LossSpec, adam


def near_boundary_map(labels, num_classes, spacing=None, deepest=0.1):
    """Rectified RW map with the inverted, min-max normalised distance inside each class (Caliva et al.).

    For a voxel i of class t, with ``d_t(i)`` the Euclidean distance (with ``spacing``) to the nearest voxel
    not in class t, and ``d_min``, ``d_max`` its extremes over the voxels of class t::

        closeness(i) = 1 - (d_t(i) - d_min) / (d_max - d_min)     # 1 on the boundary, 0 at the deepest voxel
        z_t(i)       = -(deepest + (1 - deepest) * closeness(i))   # -1 on the boundary, -deepest deepest
        z_k(i)       = 1                                           # every other class k != t

    ``deepest`` (default 0.1, in [0, 1]) keeps a small push on the deepest voxels; 1 gives the AC-like map
    ``-1 inside``. A class whose voxels are all equally deep (one voxel thick, or filling the whole image)
    counts as all boundary: ``-1``. An absent class is 1 everywhere. Returns ``(num_classes, *shape)``.
    """
    if not 0.0 <= deepest <= 1.0:
        raise ValueError(f"deepest must lie in [0, 1] (the magnitude at the deepest voxel); got {deepest!r}.")
    distance = distance_to_boundary(labels, num_classes, spacing)  # channel t holds d_t inside class t
    z = np.ones(distance.shape, dtype=np.float32)
    for k in np.unique(labels):
        inside = labels == k
        d = distance[k][inside]
        spread = d.max() - d.min()
        closeness = 1.0 - (d - d.min()) / spread if spread > 0 else np.ones_like(d)
        z[k][inside] = -(deepest + (1.0 - deepest) * closeness)
    return z


register_map_kind("near_boundary", near_boundary_map, deepest=0.1)


class nnUNetTrainerNearBoundaryRW(LossPlugTrainer):
    """RW loss (Valverde & Tohka 2022 eq. 1) on the near-boundary map; optimiser settings of Valverde & Tohka 2022
    (Adam, 1e-4)."""

    loss_spec = LossSpec(RegionWiseLoss)
    rw_map = "near_boundary"
    optimizer_spec = adam(lr=1e-4)
    epochs = 300


if __name__ == "__main__":
    from nnunet_lossplug.demo.synthetic import LABELS, synthetic_case
    from nnunet_lossplug.maps import get_map_kind, rectification_report

    _, case_labels = synthetic_case(np.random.default_rng(0), (8, 48, 48))
    for name in ("near_boundary", "rrw", "boundary"):
        z_map = get_map_kind(name).compute(case_labels, len(LABELS), (10.0, 1.5, 1.5))
        report = rectification_report(z_map, case_labels)
        share = f"{report.fraction_unstable:7.2%} ({report.n_unstable}/{report.n_voxels})"
        print(f"{name:>13}: {share} voxels can get more than one negative gradient component")
