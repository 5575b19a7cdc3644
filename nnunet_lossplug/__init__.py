"""nnunet-lossplug: the losses of four segmentation papers, plugged into an unchanged nnU-Net v2.

Sub-packages, in the direction of their dependencies:

- :mod:`nnunet_lossplug.maps` — label map -> Region-wise maps and distances (numpy only).
- :mod:`nnunet_lossplug.losses` — logits, targets, maps -> scalar loss (torch only).
- :mod:`nnunet_lossplug.nnunet` — the only code that imports nnunetv2: precompute hook, map transport, base trainer.
- :mod:`nnunet_lossplug.trainers` — the trainer classes (declarations), importable and subclassable; nnU-Net's CLI
  discovers them through ``trainers/`` (installed as ``nnunet_lossplug/ext_trainer_folder``), one-line re-exports.

This module is imported at interpreter start-up by the discovery ``.pth`` file, so it must stay free of heavy imports.
"""

__version__ = "0.1.0"
