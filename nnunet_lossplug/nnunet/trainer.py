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
- ``get_dataloaders``: nnU-Net's loaders and augmentation, plus the map carried as a regression target and
  decoded per resolution in the worker processes (``map_placement = "precomputed"``), or computed per
  patch in the workers (``"worker"``, the reference code's maps), or computed in the training process
  inside the loss (``"loss"``, the reference code's placement; kept for benchmarks).
- ``train_step`` / ``validation_step``: hand the batch's maps to the loss; gradient clipping ``grad_clip``.
- ``configure_optimizers``: the declared optimiser with nnU-Net's poly schedule; trainable WMLA weights
  join the optimiser and are logged each epoch, saved in checkpoints and restored by ``--c``.
- epoch-dependent losses (``set_epoch``) read the trainer's epoch, so resuming at epoch e gives α(e).

Inference (``nnUNetv2_predict``) only builds the network: no map, cache or statistic is needed there.
"""

from __future__ import annotations

import os
import warnings
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import ClassVar

import numpy as np
import torch
from batchgenerators.dataloading.nondet_multi_threaded_augmenter import NonDetMultiThreadedAugmenter
from batchgenerators.dataloading.single_threaded_augmenter import SingleThreadedAugmenter
from nnunetv2.configuration import default_num_processes
from nnunetv2.training.nnUNetTrainer.nnUNetTrainer import nnUNetTrainer
from nnunetv2.utilities.default_n_proc_DA import get_allowed_n_proc_DA
from nnunetv2.utilities.helpers import dummy_context
from torch import autocast, nn
from torch import distributed as dist

from nnunet_lossplug.losses import DeepSupervisionLoss, deep_supervision_weights
from nnunet_lossplug.maps import get_map_kind, rectification_report
from nnunet_lossplug.maps.registry import MapKind
from nnunet_lossplug.nnunet.collapse_guard import CollapseGuard
from nnunet_lossplug.nnunet.dataloading import RW_MAP_KEY, RWMapDataLoader
from nnunet_lossplug.nnunet.map_codecs import codec_for
from nnunet_lossplug.nnunet.precompute import CaseCache
from nnunet_lossplug.nnunet.schedules import PolySchedule
from nnunet_lossplug.nnunet.source import PreprocessedSource, check_label_setup
from nnunet_lossplug.nnunet.specs import LossSpec, OptimizerSpec
from nnunet_lossplug.nnunet.transforms import ComputeRWMapsPerPatch, DecodeRWMaps

MAP_PLACEMENTS = ("precomputed", "worker", "loss")
DS_SIGMA_LOG_KEY = "lossplug_ds_sigma"
DS_WEIGHTS_LOG_KEY = "lossplug_ds_weights"


def _to_device(value, device: torch.device):
    if value is None:
        return None
    if isinstance(value, list):
        return [v.to(device, non_blocking=True) for v in value]
    return value.to(device, non_blocking=True)


class TrainerLoss(nn.Module):
    """The trainer's ``self.loss``: deep supervision around the declared loss, fed with the batch's maps.

    nnU-Net's ``validation_step`` calls ``self.loss(output, target)``; the maps of that batch are handed over
    beforehand through :attr:`pending_maps`. With ``map_kind`` set (the ``"loss"`` placement), maps are
    computed here from the targets instead, in the training process, as the reference code does.
    """

    def __init__(self, criterion: DeepSupervisionLoss, map_kind: MapKind | None = None,
                 num_classes: int = 0, spacing: Sequence[float] | None = None):
        super().__init__()
        self.criterion = criterion
        self.map_kind = map_kind
        self.num_classes = num_classes
        self.spacing = tuple(spacing) if spacing is not None else None
        self.pending_maps: list[torch.Tensor] | None = None

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
        outputs = output if isinstance(output, (list, tuple)) else [output]
        targets = target if isinstance(target, (list, tuple)) else [target]
        maps = rw_maps if rw_maps is not None else self.pending_maps
        if maps is not None and not isinstance(maps, (list, tuple)):
            maps = [maps]
        if maps is None and self.map_kind is not None:
            maps = self._maps_from_targets(list(targets))
        return self.criterion(list(outputs), list(targets), list(maps) if maps is not None else None)


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

    def _map_cache(self) -> CaseCache | None:
        kind = self.map_kind()
        if kind is None or self.map_placement != "precomputed":
            return None
        return CaseCache(self.source, codec_for(kind, self.source.num_classes))

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
        counts = stats.class_voxel_counts(tr_keys)
        self.print_to_log_file(f"Training-set class voxel counts: {counts.tolist()}")
        return counts

    # ------------------------------------------------------------------ loss and optimiser
    def _build_criterion(self) -> DeepSupervisionLoss:
        if self._criterion is None:
            assert self.loss_spec is not None
            loss = self.loss_spec.build(self)
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
        loss = TrainerLoss(criterion, kind, self.source.num_classes if kind is not None else 0, spacing)
        self.print_to_log_file(
            f"Loss: {self.loss_spec.describe() if self.loss_spec else '?'}; maps: {self.rw_map} "
            f"({self.map_placement}); deep-supervision weights: {criterion.current_weights()}"
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
        cache = self._map_cache()
        if cache is not None:
            if self.local_rank == 0:
                summary = cache.ensure(self.source.identifiers(), num_processes=self._hook_processes())
                self.print_to_log_file(summary.line())
            if self.is_ddp:
                dist.barrier()
        if self.map_kind() is not None and self.local_rank == 0:
            self._check_rectification()
        super().on_train_start()

    def _check_rectification(self) -> None:
        kind = self.map_kind()
        assert kind is not None
        if kind.name in ("boundary", "distance"):
            return  # known not rectified (boundary) or not an RW map at all (HD distances); documented
        tr_keys, _ = self.do_split()
        fractions = []
        for identifier in list(tr_keys)[: self.rectification_check_cases]:
            labels = self.source.labels_for_maps(self.source.load_segmentation(identifier), identifier)
            z = kind.compute(labels, self.source.num_classes, self.source.case_spacing(identifier))
            fractions.append(rectification_report(z, labels).fraction_unstable)
        worst = max(fractions, default=0.0)
        if worst > 0:
            message = (
                f"RW map '{kind.name}' is not rectified: on {len(fractions)} training cases up to {worst:.2%} of "
                f"voxels can get more than one negative logit-gradient component (paper 002 Sec. 3.4), which "
                f"can make training unstable. Make all non-true-class values of each voxel equal (as RRW does)."
            )
            warnings.warn(message, stacklevel=2)
            self.print_to_log_file("WARNING: " + message)
        else:
            self.print_to_log_file(f"Rectification check of '{kind.name}' maps: 0 unstable voxels.")

    # ------------------------------------------------------------------ data
    def _carries_maps(self) -> bool:
        return self.map_kind() is not None and self.map_placement in ("precomputed", "worker")

    def _map_transform(self, deep_supervision_scales):
        kind = self.map_kind()
        assert kind is not None
        if self.map_placement == "precomputed":
            return DecodeRWMaps(codec_for(kind, self.source.num_classes))
        return ComputeRWMapsPerPatch(kind, self.source.num_classes, self.configuration_manager.spacing,
                                     deep_supervision_scales)

    def get_dataloaders(self):
        if not self._carries_maps():
            return super().get_dataloaders()
        if self.dataset_class is None:
            from nnunetv2.training.dataloading.nnunet_dataset import infer_dataset_class
            self.dataset_class = infer_dataset_class(self.preprocessed_dataset_folder)
        patch_size = self.configuration_manager.patch_size
        ds_scales = self._get_deep_supervision_scales()
        rotation, dummy_2d, initial_patch_size, mirror_axes = \
            self.configure_rotation_dummyDA_mirroring_and_inital_patch_size()
        labels = self.label_manager
        tr_transforms = self.get_training_transforms(
            patch_size, rotation, ds_scales, mirror_axes, dummy_2d,
            use_mask_for_norm=self.configuration_manager.use_mask_for_norm, is_cascaded=False,
            foreground_labels=labels.foreground_labels, regions=None, ignore_label=None)
        val_transforms = self.get_validation_transforms(
            ds_scales, is_cascaded=False, foreground_labels=labels.foreground_labels, regions=None, ignore_label=None)
        tr_transforms.transforms.append(self._map_transform(ds_scales))
        val_transforms.transforms.append(self._map_transform(ds_scales))

        dataset_tr, dataset_val = self.get_tr_and_val_datasets()
        cache = self._map_cache()
        common = dict(label_manager=labels, oversample_foreground_percent=self.oversample_foreground_percent,
                      sampling_probabilities=None, pad_sides=None,
                      probabilistic_oversampling=self.probabilistic_oversampling, map_cache=cache)
        dl_tr = RWMapDataLoader(dataset_tr, self.batch_size, initial_patch_size, patch_size,
                                transforms=tr_transforms, **common)
        dl_val = RWMapDataLoader(dataset_val, self.batch_size, patch_size, patch_size,
                                 transforms=val_transforms, **common)
        processes = get_allowed_n_proc_DA()
        if processes == 0:
            gen_tr, gen_val = SingleThreadedAugmenter(dl_tr, None), SingleThreadedAugmenter(dl_val, None)
        else:
            pin = self.device.type == "cuda"
            gen_tr = NonDetMultiThreadedAugmenter(dl_tr, None, processes, max(6, processes // 2), None, pin,
                                                  wait_time=0.002)
            gen_val = NonDetMultiThreadedAugmenter(dl_val, None, max(1, processes // 2),
                                                   max(3, processes // 4), None, pin, wait_time=0.002)
        _ = next(gen_tr)
        _ = next(gen_val)
        return gen_tr, gen_val

    # ------------------------------------------------------------------ steps
    def on_train_epoch_start(self):
        super().on_train_epoch_start()
        for module in self.loss.modules():
            if hasattr(module, "set_epoch"):
                module.set_epoch(self.current_epoch)

    def train_step(self, batch: dict) -> dict:
        data = batch["data"].to(self.device, non_blocking=True)
        target = _to_device(batch["target"], self.device)
        maps = _to_device(batch.get(RW_MAP_KEY), self.device)
        self.optimizer.zero_grad(set_to_none=True)
        with autocast(self.device.type, enabled=True) if self.device.type == "cuda" else dummy_context():
            output = self.network(data)
            loss = self.loss(output, target, maps)
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
        self.loss.pending_maps = _to_device(batch.get(RW_MAP_KEY), self.device)
        try:
            return super().validation_step(batch)
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
