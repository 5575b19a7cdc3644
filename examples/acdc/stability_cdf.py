"""Empirical CDF of per-model validation Dice over many training runs (Valverde & Tohka 2022, eq. 8, Fig. 5 and 6c).

Each run is one ``evaluation.json`` written by ``nnunet-lossplug evaluate``; its score is the mean over
classes of the mean Dice over the validation cases (``summary.mean_over_classes.dice``, recomputed from the
cases when absent). For a group of runs with scores ``s_1..s_m``, ``CDF(x) = (1/m) Σ_j 1[s_j ≤ x]``: the
fraction of models reaching a Dice of ``x`` or lower. A model that failed to converge shows as an early step
(the paper's RW-Boundary runs stopped near Dice 0.5).

Usage::

    python examples/acdc/stability_cdf.py -o fig5_cdf.png \\
        --group RW-Boundary "results/stability/nnUNetTrainerRWBoundary_50epochs/run_*/evaluation.json" \\
        --group RRW "results/stability/nnUNetTrainerRRW_50epochs/run_*/evaluation.json"
"""

from __future__ import annotations

import argparse
import csv
import glob
import json
import sys
from pathlib import Path

import numpy as np


def run_score(evaluation_json: Path) -> float:
    """Mean over classes of the mean Dice over cases of one evaluation result."""
    data = json.loads(Path(evaluation_json).read_text())
    summary_value = data.get("summary", {}).get("mean_over_classes", {}).get("dice")
    if summary_value is not None:
        return float(summary_value)
    labels = sorted({lb for per_case in data["cases"].values() for lb in per_case})
    return float(np.mean([np.mean([c[lb]["dice"] for c in data["cases"].values()]) for lb in labels]))


def empirical_cdf(scores: list[float]) -> tuple[np.ndarray, np.ndarray]:
    """Sorted scores ``x`` and ``CDF(x) = (1/m) #{s ≤ x}`` at each of them (ties share the top value)."""
    x = np.sort(np.asarray(scores, dtype=float))
    return x, np.searchsorted(x, x, side="right") / x.size


def expand(patterns: list[str]) -> list[Path]:
    """Files matched by shell-style patterns (a pattern without wildcard is taken as a path)."""
    files = []
    for pattern in patterns:
        matched = sorted(glob.glob(pattern)) if any(ch in pattern for ch in "*?[") else [pattern]
        files.extend(Path(m) for m in matched)
    return files


def plot_cdfs(groups: dict[str, list[float]], out: Path, threshold: float) -> Path:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6.0, 4.2))
    for name, scores in groups.items():
        x, y = empirical_cdf(scores)
        ax.step(np.concatenate([[0.0], x, [1.0]]), np.concatenate([[0.0], y, [1.0]]), where="post",
                linewidth=2, label=f"{name} (n={len(scores)})")
    ax.axvline(threshold, color="gray", linestyle=":", linewidth=1)
    ax.set_xlabel("mean validation Dice of a model")
    ax.set_ylabel("fraction of models with Dice ≤ x")
    ax.set_xlim(0.0, 1.0)
    ax.set_ylim(0.0, 1.02)
    ax.grid(alpha=0.3)
    ax.legend(loc="upper left", frameon=False)
    ax.set_title("Empirical CDF of model Dice (Valverde & Tohka 2022, eq. 8)")
    fig.tight_layout()
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, dpi=150)
    plt.close(fig)
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Empirical CDF of model Dice over training runs (Fig. 5/6c).")
    parser.add_argument("--group", nargs="+", action="append", required=True, metavar=("NAME", "JSON"),
                        help="a group name followed by evaluation.json files or glob patterns")
    parser.add_argument("-o", "--out", type=Path, required=True, help="figure to write (.png/.pdf)")
    parser.add_argument("--threshold", type=float, default=0.8,
                        help="Dice below which a model counts as not converged (default: 0.8)")
    args = parser.parse_args(argv)
    groups: dict[str, list[float]] = {}
    for name, *patterns in args.group:
        files = expand(patterns)
        if not files:
            print(f"stability_cdf: error: group {name!r} matched no evaluation file ({patterns}).", file=sys.stderr)
            return 2
        groups[name] = [run_score(f) for f in files]
    plot_cdfs(groups, args.out, args.threshold)
    with args.out.with_suffix(".csv").open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["group", "run", "mean_dice"])
        for name, scores in groups.items():
            writer.writerows([name, i, s] for i, s in enumerate(scores))
    for name, scores in groups.items():
        failed = sum(s < args.threshold for s in scores)
        print(f"{name}: {len(scores)} models, median Dice {np.median(scores):.3f}, "
              f"{failed} below {args.threshold} ({100 * failed / len(scores):.0f} %)")
    print(f"wrote {args.out} and {args.out.with_suffix('.csv')}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
