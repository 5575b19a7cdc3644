"""trainer: :class:`LossPlugTrainer` and the values its subclasses' declarations are made of.

- :mod:`.base`: the base class; it extends nnU-Net's ``nnUNetTrainer`` at its seams (``_build_loss``,
  ``configure_optimizers``, ``on_train_start``, the dataset and pipeline getters, thin wrappers around
  ``train_step`` / ``validation_step`` that call nnU-Net's own) and copies none of its method bodies.
- :mod:`.map_life_cycle`: the map's kind, codec, cache, transport and rectification check, each built once, and
  the mixin that carries the map's encoding through nnU-Net's datasets and augmentation pipelines.
- :mod:`.epoch_hooks`: the per-epoch hooks (epoch to the loss and scheduler, trainable weights, collapse guard).
- :mod:`.loss`: the trainer's ``self.loss``; decodes the batch's maps on the device and checks the value.
- :mod:`.ds_weights`: trainable deep-supervision weights: logged, plotted, restored.
- :mod:`.seeding`: ``NNUNET_LOSSPLUG_SEED`` / the ``seed`` declaration: process and worker seeds, logged, saved.
- :mod:`.graceful_stop`: SIGTERM stops at the next iteration, with ``checkpoint_latest.pth``; workers end with it.
- :mod:`.one_line_errors`: the plugin's refusals under ``nnUNetv2_train`` as one line on stderr.
- :mod:`.start_notes`: the citation (or "derived from") and the loss's sign, for the log and the listing.
- Declarations: :mod:`.specs` (loss, optimiser, class weights), :mod:`.schedules`, :mod:`.networks`.
- Guards: :mod:`.guards` (non-finite loss, absent class, gradient clipping), :mod:`.collapse_guard`,
  :mod:`.label_setup` (regions and ignore labels, docs/conventions.md#regions).

This part may import every other part of :mod:`nnunet_lossplug.nnunet`, :mod:`nnunet_lossplug.losses`,
:mod:`nnunet_lossplug.maps`, :mod:`nnunet_lossplug.networks` and nnunetv2; nothing below it imports it.
"""

from nnunet_lossplug.nnunet.trainer.base import LossPlugTrainer
from nnunet_lossplug.nnunet.trainer.networks import network_ds_scales, network_from_plans
from nnunet_lossplug.nnunet.trainer.schedules import PlateauHalving, PolySchedule, StepDecay
from nnunet_lossplug.nnunet.trainer.seeding import SEED_ENV_VAR, checkpoint_seed
from nnunet_lossplug.nnunet.trainer.specs import LossSpec, OptimizerSpec, TrainingSetClassWeights, adam, sgd

__all__ = ["SEED_ENV_VAR", "LossPlugTrainer", "LossSpec", "OptimizerSpec", "PlateauHalving", "PolySchedule",
           "StepDecay", "TrainingSetClassWeights", "adam", "checkpoint_seed", "network_ds_scales", "network_from_plans",
           "sgd"]
