"""``nnunet-lossplug show-maps``: a PNG of one preprocessed case and its RW map as training reads it.

One column per chosen class (``--classes``; by default the first :data:`DEFAULT_CLASS_COUNT`, with a printed line
naming the others), so that a dataset of hundreds of labels still gives a readable picture. The labels panel has a
colour key; kinds registered with a unit (the distances: ``unit="mm"``) get a colour bar in that unit with evenly
spaced ticks on each side of the boundary. The PNG is marked as drawn by ``show-maps`` and written by
:func:`nnunet_lossplug.evaluation.output_files.write_output` (an existing file is replaced only if it carries the
mark, never through a symbolic link).
"""

from __future__ import annotations

import argparse
import runpy
from pathlib import Path

import numpy as np

from nnunet_lossplug.cli.dataset_args import add_dataset_arguments
from nnunet_lossplug.cli.map_args import map_kinds_help
from nnunet_lossplug.evaluation.output_files import check_replaceable, image_kind, image_metadata, write_output
from nnunet_lossplug.maps import get_map_kind

#: classes drawn when --classes is not given (half as many regions: each region has two columns)
DEFAULT_CLASS_COUNT = 8
MAPS_IMAGE = image_kind("show-maps")
_OTHER_COLOUR = "#b0b0b0"
_BACKGROUND_COLOUR = "#000000"
_IGNORE_COLOUR = "#ffffff"


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "show-maps",
        help="PNG of a few slices of one preprocessed case: image, labels and each class's map channel",
        description=(
            "Read one preprocessed case of DATASET / CONFIGURATION and its map from the precompute cache, decoded "
            "exactly as a training batch is (the cache is built for that case first if it is missing), and draw a "
            "few slices with foreground: the image, the labels, and the map channel z_k of every class k (on a "
            "region-based dataset: each region's two-class map, its z_in and z_out channels), with a colour bar. "
            "The title gives the rectification check (Valverde & Tohka 2022, Sec. 3.4): the share of annotated "
            "voxels whose RW-loss gradient can have more than one negative component (0 for RRW, AC, Cao; always 0 "
            "for the two-class maps of regions). One column per class chosen with --classes (default: the first "
            f"{DEFAULT_CLASS_COUNT}); the labels panel has a colour key; boundary and distance maps a colour bar in mm."
        ),
    )
    add_dataset_arguments(parser)
    parser.add_argument("--maps", default="rrw", dest="maps",
                        help=f"map kind (default: rrw): {map_kinds_help()}; or your own (see --register)")
    parser.add_argument("--kind", dest="maps", help=argparse.SUPPRESS)  # the option's name before --maps; kept
    parser.add_argument("--register", type=Path, default=None, metavar="FILE.py",
                        help="a Python file to run first, e.g. the trainer file that registers your own map kind")
    parser.add_argument("--case", default=None, help="case identifier (default: the first preprocessed case)")
    parser.add_argument("--slices", type=int, default=3, help="how many slices with foreground to show (default 3)")
    parser.add_argument("--classes", nargs="+", metavar="CLASS", default=None,
                        help="class labels whose map to draw, e.g. '--classes 1 2 5' or '--classes 1-3,7' (region "
                             f"numbers 1..R on a region-based dataset; default: the first {DEFAULT_CLASS_COUNT})")
    parser.add_argument("-o", "--output", type=Path, default=Path("maps.png"),
                        help="PNG to write (default maps.png); an existing file is replaced only if show-maps drew "
                             "it (its metadata says so), never through a symbolic link")
    parser.set_defaults(func=run)


def pick_slices(labels: np.ndarray, count: int) -> list[int]:
    """``count`` slice indices (first axis) spread evenly over the slices that hold foreground (labels > 0)."""
    with_foreground = np.flatnonzero(labels.reshape(labels.shape[0], -1).max(axis=1) > 0)
    candidates = with_foreground if with_foreground.size else np.arange(labels.shape[0])
    positions = np.linspace(0, candidates.size - 1, min(count, candidates.size)).round().astype(int)
    return [int(candidates[p]) for p in np.unique(positions)]


def parse_classes(values: list[str] | None) -> list[int] | None:
    """``["1", "3-5,7"]`` -> ``[1, 3, 4, 5, 7]``; ``None`` stays ``None`` (the default choice)."""
    if not values:
        return None
    chosen: list[int] = []
    for value in values:
        for part in (p.strip() for p in value.split(",")):
            if not part:
                continue
            low, _, high = part.partition("-")
            if not low.isdigit() or (high and not high.isdigit()):
                raise ValueError(f"--classes takes class labels such as '1 2 5' or '1-3,7', got {part!r}.")
            chosen += range(int(low), int(high or low) + 1)
    return sorted(set(chosen))


def choose_classes(available: list[int], requested: list[int] | None, what: str = "class",
                   count: int = DEFAULT_CLASS_COUNT) -> tuple[list[int], str | None]:
    """The classes to draw and, when some are left out by default (the first ``count`` are kept), a line saying
    which and how to pick others.

    Raises:
        ValueError: a requested class is not one of ``available``.
    """
    if requested is not None:
        unknown = [c for c in requested if c not in available]
        if unknown:
            raise ValueError(f"--classes {' '.join(map(str, unknown))}: no such {what} (this dataset has "
                             f"{_ranges(available)}).")
        return requested, None
    if len(available) <= count:
        return list(available), None
    shown = available[:count]
    plural = "classes" if what == "class" else f"{what}s"
    return shown, (f"drawing the maps of {plural} {_ranges(shown)} of {_ranges(available)} (the first "
                   f"{count}); choose others with --classes, e.g. --classes {available[-1]}")


def _ranges(values: list[int]) -> str:
    """``[0, 1, 2, 5]`` -> ``"0-2, 5"``."""
    parts, start = [], None
    for i, v in enumerate(values):
        if start is None:
            start = v
        if i + 1 == len(values) or values[i + 1] != v + 1:
            parts.append(str(v) if v == start else f"{start}-{v}")
            start = None
    return ", ".join(parts)


def column_maps(case, class_names: list[str], classes: list[int] | None = None) -> list[tuple[str, np.ndarray]]:
    """The map columns as ``(title, array (slices, ...))``: ``z_k`` per class, or ``z_in``, ``z_out`` per region.

    ``classes``: class labels ``k`` to draw, or region numbers (1..R) on a region-based dataset; default all.
    """
    if case.regions is None:
        chosen = range(case.z.shape[0]) if classes is None else classes
        return [(f"z: class {k} ({class_names[k]})", case.z[k]) for k in chosen]
    chosen = range(1, len(case.regions) + 1) if classes is None else classes
    columns = []
    for number in chosen:
        r = number - 1
        label = f"{class_names[r]} {list(case.regions[r])}"
        columns += [(f"z_in: {label}", case.z[r, 1]), (f"z_out: not {label}", case.z[r, 0])]
    return columns


def label_colours(case, label_names: dict[int, str], shown: list[int]):
    """Colour map, norm and key of the labels panel: one colour per shown label, grey for the others.

    Background is black; the ignore label, if any, white; labels whose map is not drawn share one grey.
    Returns ``(ListedColormap, BoundaryNorm, [(colour, text)])``; the panel shows the raw label values.
    """
    import matplotlib

    top = int(max(case.labels.max(), 0)) + 1
    palette = matplotlib.colormaps["tab10" if len(shown) <= 10 else "tab20"].colors
    colours = [_OTHER_COLOUR] * top
    colours[0] = _BACKGROUND_COLOUR
    key = [(_BACKGROUND_COLOUR, f"0 {label_names.get(0, 'background')}")]
    for i, label in enumerate(v for v in shown if 0 < v < top):
        colours[label] = palette[i % len(palette)]
        key.append((colours[label], f"{label} {label_names.get(label, '?')}"))
    others = sorted(set(np.unique(case.labels).tolist()) - {0, *shown, case.ignore_label})
    if others:
        key.append((_OTHER_COLOUR, f"{len(others)} other label{'s' if len(others) > 1 else ''}"))
    if case.ignore_label is not None and 0 <= case.ignore_label < top:
        colours[case.ignore_label] = _IGNORE_COLOUR
        key.append((_IGNORE_COLOUR, f"{case.ignore_label} ignore (not annotated)"))
    cmap = matplotlib.colors.ListedColormap(colours)
    norm = matplotlib.colors.BoundaryNorm(np.arange(-0.5, top + 0.5), cmap.N)
    return cmap, norm, key


def even_ticks(low: float, high: float) -> list[float]:
    """Colour-bar ticks at round, evenly spaced values on each side of 0 (about four per side)."""
    from matplotlib.ticker import MaxNLocator

    locator = MaxNLocator(nbins=4, steps=[1, 2, 2.5, 5, 10])
    negative = [-t for t in locator.tick_values(0.0, -low) if 0 < t <= -low + 1e-9] if low < 0 else []
    positive = [t for t in locator.tick_values(0.0, high) if 0 < t <= high + 1e-9] if high > 0 else []
    return sorted({*negative, 0.0, *positive})


def draw(case, class_names: list[str], kind: str, fraction_unstable: float, slices: list[int],
         classes: list[int] | None = None, label_names: dict[int, str] | None = None):
    """The figure: one row per slice; columns image, labels and the maps of :func:`column_maps`; one colour bar.

    ``class_names`` names the classes, or on a region-based dataset the regions; ``classes`` chooses the map
    columns (:func:`column_maps`); ``label_names`` names the label values for the labels panel's key.
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.patches import Patch

    maps = column_maps(case, class_names, classes)
    columns = 2 + len(maps)
    fig, axes = plt.subplots(len(slices), columns, figsize=(2.3 * columns + 0.8, 2.4 * len(slices) + 1.2),
                             squeeze=False)
    low, high = float(case.z.min()), float(case.z.max())
    norm = matplotlib.colors.TwoSlopeNorm(0.0, min(low, -1e-6), max(high, 1e-6))
    if label_names is None:
        label_names = {k: name for k, name in enumerate(class_names)} if case.regions is None else {}
    shown_labels = (list(range(case.z.shape[0])) if classes is None else classes) if case.regions is None else \
        sorted({v for number in (classes or range(1, len(case.regions) + 1)) for v in case.regions[number - 1]})
    label_cmap, label_norm, key = label_colours(case, label_names, shown_labels)
    mappable = None
    for row, index in enumerate(slices):
        axes[row, 0].imshow(case.image[0, index], cmap="gray")
        axes[row, 1].imshow(case.labels[index], cmap=label_cmap, norm=label_norm, interpolation="nearest")
        for column, (_, z) in enumerate(maps):
            mappable = axes[row, 2 + column].imshow(z[index], cmap="RdBu_r", norm=norm)
        axes[row, 0].set_ylabel(f"slice {index}")
    titles = ["image", "labels", *[title for title, _ in maps]]
    for column, title in enumerate(titles):
        axes[0, column].set_title(title, fontsize=9)
    for ax in axes.flat:
        ax.set_xticks([])
        ax.set_yticks([])
    axes[-1, 1].legend(handles=[Patch(facecolor=c, edgecolor="#606060", label=t) for c, t in key],
                       loc="upper center", bbox_to_anchor=(0.5, -0.04), fontsize=7, frameon=False,
                       ncol=1 if len(key) <= 5 else 2, title="labels", title_fontsize=8)
    own = "own class" if case.regions is None else "own side of the region"
    unit = get_map_kind(kind).unit
    if unit:
        bar = fig.colorbar(mappable, ax=axes.ravel().tolist(), shrink=0.8, ticks=even_ticks(low, high))
        bar.set_label(f"map value in {unit} (negative: {own})")
    else:
        bar = fig.colorbar(mappable, ax=axes.ravel().tolist(), shrink=0.8)
        bar.set_label(f"map value z (negative: {own})")
    verdict = "rectified" if fraction_unstable == 0 else "NOT rectified"
    scope = "" if case.regions is None else " (two-class maps per region, region mask as labels)"
    voxels = "voxels" if case.ignore_label is None else "annotated voxels"
    fig.suptitle(f"{case.identifier}: '{kind}' map as training reads it (cache, decoded); rectification check"
                 f"{scope}: {fraction_unstable:.2%} of {voxels} can get >1 negative gradient component ({verdict})",
                 fontsize=10)
    return fig


def region_names(dataset_json: dict, regions: tuple[tuple[int, ...], ...]) -> list[str]:
    """Each region's name in dataset.json's ``labels`` (``"whole": [1, 2, 3]``), in nnU-Net's region order."""
    names = {tuple(int(v) for v in np.atleast_1d(value)): name for name, value in dataset_json["labels"].items()}
    return [names.get(tuple(region), "?") for region in regions]


def render(dataset: str, configuration: str, plans: str = "nnUNetPlans", kind: str = "rrw",
           case: str | None = None, slices: int = 3, classes: list[int] | None = None):
    """``(figure, CaseMaps, fraction of unstable voxels, note)`` for one case; errors as in :func:`run`.

    ``classes``: the class labels (region numbers) whose maps to draw; default the first
    :data:`DEFAULT_CLASS_COUNT`, ``note`` then saying which were left out (else ``None``).
    """
    from nnunet_lossplug.nnunet.map_cache.case_view import read_case_maps, unstable_fraction
    from nnunet_lossplug.nnunet.map_cache.source import PreprocessedSource

    source = PreprocessedSource.from_names(dataset, configuration, plans)
    maps = read_case_maps(source, kind, case or source.identifiers()[0])
    label_names = {int(v): k for k, v in source.dataset_json["labels"].items() if isinstance(v, int)}
    if maps.regions is not None:
        class_names = region_names(source.dataset_json, maps.regions)
        chosen, note = choose_classes(list(range(1, len(maps.regions) + 1)), classes, "region",
                                      DEFAULT_CLASS_COUNT // 2)
    else:
        class_names = [label_names.get(k, "?") for k in range(maps.z.shape[0])]
        chosen, note = choose_classes(list(range(maps.z.shape[0])), classes)
    fraction = unstable_fraction(maps)
    annotated = maps.labels if maps.ignore_label is None else np.where(maps.labels == maps.ignore_label, 0, maps.labels)
    figure = draw(maps, class_names, kind, fraction, pick_slices(annotated, slices), chosen, label_names)
    return figure, maps, fraction, note


def run(args: argparse.Namespace) -> int:
    import matplotlib.pyplot as plt

    output = check_replaceable(args.output, MAPS_IMAGE)
    if args.register is not None:
        runpy.run_path(str(args.register))
    fig, maps, fraction, note = render(args.dataset, args.configuration, args.plans, args.maps, args.case,
                                       args.slices, parse_classes(args.classes))
    try:
        image_format = output.suffix[1:].lower() or "png"
        metadata = image_metadata("show-maps", f".{image_format}")
        write_output(output, MAPS_IMAGE,
                     lambda handle: fig.savefig(handle, dpi=100, format=image_format, metadata=metadata))
    finally:
        plt.close(fig)
    if note:
        print(note)
    print(f"wrote {output} (case {maps.identifier}, '{args.maps}' map from {maps.cache_folder}; "
          f"rectification check: {fraction:.2%} unstable voxels)")
    return 0
