"""The declared map's life-cycle in one trainer: kind, codec, cache, transport and the rectification check.

One :class:`MapLifeCycle` per trainer, built in its ``__init__``; everything it builds is built once (the codec
waits for the rectification check, which reads a few training cases, so it is built on first use):

- the **kind** (``rw_map``, resolved in the map registry);
- the **codec** (:func:`~nnunet_lossplug.nnunet.codecs.chooser.source_codec`): a kind that does not declare
  whether it is rectified (a user's own, by default) is stored in the rectified two-channel form when the check
  finds it rectified, in ``K`` channels otherwise;
- the **cache** (:class:`~nnunet_lossplug.nnunet.map_cache.cache.CaseCache`) for ``map_placement = "precomputed"``;
- the **transport** (:class:`~nnunet_lossplug.nnunet.map_transport.transport.MapTransport`) that carries the
  encoding through nnU-Net's loader and decodes it on the device;
- the start-up **rectification check** (Valverde & Tohka 2022, Sec. 3.4): a warning when the map is not rectified;
  skipped for a kind registered with ``rectified=False`` (known not rectified, or no RW map at all).

:class:`MapCarryingSeams` is the trainer's side: nnU-Net's datasets, augmentation pipelines and batches, extended
at their seams to carry the map's encoding through the transport.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable, Sequence

import numpy as np

from nnunet_lossplug.maps import compute_with_ignore, rectification_report, region_maps, region_masks
from nnunet_lossplug.maps.registry import MapKind
from nnunet_lossplug.nnunet.codecs.chooser import source_codec
from nnunet_lossplug.nnunet.codecs.softmax import MapCodec
from nnunet_lossplug.nnunet.errors import TrainerSettingError
from nnunet_lossplug.nnunet.map_cache.cache import CaseCache
from nnunet_lossplug.nnunet.map_cache.source import PreprocessedSource
from nnunet_lossplug.nnunet.map_transport.transport import MapTransport
from nnunet_lossplug.nnunet.trainer.loss import to_device

MAP_PLACEMENTS = ("precomputed", "worker", "loss")
_UNSET = object()


class MapLifeCycle:
    """Kind, codec, cache and transport of one trainer's map, each built once (see the module docstring).

    ``training_cases`` returns the fold's training case identifiers (the trainer's ``do_split``), ``spacing``
    is the configuration's, ``log`` writes a line to the trainer's log file.
    """

    def __init__(self, kind: MapKind | None, placement: str, source: PreprocessedSource,
                 training_cases: Callable[[], Sequence[str]], spacing: Sequence[float], check_cases: int,
                 log: Callable[[str], None] = print):
        if placement not in MAP_PLACEMENTS:
            raise TrainerSettingError(f"map_placement must be one of {MAP_PLACEMENTS}, got {placement!r}.")
        self.kind = kind
        self.placement = placement
        self.source = source
        self.training_cases = training_cases
        self.spacing = tuple(spacing)
        self.check_cases = check_cases
        self.log = log
        self._codec: MapCodec | None = None
        self._cache = _UNSET
        self._transport = _UNSET
        self._unstable_fraction: float | None = None

    def codec(self) -> MapCodec | None:
        """How the map is stored and carried (None without a map)."""
        if self.kind is None:
            return None
        if self._codec is None:  # the check's verdict, for a kind that does not declare whether it is rectified
            rectified = self.kind.rectified is None and self.worst_unstable_fraction() == 0
            self._codec = source_codec(self.kind, self.source, rectified=rectified)
        return self._codec

    def cache(self) -> CaseCache | None:
        """The precompute cache of the map (None without a map or for maps not precomputed)."""
        if self._cache is _UNSET:
            codec = self.codec() if self.placement == "precomputed" else None
            self._cache = CaseCache(self.source, codec) if codec is not None else None
        return self._cache  # type: ignore[return-value]

    def transport(self) -> MapTransport | None:
        """The map's path through nnU-Net's loader (None: no map, or maps computed in the loss)."""
        if self._transport is _UNSET:
            codec = self.codec() if self.placement != "loss" else None
            self._transport = (MapTransport(codec, self.placement, self.spacing, self.cache())
                               if codec is not None else None)
        return self._transport  # type: ignore[return-value]

    def loss_kind(self) -> MapKind | None:
        """The kind the loss computes itself from the targets (the ``"loss"`` placement), else None."""
        return self.kind if self.placement == "loss" else None

    # ------------------------------------------------------------ rectification check (Valverde & Tohka 2022, Sec. 3.4)
    def worst_unstable_fraction(self) -> float:
        """Largest share of unstable voxels of the map on the first training cases."""
        if self._unstable_fraction is None:
            assert self.kind is not None
            fractions = [0.0]
            for identifier in list(self.training_cases())[: self.check_cases]:
                labels = self.source.labels_for_maps(self.source.load_segmentation(identifier), identifier)
                fractions.extend(self._case_unstable_fractions(labels, self.source.case_spacing(identifier)))
            self._unstable_fraction = max(fractions)
        return self._unstable_fraction

    def _case_unstable_fractions(self, labels: np.ndarray, spacing) -> list[float]:
        """Unstable shares of one case's map: per region for regions, with ignored voxels as outside
        (docs/conventions.md#regions)."""
        assert self.kind is not None
        ignore = self.source.ignore_label
        annotated = labels if ignore is None else np.where(labels == ignore, 0, labels)
        if self.source.regions is not None:
            if self.kind.region_encoding is None:
                return [0.0]  # refused with the reason when the codec is built
            maps = region_maps(self.kind, labels, self.source.regions, spacing, ignore)
            masks = region_masks(annotated, self.source.regions)
            return [rectification_report(z, mask.astype(np.int16), batch=False).fraction_unstable
                    for z, mask in zip(maps, masks)]
        z = compute_with_ignore(self.kind, labels, self.source.num_classes, spacing, ignore)
        return [rectification_report(z, annotated, batch=False).fraction_unstable]

    def check_rectification(self) -> None:
        """Warn (and log) when the map is not rectified; log the verdict and how the map is carried otherwise."""
        if self.kind is None or self.kind.rectified is False:
            return  # registered as known not rectified (boundary) or as no RW map at all (HD distances)
        worst = self.worst_unstable_fraction()
        cases = min(self.check_cases, len(self.training_cases()))
        if worst > 0:
            message = (
                f"RW map '{self.kind.name}' is not rectified: on {cases} training cases up to {worst:.2%} of "
                f"voxels can get more than one negative logit-gradient component (Valverde & Tohka 2022 Sec. 3.4), "
                f"which can make training unstable. Make all non-true-class values of each voxel equal (as RRW does)."
            )
            warnings.warn(message, stacklevel=3)
            self.log("WARNING: " + message)
        else:
            codec = self.codec()
            form = "rebuilt from the augmented segmentation" if codec is not None and codec.rectified else "as is"
            scope = " (two-class maps per region)" if self.source.regions is not None else ""
            self.log(f"Rectification check of '{self.kind.name}' maps{scope}: 0 unstable voxels. Carried {form}.")


class MapCarryingSeams:
    """Mixin for a subclass of nnU-Net's ``nnUNetTrainer``: its loader carries the map's encoding.

    nnU-Net's datasets and augmentation pipelines, extended by the trainer's ``maps.transport()``
    (``MapTransport.wrap_datasets`` / ``extend_pipeline``; unchanged without a transport), and the decode of a
    batch on the trainer's ``device``. Each method calls nnU-Net's own through ``super()``.
    """

    def _carried(self, step: str, value):
        """nnU-Net's datasets or augmentation pipeline, carrying the map's encoding (``MapTransport.<step>``)."""
        transport = self.maps.transport()
        return getattr(transport, step)(value) if transport is not None else value

    def get_tr_and_val_datasets(self):
        return self._carried("wrap_datasets", super().get_tr_and_val_datasets())

    def get_training_transforms(self, *args, **kwargs):
        return self._carried("extend_pipeline", super().get_training_transforms(*args, **kwargs))

    def get_validation_transforms(self, *args, **kwargs):
        return self._carried("extend_pipeline", super().get_validation_transforms(*args, **kwargs))

    def decode_batch(self, batch: dict):
        """The batch's target and the loss's maps at every level, on the device (maps None without a map)."""
        transport = self.maps.transport()
        if transport is None:
            return to_device(batch["target"], self.device), None
        return transport.decode(batch["target"], self.device)
