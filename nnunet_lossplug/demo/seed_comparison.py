"""``demo --compare --seeds K``: two trainers trained on the same K seeds, compared seed by seed.

The unit of comparison is one training run: for each seed and trainer the held-out cases' mean of a metric
(``summary["classes"][label][metric]["mean"]`` of ``nnunet-lossplug evaluate``'s result). Across seeds this
module prints ``mean ± sd`` (sample standard deviation, ``ddof = 1``) per class and metric, and the paired
permutation test of ``nnunet-lossplug compare`` (:func:`~nnunet_lossplug.evaluation.compare_results.compare_results`,
paper 002 Sec. 4.1) with the seeds as the pairs. With ``K`` pairs the exact test's smallest p-value is
``2 / 2^K``, so fewer than 6 seeds can never give p < 0.05; the verdict says so.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np

from nnunet_lossplug.evaluation.compare_results import compare_results, format_comparison_table, pairing_summary
from nnunet_lossplug.evaluation.permutation_test import SIGNIFICANCE_LEVEL
from nnunet_lossplug.evaluation.result_io import load_label_names, load_result
from nnunet_lossplug.evaluation.tables import format_class_table

METRICS = ("dice", "hd", "hd95")


def run_means(result_path: Path) -> dict[str, dict[str, float]]:
    """``{label: {metric: mean over the held-out cases}}`` of one evaluation result."""
    classes = load_result(result_path)["summary"]["classes"]
    return {label: {m: float(classes[label][m]["mean"]) for m in METRICS} for label in classes}


def seeds_as_cases(runs: Mapping[int, Path]) -> dict:
    """A result-shaped dictionary whose "cases" are the seeds (for ``compare_results``'s pairing)."""
    return {"cases": {f"seed {seed}": run_means(path) for seed, path in runs.items()}}


def across_seeds(runs: Mapping[int, Path]) -> dict[str, dict[str, dict[str, float]]]:
    """``{label: {metric: {"mean", "std"}}}`` of the per-run means over the seeds (``std`` NaN for one seed)."""
    per_run = [run_means(path) for path in runs.values()]
    summary: dict[str, dict[str, dict[str, float]]] = {}
    for label in per_run[0]:
        for metric in METRICS:
            values = np.array([run[label][metric] for run in per_run], dtype=float)
            values = values[np.isfinite(values)]
            std = float(values.std(ddof=1)) if values.size > 1 else math.nan
            summary.setdefault(label, {})[metric] = {"mean": float(values.mean()) if values.size else math.nan,
                                                     "std": std}
    return summary


def smallest_p_value(num_pairs: int) -> float:
    """The smallest two-sided p-value an exact paired sign-flip test of ``num_pairs`` pairs can give."""
    return 2.0 / 2**num_pairs if num_pairs else math.nan


def verdict(report, seeds: Sequence[int], names: Mapping[str, str]) -> str:
    """Plain words: which differences are significant, or that none is and why that may be."""
    significant = [row for row in report.rows if row.significant]
    k = len(seeds)
    if significant:
        listed = ", ".join(f"{names.get(r.label, 'label ' + r.label)} {r.metric} (p = {r.p_value:.4f})"
                           for r in significant)
        return (f"Significant at p < {SIGNIFICANCE_LEVEL} over {k} paired seeds: {listed}. Every other difference "
                f"is not significant (no correction for the {len(report.rows)} comparisons).")
    text = (f"No difference is significant (p < {SIGNIFICANCE_LEVEL}) over {k} paired seeds: on this data and "
            f"budget the two trainers cannot be told apart.")
    if smallest_p_value(k) >= SIGNIFICANCE_LEVEL:
        text += (f" With {k} seeds the smallest p-value the exact test can give is {smallest_p_value(k):.3f}; "
                 f"use --seeds 6 or more for a test that can reach p < {SIGNIFICANCE_LEVEL}.")
    return text


def format_seed_comparison(rrw: Mapping[int, Path], default: Mapping[int, Path], dataset_json: Path) -> str:
    """The multi-seed report: mean ± sd per class and metric, the paired test, the verdict."""
    seeds = sorted(rrw)
    names = load_label_names(dataset_json)
    rows = [("RRW (nnUNetTrainerRRW)", across_seeds(rrw)), ("default (nnUNetTrainer)", across_seeds(default))]
    labels = sorted(rows[0][1], key=int)
    report = compare_results(seeds_as_cases(default), seeds_as_cases(rrw), metrics=METRICS)
    return "\n".join([
        f"=== {len(seeds)} seeds ({', '.join(map(str, seeds))}): per class, mean ± sd over the seeds of each run's "
        f"mean over the held-out cases (HD, HD95 in mm)\n",
        format_class_table(rows, labels, names, metrics=METRICS),
        "\n=== paired permutation test, pairs = seeds (A = default, B = RRW)\n",
        format_comparison_table(report, "default", "RRW", names),
        pairing_summary(report, "default", "RRW").replace("cases", "seeds", 1),
        "",
        verdict(report, seeds, names),
    ])
