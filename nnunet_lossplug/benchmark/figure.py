"""The benchmark's figure: one dot per run and class, per trainer, raw beside post-processed (median as a bar)."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

import numpy as np

from nnunet_lossplug.benchmark.report import KINDS, quality_rows


def draw(document: Mapping, path: Path, target: float | None = None) -> None:
    """Write the figure to ``path`` (PNG); ``target`` draws a dashed line at that Dice."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    labels = sorted(document["label_names"], key=int)
    names = [document["label_names"][label] or f"label {label}" for label in labels]
    rows = quality_rows(document)
    trainers = list(dict.fromkeys(row.trainer for row in rows))
    colours = plt.get_cmap("tab10").colors
    fig, axes = plt.subplots(1, len(KINDS), figsize=(2 * (2.0 + 1.6 * len(names)), 3.8), sharey=True)
    width = 0.8 / max(1, len(trainers))
    rng = np.random.default_rng(0)
    low = 1.0
    for ax, kind in zip(axes, KINDS, strict=True):
        for index, trainer in enumerate(trainers):
            row = next(r for r in rows if r.trainer == trainer and r.kind == kind)
            offset = (index - (len(trainers) - 1) / 2) * width
            for c in range(len(names)):
                values = row.dice[:, c]
                ax.scatter(c + offset + rng.uniform(-width / 4, width / 4, values.size), values, s=14,
                           color=colours[index % 10], alpha=0.75, zorder=3, clip_on=False,  # whole at 0 and 1
                           label=f"{trainer} ({len(row.seeds)} run{'' if len(row.seeds) == 1 else 's'})"
                           if c == 0 else None)
                if np.isfinite(values).any():
                    ax.hlines(np.nanmedian(values), c + offset - width / 3, c + offset + width / 3, color="black",
                              lw=1.5)
                    low = min(low, float(np.nanmin(values)))
        if target is not None:
            ax.axhline(target, color="grey", ls="--", lw=1, label=f"target {target:g}")
        ax.set_xticks(range(len(names)))
        ax.set_xticklabels(names)
        ax.set_title(KINDS[kind], fontsize=9)
        ax.grid(axis="y", alpha=0.3)
    axes[0].set_ylabel("Dice on the scored cases (one dot per run)")
    axes[0].set_ylim(max(0.0, min(0.5, low - 0.05)), 1.0)
    axes[0].legend(fontsize=7, loc="lower left")
    schedule = document["schedule"]
    fig.suptitle(f"{document['dataset']}, {schedule['epochs']} × {schedule['iterations_per_epoch']} iterations "
                 f"(black bar: median)", fontsize=9)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
