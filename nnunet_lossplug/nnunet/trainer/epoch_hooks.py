"""Once per epoch in a ``LossPlugTrainer``: the epoch reaches the loss and the scheduler, the trainable
deep-supervision weights are logged, plotted and restored, and the collapse guard watches the validation Dice.

:class:`EpochHooks` is a mixin for a subclass of nnU-Net's ``nnUNetTrainer`` (as
:class:`~.seeding.SeededTraining`): each method extends nnU-Net's method of the same name through ``super()``,
copying nothing. It reads the trainer's ``loss``, ``lr_scheduler``, ``ds_weights_log``
(:class:`~.ds_weights.TrainableWeightsLog`, None unless ``ds_weights = "trainable"``), ``_criterion`` (the
deep-supervision loss once built), the ``collapse_patience`` / ``collapse_warmup`` declarations and nnU-Net's
logger.
"""

from __future__ import annotations

import warnings

from nnunet_lossplug.nnunet.trainer.collapse_guard import CollapseGuard


class EpochHooks:
    """Per-epoch hooks of the plugin's trainers (see the module docstring)."""

    _collapse_guard: CollapseGuard | None = None  # built on the first epoch end that watches

    def on_train_epoch_start(self):
        super().on_train_epoch_start()
        for module in self.loss.modules():
            if hasattr(module, "set_epoch"):
                module.set_epoch(self.current_epoch)

    def on_validation_epoch_end(self, val_outputs):
        super().on_validation_epoch_end(val_outputs)
        observe = getattr(self.lr_scheduler, "observe_validation_loss", None)
        if observe is not None:
            observe(float(self.logger.get_value("val_losses", step=-1)))

    def on_train_epoch_end(self, train_outputs):
        super().on_train_epoch_end(train_outputs)
        if self.ds_weights_log is not None and self._criterion is not None:
            self.ds_weights_log.record(self._criterion, self.current_epoch)

    def on_epoch_end(self):
        if self.collapse_patience is not None and self.local_rank == 0:
            self._watch_for_collapse()
        if self.ds_weights_log is not None and self.local_rank == 0:
            self.ds_weights_log.plot(self.output_folder)
        super().on_epoch_end()

    def _watch_for_collapse(self) -> None:
        if self._collapse_guard is None:
            names = {int(v): k for k, v in self.dataset_json["labels"].items() if isinstance(v, int)}
            self._collapse_guard = CollapseGuard(self.collapse_patience, self.collapse_warmup, class_names=[
                f"{label} ({names.get(label, '?')})" for label in self.label_manager.foreground_labels])
        dice = self.logger.get_value("dice_per_class_or_region", step=-1)
        for message in (event.message() for event in self._collapse_guard.update(self.current_epoch, dice)):
            warnings.warn(message, stacklevel=2)
            self.print_to_log_file("WARNING: " + message)

    def load_checkpoint(self, filename_or_checkpoint) -> None:
        super().load_checkpoint(filename_or_checkpoint)
        if self.ds_weights_log is not None and self._criterion is not None:
            self.ds_weights_log.restore(self._criterion)
