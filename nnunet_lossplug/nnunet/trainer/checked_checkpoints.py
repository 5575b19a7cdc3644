"""``CheckedCheckpoints``: nnU-Net's ``load_checkpoint`` (``--c``, ``--val``) reached only after the plugin read the
checkpoint without trust (:func:`~nnunet_lossplug.nnunet.safe_loading.read_training_checkpoint`): a file another
trainer wrote, or one that names code to run, is refused in one line before nnU-Net's own full-trust load."""

from __future__ import annotations

from nnunet_lossplug.nnunet.safe_loading import read_training_checkpoint


class CheckedCheckpoints:
    """Mixin for an ``nnUNetTrainer`` subclass; place it before ``nnUNetTrainer`` in the bases."""

    def load_checkpoint(self, filename_or_checkpoint: dict | str) -> None:
        if isinstance(filename_or_checkpoint, str):
            read_training_checkpoint(filename_or_checkpoint, type(self).__name__)
        super().load_checkpoint(filename_or_checkpoint)
