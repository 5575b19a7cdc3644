"""``LossPlugTrainer``: the one base class behind every trainer of the plugin.

A subclass declares an experiment in class attributes and nothing else::

    class nnUNetTrainerRRW(LossPlugTrainer):
        loss_spec = LossSpec(RegionWiseLoss)
        rw_map = "rrw"
        optimizer_spec = adam(lr=1e-4)
        epochs = 300

The base class turns the declaration into nnU-Net's machinery, changing nnU-Net's ``nnUNetTrainer`` in
the few places a loss plug-in needs:

- ``_build_loss``: the declared loss at every deep-supervision output (WMLA weights ``ds_weights``:
  ``"nnunet"``, a tuple such as ``(1, 0.1, 0.01)``, or ``"trainable"``), in one place for all trainers.
- ``on_train_start``: runs the precompute hook (maps and class statistics) when the cache is missing or
  stale, then checks a few cases' maps for rectification (paper 002 Sec. 3.4) and warns if they are not.
- ``get_tr_and_val_datasets``, ``get_training_transforms``, ``get_validation_transforms``: nnU-Net's own
  data loader and augmentation carry the map's compact encoding (:mod:`map_transport`), read from the
  precompute cache (``map_placement = "precomputed"``) or computed per patch in the workers (``"worker"``,
  the reference code's maps); or maps are computed in the training process inside the loss (``"loss"``,
  the reference code's placement; kept for benchmarks).
- ``train_step`` / ``validation_step``: decode the encoding on the device at every deep-supervision level
  (:func:`map_codecs.decode_levels`) and hand the maps to the loss; gradient clipping ``grad_clip``.
- ``configure_optimizers``: the declared optimiser with nnU-Net's poly schedule; trainable WMLA weights
  join the optimiser and are logged each epoch, saved in checkpoints and restored by ``--c``.
- epoch-dependent losses (``set_epoch``) read the trainer's epoch, so resuming at epoch e gives α(e).

Inference (``nnUNetv2_predict``) only builds the network: no map, cache or statistic is needed there.
"""

from __future__ import annotations

import os
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import ClassVar

import numpy as np
import torch
from nnunetv2.configuration import default_num_processes
from nnunetv2.training.nnUNetTrainer.nnUNetTrainer import nnUNetTrainer
from nnunetv2.utilities.helpers import dummy_context
from torch import autocast, nn
from torch import distributed as dist

from nnunet_lossplug.losses import DeepSupervisionLoss, deep_supervision_weights
from nnunet_lossplug.maps import compute_with_ignore, get_map_kind, rectification_report, region_maps, region_masks
from nnunet_lossplug.maps.registry import MapKind
from nnunet_lossplug.nnunet.collapse_guard import CollapseGuard
from nnunet_lossplug.nnunet.label_setup import LabelSetup
from nnunet_lossplug.nnunet.map_codecs import BUILTIN_CODEC_KINDS, MapCodec
from nnunet_lossplug.nnunet.map_transport import MapTransport
from nnunet_lossplug.nnunet.precompute import CaseCache
from nnunet_lossplug.nnunet.region_codecs import REGION_KIND_CHANNELS, source_codec
from nnunet_lossplug.nnunet.schedules import PolySchedule
from nnunet_lossplug.nnunet.source import PreprocessedSource, check_label_setup
from nnunet_lossplug.nnunet.specs import LossSpec, OptimizerSpec
from nnunet_lossplug.nnunet.trainer_loss import TrainerLoss, to_device
from nnunet_lossplug.nnunet.training_guards import check_finite_loss

MAP_PLACEMENTS = ("precomputed", "worker", "loss")
DS_SIGMA_LOG_KEY = "lossplug_ds_sigma"
DS_WEIGHTS_LOG_KEY = "lossplug_ds_weights"


class LossPlugTrainer(nnUNetTrainer):
    """Base class of the plugin's trainers; subclasses declare, this class wires (see the module docstring).

    Declarations (class attributes):

    - ``loss_spec``: :class:`LossSpec` of the per-resolution loss (required).
    - ``rw_map``: map kind the loss needs (``"rrw"``, ``"boundary"``, ``"ac"``, ``"cao"``, ``"distance"``,
      ``"rrw_reference"``, a user-registered name or a :class:`MapKind`), or None.
    - ``map_placement``: ``"precomputed"`` (default), ``"worker"`` or ``"loss"``.
    - ``ds_weights``: ``"nnunet"`` (default), a tuple of weights from high to low resolution, or ``"trainable"``.
    - ``optimizer_spec``: :class:`OptimizerSpec` (None = nnU-Net's SGD, lr 1e-2); scheduled by nnU-Net's poly rule.
    - ``grad_clip``: L2 norm for gradient clipping (nnU-Net's 12 by default; paper 000 uses 5).
    - ``epochs``, ``iterations_per_epoch``, ``val_iterations_per_epoch``: None keeps nnU-Net's 1000 / 250 / 50.
    - ``rectification_check_cases``: how many training cases the start-up rectification check reads.
    - ``network_builder``: a function with the signature of nnU-Net's ``build_network_architecture``
      (None = nnU-Net's network from the plans); used for training and by ``nnUNetv2_predict``.
    - ``network_ds_scales``: for a network whose deep-supervision outputs differ from nnU-Net's, a function
      ``configuration_manager -> scales`` (high to low resolution) so targets and maps are downsampled to match.
    - ``lr_schedule``: :mod:`~nnunet_lossplug.nnunet.schedules` (nnU-Net's poly rule by default).
    - ``reference``: the paper, table or equation the trainer reproduces (shown by ``nnunet-lossplug trainers``).
    - ``collapse_patience``, ``collapse_warmup``: warn (log and console) when a foreground class's validation
      pseudo-Dice stays at 0 for ``collapse_patience`` epochs after ``collapse_warmup`` epochs
      (:mod:`~nnunet_lossplug.nnunet.collapse_guard`); ``collapse_patience = None`` switches it off.
    """

    loss_spec: ClassVar[LossSpec | None] = None
    rw_map: ClassVar[str | MapKind | None] = None
    map_placement: ClassVar[str] = "precomputed"
    ds_weights: ClassVar[str | tuple[float, ...]] = "nnunet"
    optimizer_spec: ClassVar[OptimizerSpec | None] = None
    grad_clip: ClassVar[float] = 12.0
    epochs: ClassVar[int | None] = None
    iterations_per_epoch: ClassVar[int | None] = None
    val_iterations_per_epoch: ClassVar[int | None] = None
    rectification_check_cases: ClassVar[int] = 3
    network_builder: ClassVar[Callable[..., nn.Module] | None] = None
    network_ds_scales: ClassVar[Callable[..., list[list[float]]] | None] = None
    lr_schedule: ClassVar[PolySchedule] = PolySchedule()
    reference: ClassVar[str] = ""
    collapse_patience: ClassVar[int | None] = 10
    collapse_warmup: ClassVar[int] = 10

    def __init__(self, plans: dict, configuration: str, fold: int, dataset_json: dict,
                 device: torch.device = torch.device("cuda")):  # noqa: B008 - nnU-Net's signature
        super().__init__(plans, configuration, fold, dataset_json, device)
        if self.loss_spec is None:
            raise TypeError(f"{type(self).__name__} declares no loss_spec; a LossPlugTrainer needs one.")
        if self.map_placement not in MAP_PLACEMENTS:
            raise ValueError(f"map_placement must be one of {MAP_PLACEMENTS}, got {self.map_placement!r}.")
        check_label_setup(self.label_manager)
        self.label_setup = LabelSetup.from_label_manager(self.label_manager)
        self.label_setup.check_placement(self.map_placement, self.rw_map is not None, type(self).__name__)
        if self.epochs is not None:
            self.num_epochs = self.epochs
        if self.iterations_per_epoch is not None:
            self.num_iterations_per_epoch = self.iterations_per_epoch
        if self.val_iterations_per_epoch is not None:
            self.num_val_iterations_per_epoch = self.val_iterations_per_epoch
        if self.optimizer_spec is not None:
            self.initial_lr = self.optimizer_spec.lr
            self.weight_decay = self.optimizer_spec.kwargs.get("weight_decay", 0.0)
        if self.ds_weights == "trainable":
            logs = self.logger.local_logger.my_fantastic_logging
            logs.setdefault(DS_SIGMA_LOG_KEY, [])
            logs.setdefault(DS_WEIGHTS_LOG_KEY, [])
        self._source: PreprocessedSource | None = None
        self._criterion: DeepSupervisionLoss | None = None
        self._codec: MapCodec | None = None
        self._unstable_fraction: float | None = None

    # ------------------------------------------------------------------ declarations, resolved
    @classmethod
    def build_network_architecture(cls, plans_manager, configuration_manager, num_input_channels: int,
                                   num_output_channels: int, enable_deep_supervision: bool = True) -> nn.Module:
        """nnU-Net's hook (a classmethod here, so a declared ``network_builder`` is seen at inference too)."""
        builder = cls.network_builder or nnUNetTrainer.build_network_architecture
        return builder(plans_manager, configuration_manager, num_input_channels, num_output_channels,
                       enable_deep_supervision)

    @classmethod
    def map_kind(cls) -> MapKind | None:
        if cls.rw_map is None:
            return None
        return get_map_kind(cls.rw_map) if isinstance(cls.rw_map, str) else cls.rw_map

    @property
    def source(self) -> PreprocessedSource:
        if self._source is None:
            self._source = PreprocessedSource(
                self.plans_manager.dataset_name, self.plans_manager.plans_name, self.configuration_name,
                Path(self.preprocessed_dataset_folder_base), self.plans_manager.plans,
                self.dataset_json,
            )
        return self._source

    def map_codec(self) -> MapCodec | None:
        """How the declared map is stored and carried (None without a map).

        A kind outside the built-in codecs is stored in the rectified two-channel form when the start-up
        rectification check finds it rectified (0 unstable voxels), and in ``K`` channels otherwise.
        """
        kind = self.map_kind()
        if kind is None:
            return None
        if self._codec is None:
            rectified = kind.name not in BUILTIN_CODEC_KINDS and self._worst_unstable_fraction() == 0
            self._codec = source_codec(kind, self.source, rectified=rectified)
        return self._codec

    def _map_cache(self) -> CaseCache | None:
        codec = self.map_codec()
        if codec is None or self.map_placement != "precomputed":
            return None
        return CaseCache(self.source, codec)

    def _get_deep_supervision_scales(self):
        if self.enable_deep_supervision and self.network_ds_scales is not None:
            return type(self).network_ds_scales(self.configuration_manager)
        return super()._get_deep_supervision_scales()

    def _num_outputs(self) -> int:
        return len(self._get_deep_supervision_scales()) if self.enable_deep_supervision else 1

    @staticmethod
    def _hook_processes() -> int:
        """Worker processes for the precompute hook: nnU-Net's ``nnUNet_def_n_proc`` setting."""
        return max(1, min(int(default_num_processes), os.cpu_count() or 1))

    def training_set_class_voxel_counts(self) -> np.ndarray:
        """Voxel counts per class over this fold's training cases, from the precompute hook (run if needed)."""
        tr_keys, _ = self.do_split()
        stats = CaseCache(self.source, None)
        if self.local_rank == 0:
            summary = stats.ensure(self.source.identifiers(), num_processes=self._hook_processes())
            if summary.cases_computed:
                self.print_to_log_file(summary.line())
        if self.is_ddp:
            dist.barrier()
        key = "region_voxel_counts" if self.label_setup.regions is not None else "class_voxel_counts"
        counts = stats.class_voxel_counts(tr_keys, key)
        self.print_to_log_file(f"Training-set {key.replace('_', ' ')}: {counts.tolist()}")
        return counts

    def training_set_voxel_total(self) -> int | None:
        """``N`` of paper 001's class weights for regions (annotated voxels; regions overlap), else None (Σ counts)."""
        if self.label_setup.regions is None:
            return None
        tr_keys, _ = self.do_split()
        return int(CaseCache(self.source, None).class_voxel_counts(tr_keys, "annotated_voxels")[0])

    # ------------------------------------------------------------------ loss and optimiser
    def _build_criterion(self) -> DeepSupervisionLoss:
        if self._criterion is None:
            assert self.loss_spec is not None
            loss = self.loss_spec.build(self)
            self.label_setup.configure_loss(loss, type(self).__name__)
            weights = self.ds_weights
            if self.is_ddp and weights != "trainable":
                # DDP without torch.compile fails on heads that get no gradient; nnU-Net gives them 1e-6
                weights = deep_supervision_weights(weights, self._num_outputs(), zero_weight=1e-6)
            self._criterion = DeepSupervisionLoss(loss, weights, self._num_outputs())
            self._criterion.to(self.device)
        return self._criterion

    def _build_loss(self) -> TrainerLoss:
        criterion = self._build_criterion()
        kind = self.map_kind() if self.map_placement == "loss" else None
        spacing = self.configuration_manager.spacing if kind is not None else None
        loss = TrainerLoss(criterion, kind, self.source.num_classes if kind is not None else 0, spacing,
                           label_setup=self.label_setup)
        maps = f"{self.rw_map} ({self.map_placement})" if self.rw_map is not None else "none"
        self.print_to_log_file(
            f"Loss: {self.loss_spec.describe() if self.loss_spec else '?'} on {self.label_setup.describe()}; "
            f"maps: {maps}; deep-supervision weights: {criterion.current_weights()}"
        )
        return loss

    def configure_optimizers(self):
        # nnU-Net builds the optimiser before the loss; trainable WMLA weights must be in it, so build it here
        criterion = self._build_criterion()
        if self.optimizer_spec is None:
            optimizer, _ = super().configure_optimizers()
        else:
            optimizer = self.optimizer_spec.build(self.network.parameters())
        extra = [p for p in criterion.parameters() if p.requires_grad]
        if extra:
            optimizer.add_param_group({"params": extra, "weight_decay": 0.0})
        scheduler = self.lr_schedule.build(optimizer, self.initial_lr, self.num_epochs, self.num_iterations_per_epoch)
        return optimizer, scheduler

    # ------------------------------------------------------------------ start-up: hook and checks
    def on_train_start(self):
        if self.map_kind() is not None and self.local_rank == 0:
            self._check_rectification()  # first: its verdict chooses how users' own map kinds are stored
        cache = self._map_cache()
        if cache is not None:
            if self.local_rank == 0:
                summary = cache.ensure(self.source.identifiers(), num_processes=self._hook_processes())
                self.print_to_log_file(summary.line())
            if self.is_ddp:
                dist.barrier()
        super().on_train_start()

    def _worst_unstable_fraction(self) -> float:
        """Largest share of unstable voxels (paper 002 Sec. 3.4) of the map on the first training cases."""
        if self._unstable_fraction is None:
            kind = self.map_kind()
            assert kind is not None
            tr_keys, _ = self.do_split()
            fractions = [0.0]
            for identifier in list(tr_keys)[: self.rectification_check_cases]:
                labels = self.source.labels_for_maps(self.source.load_segmentation(identifier), identifier)
                fractions.extend(self._case_unstable_fractions(kind, labels, self.source.case_spacing(identifier)))
            self._unstable_fraction = max(fractions)
        return self._unstable_fraction

    def _case_unstable_fractions(self, kind: MapKind, labels: np.ndarray, spacing) -> list[float]:
        """Unstable shares of one case's map: per region for regions, with ignored voxels as outside (SPEC §4)."""
        ignore = self.source.ignore_label
        annotated = labels if ignore is None else np.where(labels == ignore, 0, labels)
        if self.source.regions is not None:
            if kind.name not in REGION_KIND_CHANNELS:
                return [0.0]  # refused with the reason when the codec is built
            maps = region_maps(kind, labels, self.source.regions, spacing, ignore)
            masks = region_masks(annotated, self.source.regions)
            return [rectification_report(z, mask.astype(np.int16), batch=False).fraction_unstable
                    for z, mask in zip(maps, masks)]
        z = compute_with_ignore(kind, labels, self.source.num_classes, spacing, ignore)
        return [rectification_report(z, annotated, batch=False).fraction_unstable]

    def _check_rectification(self) -> None:
        kind = self.map_kind()
        assert kind is not None
        if kind.name in ("boundary", "distance"):
            return  # known not rectified (boundary) or not an RW map at all (HD distances); documented
        worst = self._worst_unstable_fraction()
        cases = min(self.rectification_check_cases, len(self.do_split()[0]))
        if worst > 0:
            message = (
                f"RW map '{kind.name}' is not rectified: on {cases} training cases up to {worst:.2%} of "
                f"voxels can get more than one negative logit-gradient component (paper 002 Sec. 3.4), which "
                f"can make training unstable. Make all non-true-class values of each voxel equal (as RRW does)."
            )
            warnings.warn(message, stacklevel=2)
            self.print_to_log_file("WARNING: " + message)
        else:
            codec = self.map_codec()
            form = "rebuilt from the augmented segmentation" if codec is not None and codec.rectified else "as is"
            scope = " (two-class maps per region)" if self.source.regions is not None else ""
            self.print_to_log_file(
                f"Rectification check of '{kind.name}' maps{scope}: 0 unstable voxels. Carried {form}.")

    # ------------------------------------------------------------------ data: nnU-Net's loader, extended at its seams
    def _transport(self) -> MapTransport | None:
        """The map's path through nnU-Net's loader (None: no map, or maps computed in the loss)."""
        codec = self.map_codec() if self.map_placement != "loss" else None
        if codec is None:
            return None
        return MapTransport(codec, self.map_placement, self.configuration_manager.spacing, self._map_cache())

    def get_tr_and_val_datasets(self):
        transport = self._transport()
        datasets = super().get_tr_and_val_datasets()
        return transport.wrap_datasets(datasets) if transport is not None else datasets

    def get_training_transforms(self, *args, **kwargs):
        """nnU-Net's training pipeline, carrying the map's encoding (see :mod:`map_transport`)."""
        transport = self._transport()
        pipeline = super().get_training_transforms(*args, **kwargs)
        return transport.extend_pipeline(pipeline) if transport is not None else pipeline

    def get_validation_transforms(self, *args, **kwargs):
        """nnU-Net's validation pipeline, carrying the map's encoding (see :mod:`map_transport`)."""
        transport = self._transport()
        pipeline = super().get_validation_transforms(*args, **kwargs)
        return transport.extend_pipeline(pipeline) if transport is not None else pipeline

    def decode_batch(self, batch: dict):
        """The batch's target and the loss's maps at every level, on the device (maps None without a map)."""
        transport = self._transport()
        if transport is None:
            return to_device(batch["target"], self.device), None
        return transport.decode(batch["target"], self.device)

    # ------------------------------------------------------------------ steps
    def on_train_epoch_start(self):
        super().on_train_epoch_start()
        for module in self.loss.modules():
            if hasattr(module, "set_epoch"):
                module.set_epoch(self.current_epoch)

    def train_step(self, batch: dict) -> dict:
        data = batch["data"].to(self.device, non_blocking=True)
        target, maps = self.decode_batch(batch)
        self.optimizer.zero_grad(set_to_none=True)
        with autocast(self.device.type, enabled=True) if self.device.type == "cuda" else dummy_context():
            output = self.network(data)
            loss = self.loss(output, target, maps)
        check_finite_loss(self, loss, batch)  # NonFiniteLossError naming the batch's cases
        if self.grad_scaler is not None:
            self.grad_scaler.scale(loss).backward()
            self.grad_scaler.unscale_(self.optimizer)
            torch.nn.utils.clip_grad_norm_(self.network.parameters(), self.grad_clip)
            self.grad_scaler.step(self.optimizer)
            self.grad_scaler.update()
        else:
            loss.backward()
            torch.nn.utils.clip_grad_norm_(self.network.parameters(), self.grad_clip)
            self.optimizer.step()
        return {"loss": loss.detach().cpu().numpy()}

    def on_validation_epoch_end(self, val_outputs):
        super().on_validation_epoch_end(val_outputs)
        observe = getattr(self.lr_scheduler, "observe_validation_loss", None)
        if observe is not None:
            observe(float(self.logger.get_value("val_losses", step=-1)))

    def validation_step(self, batch: dict) -> dict:
        target, self.loss.pending_maps = self.decode_batch(batch)
        try:
            return super().validation_step({**batch, "target": target})
        finally:
            self.loss.pending_maps = None

    # ------------------------------------------------------------------ trainable WMLA weights: log, save, restore
    def on_train_epoch_end(self, train_outputs):
        super().on_train_epoch_end(train_outputs)
        criterion = self._criterion
        if criterion is not None and criterion.trainable:
            self.logger.log(DS_SIGMA_LOG_KEY, criterion.sigma.detach().cpu().tolist(), self.current_epoch)
            self.logger.log(DS_WEIGHTS_LOG_KEY, list(criterion.current_weights()), self.current_epoch)
            self.print_to_log_file(f"Deep-supervision weights: {np.round(criterion.current_weights(), 4).tolist()}")

    def on_epoch_end(self):
        if self.collapse_patience is not None and self.local_rank == 0:
            self._watch_for_collapse()
        criterion = self._criterion
        if criterion is not None and criterion.trainable and self.local_rank == 0:
            from nnunet_lossplug.nnunet.plots import plot_ds_weights
            plot_ds_weights(self.logger.get_value(DS_WEIGHTS_LOG_KEY, step=None), self.output_folder)
        super().on_epoch_end()

    def _watch_for_collapse(self) -> None:
        guard = self.__dict__.get("_collapse_guard")
        if guard is None:
            names = {int(v): k for k, v in self.dataset_json["labels"].items() if isinstance(v, int)}
            guard = self._collapse_guard = CollapseGuard(self.collapse_patience, self.collapse_warmup, class_names=[
                f"{label} ({names.get(label, '?')})" for label in self.label_manager.foreground_labels])
        for event in guard.update(self.current_epoch, self.logger.get_value("dice_per_class_or_region", step=-1)):
            warnings.warn(event.message(), stacklevel=2)
            self.print_to_log_file("WARNING: " + event.message())

    def load_checkpoint(self, filename_or_checkpoint) -> None:
        super().load_checkpoint(filename_or_checkpoint)
        criterion = self._criterion
        if criterion is not None and criterion.trainable:
            logged = self.logger.get_value(DS_SIGMA_LOG_KEY, step=None) \
                if DS_SIGMA_LOG_KEY in self.logger.local_logger.my_fantastic_logging else []
            if logged:
                with torch.no_grad():
                    criterion.sigma.copy_(torch.as_tensor(logged[-1], dtype=criterion.sigma.dtype))
                self.print_to_log_file("Deep-supervision weights restored from the checkpoint: "
                                       f"{np.round(criterion.current_weights(), 4).tolist()}")
