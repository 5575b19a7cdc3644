"""Per-class summary statistics of an evaluation: mean ± std of Dice, HD and HD95, and empty-case counts."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence

import numpy as np

from nnunet_lossplug.evaluation.case_metrics import STATUSES

METRICS: tuple[str, ...] = ("dice", "hd", "hd95")


def parse_metrics(text: str) -> list[str]:
    """``"dice,hd"`` -> ``["dice", "hd"]``, checking each name against :data:`METRICS`."""
    metrics = [m.strip().lower() for m in text.split(",") if m.strip()]
    unknown = [m for m in metrics if m not in METRICS]
    if unknown or not metrics:
        raise ValueError(f"metrics must be a comma-separated list of {list(METRICS)}, got {text!r}.")
    return metrics


def describe(values: Sequence[float]) -> dict[str, float | int]:
    """Mean, sample standard deviation (ddof = 1), median, min and max of the finite values.

    Non-finite values (NaN: an undefined distance under the ``"nan"`` empty convention) are excluded and
    counted in ``n_undefined``; ``n`` is the number of values used. Statistics of an empty set are NaN,
    and so is the standard deviation of a single value.
    """
    array = np.asarray(values, dtype=float)
    finite = array[np.isfinite(array)]
    n = int(finite.size)
    return {
        "mean": float(finite.mean()) if n else math.nan,
        "std": float(finite.std(ddof=1)) if n >= 2 else math.nan,
        "median": float(np.median(finite)) if n else math.nan,
        "min": float(finite.min()) if n else math.nan,
        "max": float(finite.max()) if n else math.nan,
        "n": n,
        "n_undefined": int(array.size - n),
    }


def summarize_cases(
    cases: Mapping[str, Mapping[str, Mapping[str, object]]],
    labels: Sequence[int],
    case_info: Mapping[str, Mapping[str, object]] | None = None,
) -> dict[str, object]:
    """Summarise per-case metrics per class.

    Args:
        cases: ``{case_id: {str(label): {"dice", "hd", "hd95", "status", ...}}}``.
        labels: the class labels to summarise.
        case_info: optional ``{case_id: {"shape": [...]}}``; with it and the ``gt_voxels`` entries, the
            share of ground-truth voxels of each class is reported as in the headers of Valverde & Tohka 2022,
            Tables 2–4.

    Returns:
        ``{"n_cases": N, "classes": {str(label): {"dice": describe(...), "hd": ..., "hd95": ...,
        "status_counts": {status: count}, "gt_voxel_percent": float | None}}, "mean_over_classes":
        {metric: mean of the class means}}``.
    """
    classes: dict[str, object] = {}
    for label in labels:
        key = str(label)
        entries = [per_case[key] for per_case in cases.values()]
        stats: dict[str, object] = {m: describe([float(e[m]) for e in entries]) for m in METRICS}
        stats["status_counts"] = {s: sum(1 for e in entries if e.get("status") == s) for s in STATUSES}
        stats["gt_voxel_percent"] = _gt_voxel_percent(cases, key, case_info)
        classes[key] = stats
    mean_over_classes = {
        metric: float(np.nanmean([classes[str(lb)][metric]["mean"] for lb in labels]))
        if labels and any(math.isfinite(classes[str(lb)][metric]["mean"]) for lb in labels)
        else math.nan
        for metric in METRICS
    }
    return {"n_cases": len(cases), "classes": classes, "mean_over_classes": mean_over_classes}


def _gt_voxel_percent(
    cases: Mapping[str, Mapping[str, Mapping[str, object]]],
    key: str,
    case_info: Mapping[str, Mapping[str, object]] | None,
) -> float | None:
    if not case_info or not cases:
        return None
    if not all("gt_voxels" in per_case[key] and case in case_info for case, per_case in cases.items()):
        return None
    total = sum(int(np.prod(case_info[case]["shape"])) for case in cases)
    if total == 0:
        return None
    return 100.0 * sum(int(per_case[key]["gt_voxels"]) for per_case in cases.values()) / total
