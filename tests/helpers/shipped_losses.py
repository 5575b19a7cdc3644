"""The losses the shipped trainers train with, built from their declarations, and inputs for them.

:func:`shipped_losses` builds the per-level loss of every shipped trainer with a distinct loss declaration
(``loss_spec`` and ``rw_map``) as the trainer builds it (``LossSpec.build``; class weights from the voxel counts
given), in one of three label set-ups: softmax classes, classes with an ignore mask, sigmoid regions with an
ignore mask (``LabelSetup.configure_loss`` switches region mode on, as the trainer does). :func:`loss_arguments`
makes the positional inputs (target, map) and the mask for it: RRW and AC maps as a ``RectifiedMap`` (the form
the trainer's codecs decode them to), RW-Boundary and distance maps dense.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass

import numpy as np
import torch
from torch import Tensor, nn

from helpers.trainer_steps import shipped_trainer_names, trainer_class
from nnunet_lossplug.losses import RectifiedMap
from nnunet_lossplug.losses.calling import loss_inputs
from nnunet_lossplug.losses.regions import region_rectified_map
from nnunet_lossplug.nnunet.trainer.label_setup import LabelSetup

LABEL_SETUPS = ("classes", "classes_ignore", "regions_ignore")
RECTIFIED_KINDS = ("rrw", "ac")


@dataclass
class CountsContext:
    """What a loss declaration asks of the trainer when it is built: the training set's class voxel counts."""

    counts: np.ndarray
    fold: int = 0

    def training_set_class_voxel_counts(self) -> np.ndarray:
        return self.counts

    def training_set_voxel_total(self) -> int | None:
        return None


@dataclass(frozen=True)
class ShippedLoss:
    trainer: str
    map_kind: str | None
    setup: str
    loss: nn.Module

    @property
    def regions(self) -> bool:
        return self.setup.startswith("regions")

    @property
    def masked(self) -> bool:
        return self.setup.endswith("ignore")

    def __str__(self) -> str:
        return f"{self.trainer} ({self.setup})"


@functools.cache
def shipped_loss_declarations() -> tuple[str, ...]:
    """The first trainer of every distinct (``loss_spec``, ``rw_map``)."""
    seen, chosen = set(), []
    for name in shipped_trainer_names():
        cls = trainer_class(name)
        key = (cls.loss_spec.describe(), cls.rw_map)
        if key not in seen:
            seen.add(key)
            chosen.append(name)
    return tuple(chosen)


def shipped_losses(setup: str, counts: np.ndarray) -> list[ShippedLoss]:
    """Every distinct shipped per-level loss in ``setup`` (one of :data:`LABEL_SETUPS`)."""
    found = []
    for name in shipped_loss_declarations():
        cls = trainer_class(name)
        loss = cls.loss_spec.build(CountsContext(np.asarray(counts)))
        regions = len(counts) if setup.startswith("regions") else None
        LabelSetup(regions, 4 if setup.endswith("ignore") else None).configure_loss(loss, name)
        found.append(ShippedLoss(name, cls.rw_map, setup, loss))
    return found


def disc_labels(batch: int, shape: tuple[int, int], fractions: tuple[float, ...], seed: int = 0) -> Tensor:
    """Label maps ``(B, 1, H, W)``: class ``k >= 1`` a disc covering ``fractions[k - 1]`` of the image."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[: shape[0], : shape[1]]
    labels = np.zeros((batch, 1, *shape), dtype=np.int64)
    for b in range(batch):
        for k, fraction in enumerate(fractions, start=1):
            radius = (fraction * shape[0] * shape[1] / np.pi) ** 0.5
            cy, cx = rng.uniform(radius, np.array(shape) - radius)
            labels[b, 0][(yy - cy) ** 2 + (xx - cx) ** 2 < radius**2] = k
    return torch.from_numpy(labels)


def loss_arguments(case: ShippedLoss, labels: Tensor, num_outputs: int,
                   generator: torch.Generator) -> dict[str, Tensor | RectifiedMap | None]:
    """``call_loss``'s keywords (``target``, ``rw_map``, ``mask``) for ``case``; ``labels`` ``(B, 1, H, W)``.

    Regions: region ``r`` holds the voxels of label ``>= r + 1`` (nested, as BraTS's), ``num_outputs`` = R.
    Maps come from :mod:`nnunet_lossplug.maps` (RRW, RW-Boundary, AC) and its distance transform (HD).
    """
    from nnunet_lossplug.maps import distance_to_boundary, rw_map

    batch, _, *spatial = labels.shape
    mask = torch.rand((batch, 1, *spatial), generator=generator) > 0.2 if case.masked else None
    if case.regions:
        target = torch.cat([(labels > r).float() for r in range(num_outputs)], dim=1)
    else:
        target = labels
    arguments: dict[str, Tensor | RectifiedMap | None] = {"mask": mask}
    if "target" in loss_inputs(case.loss):
        arguments["target"] = target
    if "rw_map" in loss_inputs(case.loss):
        arguments["rw_map"] = _map(case.map_kind, labels, target, num_outputs, case.regions, rw_map,
                                   distance_to_boundary)
    return arguments


def _map(kind, labels, target, num_outputs, regions, rw_map, distance_to_boundary):
    spacing = (1.5, 1.5)
    if regions:
        per_region = []
        for r in range(num_outputs):
            binary = target[:, r].long().numpy()
            if kind == "distance":
                maps = [distance_to_boundary(b, 2, spacing) for b in binary]
            else:
                maps = [rw_map(b, 2, kind, spacing=spacing) for b in binary]
            per_region.append(torch.from_numpy(np.stack(maps)).float())
        dense = torch.stack(per_region, dim=1)  # (B, R, 2, H, W): channel 0 outside, 1 inside
        if kind in RECTIFIED_KINDS:
            own = torch.where(target.bool(), dense[:, :, 1], dense[:, :, 0])
            return region_rectified_map(target, own, 1.0)
        return dense
    numpy_labels = labels[:, 0].numpy()
    if kind == "distance":
        dense = np.stack([distance_to_boundary(b, num_outputs, spacing) for b in numpy_labels])
    else:
        dense = np.stack([rw_map(b, num_outputs, kind, spacing=spacing) for b in numpy_labels])
    dense = torch.from_numpy(dense).float()
    if kind in RECTIFIED_KINDS:
        return RectifiedMap(labels, dense.gather(1, labels), 1.0, num_outputs)
    return dense
