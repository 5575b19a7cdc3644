"""Plain-text tables in the layout of Valverde & Tohka 2022, Tables 2–4: one row per method, per class Dice and HD.

Example (``format_class_table``)::

                   RV: 1.21 %                     MYO: 1.3 %
    Method         Dice           HD (mm)         Dice           HD (mm)
    RRW            0.900 ± 0.090  14.58 ± 11.03   0.900 ± 0.030  9.01 ± 7.62
    Dice           0.870 ± 0.090* 16.23 ± 10.44   ...

A trailing ``*`` marks a value significantly different (p < 0.05) from the reference row, as in the paper.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence

METRIC_HEADERS: dict[str, str] = {"dice": "Dice", "hd": "HD (mm)", "hd95": "HD95 (mm)"}
METRIC_DECIMALS: dict[str, int] = {"dice": 3, "hd": 2, "hd95": 2}


def mean_std_text(mean: float, std: float, decimals: int) -> str:
    """``"m ± s"`` with ``decimals`` digits; an undefined value prints as ``–``."""
    m = "–" if mean is None or not math.isfinite(mean) else f"{mean:.{decimals}f}"
    s = "–" if std is None or not math.isfinite(std) else f"{std:.{decimals}f}"
    return f"{m} ± {s}"


def class_header(label: str, label_names: Mapping[str, str], voxel_percent: float | None = None) -> str:
    """``"RV"`` / ``"label 1"``, with the class's share of all ground-truth voxels when known (``"RV: 1.21 %"``).

    The share is printed with three significant digits (``10.7 %``, ``1.21 %``, ``0.0532 %``).
    """
    name = label_names.get(str(label)) or f"label {label}"
    if voxel_percent is not None and math.isfinite(voxel_percent):
        return f"{name}: {voxel_percent:.3g} %"
    return name


def format_class_table(
    rows: Sequence[tuple[str, Mapping[str, Mapping]]],
    labels: Sequence[str],
    label_names: Mapping[str, str] | None = None,
    metrics: Sequence[str] = ("dice", "hd"),
    marks: Mapping[tuple[str, str, str], str] | None = None,
    voxel_percent: Mapping[str, float | None] | None = None,
) -> str:
    """Format per-class ``mean ± std`` of several methods as an aligned text table.

    Args:
        rows: ``(row name, classes)`` pairs, ``classes`` being ``summary["classes"]`` of a result
            (``{label: {metric: {"mean", "std"}}}``).
        labels: class labels (strings) to show, in order.
        label_names: ``{label: name}`` for the class headers; default ``"label k"``.
        metrics: metrics shown under each class, default Dice and HD as in the paper.
        marks: ``{(row name, label, metric): mark}`` appended to a cell (e.g. ``"*"`` for p < 0.05).
        voxel_percent: optional ``{label: percent}`` shown in the class header like the paper's headers.
    """
    label_names = label_names or {}
    marks = marks or {}
    voxel_percent = voxel_percent or {}
    unknown = [m for m in metrics if m not in METRIC_HEADERS]
    if unknown:
        raise ValueError(f"unknown metrics {unknown}; choose from {list(METRIC_HEADERS)}.")

    header_cells = [METRIC_HEADERS[m] for _ in labels for m in metrics]
    body: list[list[str]] = []
    for name, classes in rows:
        cells = []
        for label in labels:
            for metric in metrics:
                stats = classes.get(str(label), {}).get(metric, {})
                text = mean_std_text(stats.get("mean", math.nan), stats.get("std", math.nan),
                                     METRIC_DECIMALS[metric])
                cells.append(text + marks.get((name, str(label), metric), ""))
        body.append([name, *cells])

    first_width = max([len("Method")] + [len(r[0]) for r in body])
    cell_width = max([len(c) for c in header_cells] + [len(c) for r in body for c in r[1:]] + [1])
    group_width = len(metrics) * (cell_width + 2) - 2
    group_line = " " * first_width + "  " + "  ".join(
        class_header(lb, label_names, voxel_percent.get(str(lb))).ljust(group_width)[:group_width]
        for lb in labels
    )
    metric_line = "Method".ljust(first_width) + "  " + "  ".join(c.ljust(cell_width) for c in header_cells)
    lines = [group_line.rstrip(), metric_line.rstrip(), "-" * len(metric_line.rstrip())]
    for row in body:
        cells = "  ".join(c.ljust(cell_width) for c in row[1:])
        lines.append((row[0].ljust(first_width) + "  " + cells).rstrip())
    return "\n".join(lines)
