"""Validation Dice per epoch averaged over runs, from nnU-Net checkpoints (Valverde & Tohka 2022, Fig. 6a/b).

nnU-Net v2 stores its training log in every checkpoint (``checkpoint['logging']``): per epoch the
``mean_fg_dice`` — a pseudo-Dice over the foreground classes on 50 validation *patches* — and
``epoch_start_timestamps`` / ``epoch_end_timestamps``. The paper's curves are the Dice of full validation
volumes after each epoch (its reference code predicted them every epoch); nnU-Net's patch pseudo-Dice follows
the same trend at a fraction of the cost, which is the deviation to keep in mind when comparing shapes.

The script also prints the mean epoch time of each group, the number to scale GPU-time estimates with.

Usage::

    R=results/fig6; C=Dataset027_ACDC/*/fold_0/checkpoint_final.pth
    python examples/acdc/training_curves.py -o fig6_curves.png \\
        --group "RW-Boundary + Dice (gradual)" "$R/nnUNetTrainerBoundaryDice/run_*/$C" \\
        --group "RRW + Dice (gradual)" "$R/nnUNetTrainerRRWDiceGradual/run_*/$C"

Checkpoints are loaded with ``torch.load(weights_only=False)``: load only checkpoints you trained yourself.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
from stability_cdf import expand


def read_log(checkpoint: Path) -> dict[str, list[float]]:
    """nnU-Net's training log stored in a checkpoint."""
    import torch

    data = torch.load(checkpoint, map_location="cpu", weights_only=False)
    if "logging" not in data or "mean_fg_dice" not in data["logging"]:
        raise ValueError(f"{checkpoint} holds no nnU-Net training log (expected checkpoint['logging']).")
    return data["logging"]


def mean_curve(logs: list[dict]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per epoch: mean, min and max of ``mean_fg_dice`` over runs, truncated to the shortest run."""
    length = min(len(log["mean_fg_dice"]) for log in logs)
    curves = np.array([log["mean_fg_dice"][:length] for log in logs], dtype=float)
    return curves.mean(axis=0), curves.min(axis=0), curves.max(axis=0)


def mean_epoch_seconds(logs: list[dict]) -> float:
    """Mean duration of an epoch over all runs (from nnU-Net's epoch timestamps)."""
    durations = [
        end - start
        for log in logs
        for start, end in zip(log["epoch_start_timestamps"], log["epoch_end_timestamps"], strict=False)
    ]
    return float(np.mean(durations)) if durations else float("nan")


def main(argv: list[str] | None = None) -> int:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    parser = argparse.ArgumentParser(description="Mean validation pseudo-Dice per epoch over runs (Fig. 6a/b).")
    parser.add_argument("--group", nargs="+", action="append", required=True, metavar=("NAME", "CHECKPOINT"),
                        help="a group name followed by checkpoint files or glob patterns")
    parser.add_argument("-o", "--out", type=Path, required=True, help="figure to write")
    args = parser.parse_args(argv)

    fig, ax = plt.subplots(figsize=(7.0, 4.2))
    for name, *patterns in args.group:
        files = expand(patterns)
        if not files:
            print(f"training_curves: error: group {name!r} matched no checkpoint ({patterns}).", file=sys.stderr)
            return 2
        logs = [read_log(f) for f in files]
        mean, low, high = mean_curve(logs)
        epochs = np.arange(1, mean.size + 1)
        (line,) = ax.plot(epochs, mean, linewidth=1.8, label=f"{name} (n={len(logs)})")
        ax.fill_between(epochs, low, high, color=line.get_color(), alpha=0.15, linewidth=0)
        print(f"{name}: {len(logs)} runs, {mean.size} epochs, final mean pseudo-Dice {mean[-1]:.3f}, "
              f"mean epoch time {mean_epoch_seconds(logs):.1f} s")
    ax.set_xlabel("epoch")
    ax.set_ylabel("validation pseudo-Dice (foreground mean)")
    ax.set_ylim(0.0, 1.0)
    ax.grid(alpha=0.3)
    ax.legend(frameon=False, fontsize=8, loc="lower right")
    ax.set_title("Validation Dice during training (mean over runs, band = min-max)")
    fig.tight_layout()
    args.out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(args.out, dpi=150)
    plt.close(fig)
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
