"""Small training plots of our own, written next to nnU-Net's ``progress.png``."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path


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
