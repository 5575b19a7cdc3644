"""A dataset's label setup seen by the trainer: softmax classes or sigmoid regions, with or without ignore label.

nnU-Net's targets keep the information the losses need (docs/conventions.md#regions):

- classes with an ignore label: a label map ``(B, 1, *spatial)`` holding the ignore value at unannotated voxels;
- regions: ``(B, R, *spatial)``, one binary channel per region (``ConvertSegmentationToRegionsTransform``),
  plus a last channel marking the ignored voxels when the dataset has an ignore label.

:meth:`LabelSetup.split` turns such a target into what the losses take: the target without ignored values or
ignore channel, and the annotation mask ``(B, 1, *spatial)`` (``True`` = annotated) or None.
:meth:`LabelSetup.configure_loss` switches the declared loss to region mode and checks that every loss can
skip ignored voxels, at trainer start, with one message naming what to change.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from nnunet_lossplug.nnunet.errors import UnsupportedDatasetError

#: losses that wrap other losses: region mode and masks are passed through to their components
_CONTAINERS = ("LossMixture", "DeepSupervisionLoss")


@dataclass(frozen=True)
class LabelSetup:
    """``regions``: number of regions (None for softmax classes); ``ignore_label``: nnU-Net's ignore label."""

    regions: int | None = None
    ignore_label: int | None = None

    @classmethod
    def from_label_manager(cls, label_manager) -> LabelSetup:
        regions = len(label_manager.foreground_regions) if label_manager.has_regions else None
        return cls(regions, label_manager.ignore_label)

    @property
    def plain(self) -> bool:
        """Softmax classes without ignore label: targets go to the losses as they are."""
        return self.regions is None and self.ignore_label is None

    def describe(self) -> str:
        parts = [f"{self.regions} sigmoid regions" if self.regions is not None else "softmax classes"]
        if self.ignore_label is not None:
            parts.append(f"ignore label {self.ignore_label} masked")
        return ", ".join(parts)

    def split(self, target: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor | None]:
        """nnU-Net's target of one level -> (the losses' target, annotation mask or None)."""
        if self.regions is not None:
            if self.ignore_label is None:
                return target, None
            return target[:, : self.regions], target[:, self.regions:self.regions + 1] == 0
        if self.ignore_label is None:
            return target, None
        mask = target != self.ignore_label
        return torch.where(mask, target, torch.zeros_like(target)), mask

    def configure_loss(self, loss: nn.Module, trainer_name: str) -> None:
        """Region mode on every loss inside ``loss``; refuse losses without region meaning or mask support."""
        for module in loss.modules():
            if not hasattr(module, "inputs") or type(module).__name__ in _CONTAINERS:
                continue
            name = type(module).__name__
            if self.regions is not None:
                if not getattr(module, "supports_regions", False):
                    raise UnsupportedDatasetError(
                        f"{trainer_name}: the loss {name} has no region (sigmoid) mode, so it cannot train on this "
                        f"region-based dataset. Give it a regions=False argument and set supports_regions = True "
                        f"(docs/conventions.md#regions: each region a two-class problem with logits (0, x)), or "
                        f"train on exclusive labels."
                    )
                module.regions = True
            if self.ignore_label is not None and not getattr(module, "accepts_mask", False):
                raise UnsupportedDatasetError(
                    f"{trainer_name}: the loss {name} cannot skip the voxels of the ignore label "
                    f"{self.ignore_label}. Give its forward a mask=None keyword (True at annotated voxels) and set "
                    f"accepts_mask = True, or remove the ignore label from dataset.json."
                )

    def check_placement(self, placement: str, has_map: bool, trainer_name: str) -> None:
        """Refuse the map placements that compute maps from a bare label map, which these targets are not."""
        if not has_map or self.plain or placement == "precomputed":
            return
        if placement == "worker" and self.regions is None:
            return  # per-patch encoding sees the label map with its ignore value: IgnoreLabelCodec handles it
        raise UnsupportedDatasetError(
            f"{trainer_name}: map_placement='{placement}' computes maps from the patch's label map, but on this "
            f"dataset ({self.describe()}) the targets are {'region channels' if self.regions else 'masked'}. Use "
            f"map_placement='precomputed' (the default: maps per region / with ignored voxels from the hook)."
        )
