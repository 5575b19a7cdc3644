"""Per-class box plots of several evaluation results side by side (matplotlib, Agg backend).

One row of panels per metric (default Dice and HD in mm), one column per class; inside a panel one box per
result file, with the individual cases drawn as jittered dots and the mean as a white diamond, so that
outliers stay visible. Distance panels say under each box how many cases hold the empty-structure penalty (a missed or
spurious structure, see :mod:`nnunet_lossplug.evaluation.case_metrics`).

Axes are comparable between panels and figures: Dice always spans [0, 1], distances start at 0 mm. The title
sits above a row of its own for the legend, so neither covers the other. The image is written by
:func:`nnunet_lossplug.evaluation.output_files.write_output` and marked as drawn by ``nnunet-lossplug plot``
(PNG ``Software``, PDF/SVG ``Creator``): an existing file is replaced only if it carries that mark.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np

from nnunet_lossplug.evaluation.output_files import check_replaceable, image_kind, image_metadata, write_output

METRIC_AXIS_LABELS: dict[str, str] = {
    "dice": "Dice coefficient",
    "hd": "Hausdorff distance (mm)",
    "hd95": "95th-percentile HD (mm)",
}
PLOT_IMAGE = image_kind("plot")
_COLOURS = ("#4C72B0", "#DD8452", "#55A868", "#C44E52", "#8172B3", "#937860", "#DA8BC3", "#8C8C8C")


def plot_results(
    results: Sequence[Mapping],
    out_path: str | Path,
    names: Sequence[str] | None = None,
    label_names: Mapping[str, str] | None = None,
    metrics: Sequence[str] = ("dice", "hd"),
    title: str | None = None,
    dpi: int = 150,
) -> Path:
    """Draw per-class box plots of ``metrics`` for several results and save them to ``out_path``.

    Args:
        results: loaded result dictionaries (``result_io.load_result``), one per method.
        out_path: image file to write (format from the suffix, e.g. ``.png``, ``.pdf``); without a suffix
            ``.png`` is appended. An existing directory is refused.
        names: one display name per result; default ``"result 1"``, ``"result 2"``, ...
        label_names: ``{label: name}`` for panel titles; default the names stored in the first result.
        metrics: metrics to plot (rows), among ``dice``, ``hd``, ``hd95``; default Dice and HD.
        title: figure title; default states the number of cases.
        dpi: resolution of raster output.

    Returns:
        The path written (``out_path``, with ``.png`` appended when it had no suffix).

    Raises:
        ValueError: ``out_path`` is an existing directory, or the arguments do not fit the results.
        FileExistsError: ``out_path`` is a symbolic link, or an existing file not drawn by ``plot``.
    """
    out_path = check_replaceable(image_path(out_path), PLOT_IMAGE)
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    if not results:
        raise ValueError("plot_results needs at least one result.")
    if names is None:
        names = [f"result {i + 1}" for i in range(len(results))]
    if len(names) != len(results):
        raise ValueError(f"got {len(names)} names for {len(results)} results; give one name per result file.")
    unknown = [m for m in metrics if m not in METRIC_AXIS_LABELS]
    if unknown:
        raise ValueError(f"unknown metrics {unknown}; choose from {list(METRIC_AXIS_LABELS)}.")
    if label_names is None:
        label_names = results[0].get("label_names") or {}
    labels = sorted(
        {lb for r in results for per_case in r["cases"].values() for lb in per_case},
        key=lambda s: (0, int(s)) if str(s).isdigit() else (1, str(s)),
    )
    if not labels:
        raise ValueError("the results hold no class entries to plot.")

    n_rows, n_cols = len(metrics), len(labels)
    fig, axes = plt.subplots(
        n_rows, n_cols, figsize=(max(3.2 * n_cols, 2.2 + 0.9 * len(results) * n_cols), 3.4 * n_rows),
        squeeze=False,
    )
    rng = np.random.default_rng(0)
    colours = [_COLOURS[i % len(_COLOURS)] for i in range(len(results))]
    for row, metric in enumerate(metrics):
        for col, label in enumerate(labels):
            ax = axes[row][col]
            data = [_values(r, label, metric) for r in results]
            _draw_panel(ax, data, colours, rng)
            tick_labels = list(names)
            if metric != "dice":  # say which values are the empty-structure penalty, not a measured distance
                counts = [_penalised_count(r, label) for r in results]
                tick_labels = [f"{n}\n({c} missed/spurious)" if c else n for n, c in zip(names, counts, strict=True)]
            long_names = max(len(n) for n in names) > 8
            ax.set_xticks(range(1, len(results) + 1))
            ax.set_xticklabels(tick_labels, rotation=25 if long_names else 0, ha="right" if long_names else "center",
                               fontsize=9)
            if row == 0:
                ax.set_title(label_names.get(str(label)) or f"label {label}", fontsize=12, fontweight="bold")
            if col == 0:
                ax.set_ylabel(METRIC_AXIS_LABELS[metric])
            if metric == "dice":
                ax.set_ylim(0.0, 1.0)
                ax.set_yticks(np.linspace(0.0, 1.0, 6))
            else:
                ax.set_ylim(bottom=0.0)
            ax.grid(axis="y", alpha=0.3)
            ax.set_axisbelow(True)
            for spine in ("top", "right"):
                ax.spines[spine].set_visible(False)

    n_cases = sorted({len(r["cases"]) for r in results})
    cases_text = f"{n_cases[0]} cases" if len(n_cases) == 1 else f"{n_cases[0]}–{n_cases[-1]} cases"
    header = 0.75 / fig.get_figheight()  # inches for the title and the legend row below it, as a figure fraction
    fig.suptitle(title or f"Per-class segmentation metrics ({cases_text} per result)", fontsize=13,
                 y=1.0 - 0.08 / fig.get_figheight(), va="top")
    handles = [
        plt.Line2D([], [], marker="D", linestyle="", markerfacecolor="white", markeredgecolor="black",
                   label="mean"),
        plt.Line2D([], [], color="black", linewidth=1.5, label="median"),
        plt.Line2D([], [], marker="o", linestyle="", color="grey", markersize=4, label="one case"),
    ]
    fig.legend(handles=handles, loc="upper center", bbox_to_anchor=(0.5, 1.0 - 0.4 / fig.get_figheight()),
               ncol=len(handles), frameon=False, fontsize=9)
    fig.tight_layout(rect=(0, 0, 1, 1.0 - header))
    metadata = image_metadata("plot", out_path.suffix)
    write_output(out_path, PLOT_IMAGE,
                 lambda handle: fig.savefig(handle, dpi=dpi, format=out_path.suffix[1:].lower(), metadata=metadata))
    plt.close(fig)
    return out_path


def image_path(out_path: str | Path) -> Path:
    """The file :func:`plot_results` writes for ``out_path``: itself, or with ``.png`` when it has no suffix.

    Raises:
        ValueError: ``out_path`` is an existing directory (matplotlib would write ``DIR.png`` beside it).
    """
    path = Path(out_path)
    if path.is_dir():
        raise ValueError(f"-o {path} is a directory; give an image file such as {path / 'plot.png'} "
                         "(.png, .pdf or .svg).")
    return path if path.suffix else path.with_name(path.name.rstrip(".") + ".png")


def _values(result: Mapping, label: str, metric: str) -> np.ndarray:
    values = [
        float(per_case[label][metric])
        for per_case in result["cases"].values()
        if label in per_case and per_case[label][metric] is not None
    ]
    array = np.asarray(values, dtype=float)
    return array[np.isfinite(array)]


def _penalised_count(result: Mapping, label: str) -> int:
    """Cases where the structure is missed or spurious (their distance is the convention's penalty)."""
    return sum(
        1 for per_case in result["cases"].values()
        if label in per_case and per_case[label].get("status") in ("missed", "spurious")
    )


def _draw_panel(ax, data: Sequence[np.ndarray], colours: Sequence[str], rng: np.random.Generator) -> None:
    positions = list(range(1, len(data) + 1))
    plotted = [d if d.size else np.array([math.nan]) for d in data]
    boxes = ax.boxplot(
        plotted, positions=positions, widths=0.55, patch_artist=True, showfliers=False,
        medianprops={"color": "black", "linewidth": 1.5},
    )
    for patch, colour in zip(boxes["boxes"], colours, strict=True):
        patch.set_facecolor(colour)
        patch.set_alpha(0.45)
        patch.set_edgecolor(colour)
    for position, values, colour in zip(positions, data, colours, strict=True):
        if not values.size:
            continue
        jitter = rng.uniform(-0.16, 0.16, size=values.size)
        ax.scatter(position + jitter, values, s=9, color=colour, alpha=0.75, linewidths=0, zorder=3, clip_on=False)
        ax.scatter([position], [values.mean()], marker="D", s=34, facecolor="white", edgecolor="black",
                   zorder=4, clip_on=False)
