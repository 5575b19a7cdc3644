"""``nnunet-lossplug plot``: per-class box plots of Dice and HD for several evaluation results."""

from __future__ import annotations

import argparse

from nnunet_lossplug.evaluation.plots import plot_results
from nnunet_lossplug.evaluation.result_io import display_name, load_label_names, load_result
from nnunet_lossplug.evaluation.summary import parse_metrics


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add the ``plot`` subcommand to ``subparsers`` (handler: :func:`run_plot`)."""
    parser = subparsers.add_parser(
        "plot",
        help="per-class box plots of Dice and HD (mm) for several evaluate results",
        description=(
            "Draw one panel per class and metric with one box per result file (written by "
            "`nnunet-lossplug evaluate`), individual cases as dots and the mean as a diamond; Dice on [0, 1], "
            "distances in mm from 0."
        ),
    )
    parser.add_argument("results", nargs="+", metavar="RESULT.json", help="result files to plot side by side")
    parser.add_argument("-o", "--output", required=True, metavar="plot.png",
                        help="image file to write (.png, .pdf, .svg; .png is appended to a name without "
                             "suffix); an existing file is replaced only if plot drew it (its metadata says "
                             "so), never through a symbolic link; a directory is refused")
    parser.add_argument("--names", nargs="+", default=None, help="one display name per result file")
    parser.add_argument("--dataset-json", default=None, help="nnU-Net dataset.json for class names")
    parser.add_argument("--metrics", default="dice,hd",
                        help="comma-separated rows: dice, hd, hd95 (default: dice,hd)")
    parser.add_argument("--title", default=None, help="figure title")
    parser.set_defaults(func=run_plot)


def run_plot(args: argparse.Namespace) -> int:
    """Draw the plot described by ``args``; return the process exit code (0 on success)."""
    results = [load_result(path) for path in args.results]
    names = args.names or [display_name(path) for path in args.results]
    label_names = load_label_names(args.dataset_json) if args.dataset_json else None
    out = plot_results(results, args.output, names=names, label_names=label_names,
                       metrics=parse_metrics(args.metrics), title=args.title)
    print(f"wrote {out}")
    return 0
