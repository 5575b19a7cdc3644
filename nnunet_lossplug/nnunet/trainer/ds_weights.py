"""Bookkeeping of trainable deep-supervision weights (``ds_weights = "trainable"``): log, plot, save, restore.

The weights' parameters ``σ`` live in the criterion (:class:`~nnunet_lossplug.losses.DeepSupervisionLoss`) and
join the optimiser; this object records ``σ`` and the weights ``α_k`` in nnU-Net's logger each epoch (so they
are saved in every checkpoint), plots them to ``ds_weights.png`` beside nnU-Net's ``progress.png``, and restores
``σ`` from a checkpoint's log when nnU-Net resumes (``--c``).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np
import torch

from nnunet_lossplug.losses import DeepSupervisionLoss

DS_SIGMA_LOG_KEY = "lossplug_ds_sigma"
DS_WEIGHTS_LOG_KEY = "lossplug_ds_weights"


class TrainableWeightsLog:
    """Trainable deep-supervision weights in nnU-Net's logger (see the module docstring)."""

    def __init__(self, logger, log: Callable[[str], None] = print):
        self.logger = logger
        self.log = log
        logs = logger.local_logger.my_fantastic_logging
        logs.setdefault(DS_SIGMA_LOG_KEY, [])
        logs.setdefault(DS_WEIGHTS_LOG_KEY, [])

    def record(self, criterion: DeepSupervisionLoss, epoch: int) -> None:
        """Log ``σ`` and the weights of the epoch that ends."""
        self.logger.log(DS_SIGMA_LOG_KEY, criterion.sigma.detach().cpu().tolist(), epoch)
        self.logger.log(DS_WEIGHTS_LOG_KEY, list(criterion.current_weights()), epoch)
        self.log(f"Deep-supervision weights: {np.round(criterion.current_weights(), 4).tolist()}")

    def plot(self, output_folder: str | Path) -> Path:
        return plot_ds_weights(self.logger.get_value(DS_WEIGHTS_LOG_KEY, step=None), output_folder)

    def restore(self, criterion: DeepSupervisionLoss) -> None:
        """Set ``σ`` to the last logged value (after nnU-Net restored its logger from a checkpoint)."""
        logged = self.logger.local_logger.my_fantastic_logging.get(DS_SIGMA_LOG_KEY) or []
        if logged:
            with torch.no_grad():
                criterion.sigma.copy_(torch.as_tensor(logged[-1], dtype=criterion.sigma.dtype))
            self.log("Deep-supervision weights restored from the checkpoint: "
                     f"{np.round(criterion.current_weights(), 4).tolist()}")


def plot_ds_weights(history: Sequence[Sequence[float]], output_folder: str | Path) -> Path:
    """Plot the trainable deep-supervision weights α_k per epoch to ``ds_weights.png``."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    path = Path(output_folder) / "ds_weights.png"
    fig, ax = plt.subplots(figsize=(7, 4))
    if history:
        for level in range(len(history[0])):
            ax.plot(range(len(history)), [weights[level] for weights in history], marker="o", ms=3,
                    label=f"level {level + 1}" + (" (full resolution)" if level == 0 else ""))
    ax.set_xlabel("epoch")
    ax.set_ylabel("weight α_k")
    ax.set_yscale("log")
    ax.set_title("Trainable deep-supervision weights (WMLA, uncertainty weighting)")
    ax.legend(fontsize=8)
    ax.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path
