"""``nnunet-lossplug show-maps``: a PNG of one preprocessed case and its RW map as training reads it."""

from __future__ import annotations

import argparse
import runpy
import sys
from pathlib import Path

import numpy as np

from nnunet_lossplug.cli.dataset_args import add_dataset_arguments
from nnunet_lossplug.cli.map_args import map_kinds_help


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "show-maps",
        help="PNG of a few slices of one preprocessed case: image, labels and each class's map channel",
        description=(
            "Read one preprocessed case of DATASET / CONFIGURATION and its map from the precompute cache, decoded "
            "exactly as a training batch is (the cache is built for that case first if it is missing), and draw a "
            "few slices with foreground: the image, the labels, and the map channel z_k of every class k (on a "
            "region-based dataset: each region's two-class map, its z_in and z_out channels), with a colour bar. "
            "The title gives the rectification check (paper 002 Sec. 3.4): the share of annotated voxels whose "
            "RW-loss gradient can have more than one negative component (0 for RRW, AC, Cao; always 0 for the "
            "two-class maps of regions)."
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
    parser.add_argument("-o", "--output", type=Path, default=Path("maps.png"), help="image to write (default maps.png)")
    parser.set_defaults(func=run)


def pick_slices(labels: np.ndarray, count: int) -> list[int]:
    """``count`` slice indices (first axis) spread evenly over the slices that hold foreground (labels > 0)."""
    with_foreground = np.flatnonzero(labels.reshape(labels.shape[0], -1).max(axis=1) > 0)
    candidates = with_foreground if with_foreground.size else np.arange(labels.shape[0])
    positions = np.linspace(0, candidates.size - 1, min(count, candidates.size)).round().astype(int)
    return [int(candidates[p]) for p in np.unique(positions)]


def column_maps(case, class_names: list[str]) -> list[tuple[str, np.ndarray]]:
    """The map columns as ``(title, array (slices, ...))``: ``z_k`` per class, or ``z_in``, ``z_out`` per region."""
    if case.regions is None:
        return [(f"z: class {k} ({class_names[k]})", case.z[k]) for k in range(case.z.shape[0])]
    columns = []
    for r, (name, region) in enumerate(zip(class_names, case.regions)):
        label = f"{name} {list(region)}"
        columns += [(f"z_in: {label}", case.z[r, 1]), (f"z_out: not {label}", case.z[r, 0])]
    return columns


def draw(case, class_names: list[str], kind: str, fraction_unstable: float, slices: list[int]):
    """The figure: one row per slice; columns image, labels and the maps of :func:`column_maps`; one colour bar.

    ``class_names`` names the classes, or on a region-based dataset the regions.
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    maps = column_maps(case, class_names)
    columns = 2 + len(maps)
    fig, axes = plt.subplots(len(slices), columns, figsize=(2.3 * columns + 0.8, 2.4 * len(slices)),
                             squeeze=False)
    low, high = float(case.z.min()), float(case.z.max())
    norm = matplotlib.colors.TwoSlopeNorm(0.0, min(low, -1e-6), max(high, 1e-6))
    mappable = None
    for row, index in enumerate(slices):
        axes[row, 0].imshow(case.image[0, index], cmap="gray")
        axes[row, 1].imshow(case.labels[index], cmap="tab10", vmin=0, vmax=9, interpolation="nearest")
        for column, (_, z) in enumerate(maps):
            mappable = axes[row, 2 + column].imshow(z[index], cmap="RdBu_r", norm=norm)
        axes[row, 0].set_ylabel(f"slice {index}")
    titles = ["image", "labels", *[title for title, _ in maps]]
    for column, title in enumerate(titles):
        axes[0, column].set_title(title, fontsize=9)
    for ax in axes.flat:
        ax.set_xticks([])
        ax.set_yticks([])
    own = "own class" if case.regions is None else "own side of the region"
    fig.colorbar(mappable, ax=axes.ravel().tolist(), shrink=0.8, label=f"map value z (negative: {own})")
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
           case: str | None = None, slices: int = 3):
    """``(figure, CaseMaps, fraction of unstable voxels)`` for one case; errors as in :func:`run`."""
    from nnunet_lossplug.nnunet.map_cache.case_view import read_case_maps, unstable_fraction
    from nnunet_lossplug.nnunet.map_cache.source import PreprocessedSource

    source = PreprocessedSource.from_names(dataset, configuration, plans)
    maps = read_case_maps(source, kind, case or source.identifiers()[0])
    if maps.regions is not None:
        class_names = region_names(source.dataset_json, maps.regions)
    else:
        names = {int(v): k for k, v in source.dataset_json["labels"].items() if isinstance(v, int)}
        class_names = [names.get(k, "?") for k in range(maps.z.shape[0])]
    fraction = unstable_fraction(maps)
    annotated = maps.labels if maps.ignore_label is None else np.where(maps.labels == maps.ignore_label, 0, maps.labels)
    return draw(maps, class_names, kind, fraction, pick_slices(annotated, slices)), maps, fraction


def run(args: argparse.Namespace) -> int:
    import matplotlib.pyplot as plt

    try:
        if args.register is not None:
            runpy.run_path(str(args.register))
        fig, maps, fraction = render(args.dataset, args.configuration, args.plans, args.maps, args.case,
                                     args.slices)
    except (FileNotFoundError, ValueError, KeyError) as error:
        message = error.args[0] if isinstance(error, KeyError) and error.args else error
        print(f"nnunet-lossplug show-maps: error: {message}", file=sys.stderr)
        return 2
    args.output.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(args.output, dpi=100)
    plt.close(fig)
    print(f"wrote {args.output} (case {maps.identifier}, '{args.maps}' map from {maps.cache_folder}; "
          f"rectification check: {fraction:.2%} unstable voxels)")
    return 0
