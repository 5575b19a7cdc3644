"""The trainer's ``self.loss``: deep supervision around the declared loss, fed with each batch's maps.

It is the seam through which the plugin extends nnU-Net's ``train_step`` without copying it: nnU-Net moves the
batch's target to the device and calls ``self.loss(output, target)``; this object splits the packed map
encoding off that target and decodes the maps there. Within :meth:`TrainerLoss.deferred_checks` (the trainer's
``train_step``) the losses check their inputs on the device (a bad target makes the value NaN), so that a
training step reads nothing from the device but what nnU-Net reads; :func:`compile_loss_parts` compiles the
losses the way nnU-Net compiles its Dice loss.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator, Sequence

import numpy as np
import torch
from torch import nn

from nnunet_lossplug.losses import DeepSupervisionLoss, LossMixture, deferred_input_checks
from nnunet_lossplug.maps.registry import MapKind
from nnunet_lossplug.nnunet.map_transport.transport import MapTransport
from nnunet_lossplug.nnunet.trainer.label_setup import LabelSetup

#: losses made of other losses: their components are compiled, not they (a gradual mixture's weights change
#: every epoch, which would recompile a compiled mixture each epoch)
_CONTAINERS = (DeepSupervisionLoss, LossMixture)


def compile_loss_parts(criterion: nn.Module) -> list[str]:
    """Compile every loss inside ``criterion`` that is not made of other losses, in place; return their names.

    nnU-Net's ``_build_loss`` does ``loss.dc = torch.compile(loss.dc)`` when ``_do_i_compile()``; this is the same
    for the plugin's losses: each per-level loss (the components of a mixture) gets ``nn.Module.compile()``,
    which keeps its class, its protocol flags and its ``state_dict`` keys. Deep supervision and mixtures stay eager.
    """
    compiled = []
    for module in criterion.modules():
        if hasattr(module, "inputs") and not isinstance(module, _CONTAINERS):
            module.compile()
            compiled.append(type(module).__name__)
    return compiled


def loss_is_compiled(criterion: nn.Module) -> bool:
    """Whether :func:`compile_loss_parts` compiled the losses inside ``criterion``."""
    return any(getattr(m, "_compiled_call_impl", None) is not None for m in criterion.modules())


def to_device(value, device: torch.device):
    """A tensor, a list of tensors or None, moved to ``device``."""
    if value is None:
        return None
    if isinstance(value, list):
        return [v.to(device, non_blocking=True) for v in value]
    return value.to(device, non_blocking=True)


class TrainerLoss(nn.Module):
    """The trainer's ``self.loss``: deep supervision around the declared loss, fed with the batch's maps.

    nnU-Net's ``train_step`` calls ``self.loss(output, target)`` with the packed target on the device; with a
    ``transport`` (a function returning the trainer's :class:`MapTransport`, built once), the map encoding is
    split off and decoded here. nnU-Net's ``validation_step`` needs the plain target after the loss, so the
    trainer decodes beforehand and hands the maps over through :attr:`pending_maps`. With ``map_kind`` set (the
    ``"loss"`` placement), maps are computed here from the targets instead, as the reference code does. Inside
    :meth:`deferred_checks`, the losses' input checks read nothing from the device (the trainer's training step).
    Targets arrive in nnU-Net's form; ``label_setup`` splits off the ignore label into a mask per level and the
    declared loss (in region mode for region-based datasets) gets the rest (docs/conventions.md#regions).
    """

    def __init__(self, criterion: DeepSupervisionLoss, map_kind: MapKind | None = None,
                 num_classes: int = 0, spacing: Sequence[float] | None = None,
                 label_setup: LabelSetup | None = None,
                 transport: Callable[[], MapTransport | None] | None = None):
        super().__init__()
        self.label_setup = label_setup or LabelSetup()
        self.criterion = criterion
        self.map_kind = map_kind
        self.num_classes = num_classes
        self.spacing = tuple(spacing) if spacing is not None else None
        self.pending_maps: list[torch.Tensor] | None = None
        self.transport = transport

    @contextlib.contextmanager
    def deferred_checks(self) -> Iterator[None]:
        """Within the block a bad target makes the value NaN instead of raising (no host round-trip).

        The caller reads the value anyway (nnU-Net's ``train_step`` returns it on the host) and, when it is not
        finite, repeats the step outside the block to name the problem (:func:`~.guards.check_finite_loss`).
        """
        with deferred_input_checks():
            yield

    def _maps_from_targets(self, targets: list[torch.Tensor]) -> list[torch.Tensor]:
        assert self.map_kind is not None
        maps = []
        full = targets[0].shape[2:]
        for target in targets:
            scale = [f / s for f, s in zip(full, target.shape[2:])]
            spacing = None if self.spacing is None else tuple(sp * sc for sp, sc in zip(self.spacing, scale))
            labels = target[:, 0].detach().cpu().numpy().astype(np.int16)
            batch = np.stack([self.map_kind.compute(lab, self.num_classes, spacing) for lab in labels])
            maps.append(torch.from_numpy(batch).to(target.device))
        return maps

    def forward(self, output, target, rw_maps=None) -> torch.Tensor:
        transport = self.transport() if self.transport is not None else None
        if rw_maps is None and self.pending_maps is None and transport is not None:
            device = (target[0] if isinstance(target, (list, tuple)) else target).device
            target, rw_maps = transport.decode(target, device)  # the packed target of nnU-Net's train_step
        outputs = output if isinstance(output, (list, tuple)) else [output]
        targets = target if isinstance(target, (list, tuple)) else [target]
        maps = rw_maps if rw_maps is not None else self.pending_maps
        if maps is not None and not isinstance(maps, (list, tuple)):
            maps = [maps]
        if maps is None and self.map_kind is not None:
            maps = self._maps_from_targets(list(targets))
        masks = None
        if not self.label_setup.plain:
            targets, masks = zip(*(self.label_setup.split(t) for t in targets))
            masks = None if masks[0] is None else list(masks)
        return self.criterion(list(outputs), list(targets), list(maps) if maps is not None else None, masks)
