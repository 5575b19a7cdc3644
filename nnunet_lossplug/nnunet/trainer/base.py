"""``LossPlugTrainer``: the one base class behind every trainer of the plugin; subclasses only declare.

It extends nnU-Net's ``nnUNetTrainer`` at its seams and copies none of its methods (the class docstring lists
the declarations, the module docstring of :mod:`~nnunet_lossplug.nnunet.trainer` the seams). The map's
life-cycle is :class:`~.map_life_cycle.MapLifeCycle`'s and its way through nnU-Net's loader the mixin
:class:`~.map_life_cycle.MapCarryingSeams`'s, the per-epoch hooks (scheduler, trainable deep-supervision weights
via :class:`~.ds_weights.TrainableWeightsLog`, collapse guard) the mixin :class:`~.epoch_hooks.EpochHooks`'s,
the decode and the finite check :class:`~.loss.TrainerLoss`'s, the one-line refusals the mixin
:class:`~.one_line_errors.OneLineErrors`'s, the stop on SIGTERM the mixin :class:`~.graceful_stop.GracefulStop`'s,
the checkpoint check before nnU-Net's load the mixin :class:`~.checked_checkpoints.CheckedCheckpoints`'s.
Inference (``nnUNetv2_predict``) only builds the network: no map, cache or statistic is needed there.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path
from typing import ClassVar

import torch
from nnunetv2.configuration import default_num_processes
from nnunetv2.training.nnUNetTrainer.nnUNetTrainer import nnUNetTrainer
from torch import distributed as dist
from torch import nn

from nnunet_lossplug.losses import DeepSupervisionLoss, deep_supervision_weights
from nnunet_lossplug.maps import get_map_kind
from nnunet_lossplug.maps.registry import MapKind
from nnunet_lossplug.nnunet.codecs.softmax import MapCodec
from nnunet_lossplug.nnunet.errors import TrainerDeclarationError
from nnunet_lossplug.nnunet.map_cache.cache import CaseCache
from nnunet_lossplug.nnunet.map_cache.source import PreprocessedSource, check_label_setup
from nnunet_lossplug.nnunet.trainer.checked_checkpoints import CheckedCheckpoints
from nnunet_lossplug.nnunet.trainer.ds_weights import TrainableWeightsLog
from nnunet_lossplug.nnunet.trainer.epoch_hooks import EpochHooks
from nnunet_lossplug.nnunet.trainer.graceful_stop import GracefulStop
from nnunet_lossplug.nnunet.trainer.guards import (
    check_device,
    check_finite_loss,
    check_grad_clip,
    check_previous_stage,
    clip_before_step,
    warn_if_defined_twice,
)
from nnunet_lossplug.nnunet.trainer.label_setup import LabelSetup
from nnunet_lossplug.nnunet.trainer.loss import TrainerLoss, compile_loss_parts
from nnunet_lossplug.nnunet.trainer.map_life_cycle import MapCarryingSeams, MapLifeCycle
from nnunet_lossplug.nnunet.trainer.mixed_precision import grad_scaler_for
from nnunet_lossplug.nnunet.trainer.networks import check_pretrained_weights_of_command_line
from nnunet_lossplug.nnunet.trainer.one_line_errors import OneLineErrors
from nnunet_lossplug.nnunet.trainer.schedules import PolySchedule
from nnunet_lossplug.nnunet.trainer.seeding import SeededTraining
from nnunet_lossplug.nnunet.trainer.specs import LossSpec, OptimizerSpec
from nnunet_lossplug.nnunet.trainer.start_notes import log_start_notes, round_weights
from nnunet_lossplug.nnunet.trainer.training_set_statistics import TrainingSetStatistics


class LossPlugTrainer(OneLineErrors, GracefulStop, EpochHooks, SeededTraining, MapCarryingSeams, CheckedCheckpoints,
                      TrainingSetStatistics, nnUNetTrainer):
    """Base class of the plugin's trainers; subclasses declare (the class attributes below), this class wires.

    ``seed`` (None: unseeded; ``NNUNET_LOSSPLUG_SEED`` overrides it) is :class:`~.seeding.SeededTraining`'s.
    """

    #: :class:`LossSpec` of the per-resolution loss (required)
    loss_spec: ClassVar[LossSpec | None] = None
    #: map kind the loss needs: a registered name (``nnunet_lossplug.maps.available_map_kinds()``) or a MapKind
    rw_map: ClassVar[str | MapKind | None] = None
    #: where maps come from: "precomputed" (the cache), "worker" (per patch) or "loss" (in the training process)
    map_placement: ClassVar[str] = "precomputed"
    #: WMLA weights: "nnunet", a tuple from high to low resolution, or "trainable"
    ds_weights: ClassVar[str | tuple[float, ...]] = "nnunet"
    #: :class:`OptimizerSpec` (None = nnU-Net's SGD, lr 1e-2), scheduled by ``lr_schedule``
    optimizer_spec: ClassVar[OptimizerSpec | None] = None
    #: L2 norm of gradient clipping, at most nnU-Net's 12 (Nguyen et al. 2019 uses 5); see
    # :func:`~.guards.clip_before_step`
    grad_clip: ClassVar[float] = 12.0
    #: None keeps nnU-Net's 1000 epochs / 250 training / 50 validation iterations per epoch
    epochs: ClassVar[int | None] = None
    iterations_per_epoch: ClassVar[int | None] = None
    val_iterations_per_epoch: ClassVar[int | None] = None
    #: how many training cases the start-up rectification check reads (Valverde & Tohka 2022 Sec. 3.4)
    rectification_check_cases: ClassVar[int] = 3
    #: a function with the signature of nnU-Net's ``build_network_architecture`` (None = nnU-Net's, from the plans);
    #: used for training and by ``nnUNetv2_predict``
    network_builder: ClassVar[Callable[..., nn.Module] | None] = None
    #: for a network whose deep-supervision outputs differ from nnU-Net's: ``configuration_manager -> scales``
    network_ds_scales: ClassVar[Callable[..., list[list[float]]] | None] = None
    #: :mod:`~nnunet_lossplug.nnunet.trainer.schedules` (nnU-Net's poly rule by default)
    lr_schedule: ClassVar[PolySchedule] = PolySchedule()
    #: the paper, table or equation the trainer reproduces (shown by ``nnunet-lossplug trainers``)
    reference: ClassVar[str] = ""
    #: warn when a class's validation pseudo-Dice stays 0 for this many epochs after the warm-up (None: off)
    collapse_patience: ClassVar[int | None] = 10
    collapse_warmup: ClassVar[int] = 10

    def __init__(self, plans: dict, configuration: str, fold: int, dataset_json: dict,
                 device: torch.device = torch.device("cuda")):  # noqa: B008 - nnU-Net's signature
        super().__init__(plans, configuration, fold, dataset_json, device)
        name = type(self).__name__
        if self.loss_spec is None:
            raise TrainerDeclarationError(f"{name} declares no loss_spec; a LossPlugTrainer needs one.")
        check_grad_clip(self.grad_clip, name)
        check_label_setup(self.label_manager)
        self.label_setup = LabelSetup.from_label_manager(self.label_manager)
        self.source = PreprocessedSource(
            self.plans_manager.dataset_name, self.plans_manager.plans_name, self.configuration_name,
            Path(self.preprocessed_dataset_folder_base), self.plans_manager.plans, self.dataset_json)
        self.maps = MapLifeCycle(self.map_kind(), self.map_placement, self.source, lambda: self.do_split()[0],
                                 self.configuration_manager.spacing, self.rectification_check_cases,
                                 self.print_to_log_file)
        self.label_setup.check_placement(self.map_placement, self.rw_map is not None, name)
        if self.epochs is not None:
            self.num_epochs = self.epochs
        if self.iterations_per_epoch is not None:
            self.num_iterations_per_epoch = self.iterations_per_epoch
        if self.val_iterations_per_epoch is not None:
            self.num_val_iterations_per_epoch = self.val_iterations_per_epoch
        if self.optimizer_spec is not None:
            self.initial_lr = self.optimizer_spec.lr
            self.weight_decay = self.optimizer_spec.kwargs.get("weight_decay", 0.0)
        trainable = self.ds_weights == "trainable"
        self.ds_weights_log = TrainableWeightsLog(self.logger, self.print_to_log_file) if trainable else None
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

    def map_codec(self) -> MapCodec | None:
        """How the declared map is stored and carried (None without a map); see :class:`MapLifeCycle`."""
        return self.maps.codec()

    def _get_deep_supervision_scales(self):
        if self.enable_deep_supervision and self.network_ds_scales is not None:
            return type(self).network_ds_scales(self.configuration_manager)
        return super()._get_deep_supervision_scales()

    def _num_outputs(self) -> int:
        return len(self._get_deep_supervision_scales()) if self.enable_deep_supervision else 1

    def _ensure_cache(self, cache: CaseCache, always_log: bool = True) -> None:
        """Run the precompute hook for ``cache`` on rank 0 with ``nnUNet_def_n_proc`` workers (other ranks wait)."""
        if self.local_rank == 0:
            processes = max(1, min(int(default_num_processes), os.cpu_count() or 1))
            summary = cache.ensure(self.source.identifiers(), num_processes=processes)
            if always_log or summary.cases_computed:
                self.print_to_log_file(summary.line())
        if self.is_ddp:
            dist.barrier()

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
        kind = self.maps.loss_kind()
        spacing = self.configuration_manager.spacing if kind is not None else None
        loss = TrainerLoss(criterion, kind, self.source.num_classes if kind is not None else 0, spacing,
                           label_setup=self.label_setup, transport=self.maps.transport)
        if self._do_i_compile():  # as nnU-Net's _build_loss compiles its Dice loss
            self.print_to_log_file(f"Compiling the loss parts: {', '.join(compile_loss_parts(criterion))}")
        self.grad_scaler = grad_scaler_for(criterion, self.grad_scaler, self.device.type, self.print_to_log_file)
        maps = f"{self.rw_map} ({self.map_placement})" if self.rw_map is not None else "none"
        self.print_to_log_file(
            f"Loss: {self.loss_spec.describe() if self.loss_spec else '?'} on {self.label_setup.describe()}; "
            f"maps: {maps}; deep-supervision weights: {round_weights(criterion.current_weights())}"
        )
        log_start_notes(type(self), criterion, self.print_to_log_file)
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
        clip_before_step(optimizer, self.network.parameters, self.grad_clip)  # nnU-Net's train_step clips at 12
        scheduler = self.lr_schedule.build(optimizer, self.initial_lr, self.num_epochs, self.num_iterations_per_epoch)
        return optimizer, scheduler

    # ------------------------------------------------------------------ start-up: hook and checks
    def initialize(self):
        super().initialize()
        # nnU-Net's run_training loads -pretrained_weights right after this; a network mismatch stops here in one line
        check_pretrained_weights_of_command_line(self.network, type(self).__name__, self.configuration_name)

    def on_train_start(self):
        check_device(self.device)  # before the map hook: nnU-Net's default -device cuda on a machine without one
        check_previous_stage(self)
        if self.local_rank == 0:
            warn_if_defined_twice(type(self), self.print_to_log_file)  # nnU-Net's -tr NAME takes the first file
        if self.maps.kind is not None and self.local_rank == 0:
            self.maps.check_rectification()  # first: its verdict chooses how users' own map kinds are stored
        cache = self.maps.cache()
        if cache is not None:
            self._ensure_cache(cache)
        super().on_train_start()

    # ------------------------------------------------------------------ steps: nnU-Net's own, wrapped
    def train_step(self, batch: dict) -> dict:
        """nnU-Net's ``train_step`` (the loss decodes the maps); a non-finite loss stops the run naming the cases."""
        with self.loss.deferred_checks():  # input checks on the device: nothing read there but nnU-Net's reads
            result = super().train_step(batch)
        check_finite_loss(self, result["loss"], batch)  # nnU-Net's logged loss, already on the host
        return result

    def validation_step(self, batch: dict) -> dict:
        """nnU-Net's ``validation_step`` on the decoded target; the loss gets the maps beforehand."""
        target, self.loss.pending_maps = self.decode_batch(batch)
        try:
            return super().validation_step({**batch, "target": target})
        finally:
            self.loss.pending_maps = None
