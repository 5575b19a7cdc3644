"""Plots shared by the experiment scripts."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

__all__ = ["per_class_dots"]


def per_class_dots(ax, groups: Sequence[tuple[str, str, np.ndarray]], class_names: Sequence[str],
                   offsets: Sequence[float], jitter: float, bar: float, ylabel: str, fontsize: int = 9) -> None:
    """One dot per seed and class for each group ``(label, colour, per_class (seeds, classes))``; black bar: median.

    Groups sit side by side at ``class + offset``, dots jittered by up to ``±jitter`` (seeded), medians drawn
    ``±bar`` wide.
    """
    rng = np.random.default_rng(0)
    for offset, (label, colour, per_class) in zip(offsets, groups):
        for c in range(len(class_names)):
            spread = rng.uniform(-jitter, jitter, len(per_class))
            ax.scatter(c + offset + spread, per_class[:, c], s=12, color=colour, alpha=0.7,
                       label=label if c == 0 else None)
            ax.hlines(np.median(per_class[:, c]), c + offset - bar, c + offset + bar, color="black", lw=1.5)
    ax.set_xticks(range(len(class_names)))
    ax.set_xticklabels(class_names)
    ax.set_ylabel(ylabel)
    ax.set_ylim(-0.02, 1.02)
    ax.grid(axis="y", alpha=0.3)
    ax.legend(loc="lower left", fontsize=fontsize)
    ax.set_title("Per-class final Dice (black bar: median)", fontsize=10)
