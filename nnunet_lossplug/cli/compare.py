"""``nnunet-lossplug compare``: paired permutation tests between two evaluation results (paper 002, 4.1)."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from nnunet_lossplug.evaluation.compare_results import (
    compare_results,
    format_comparison_table,
    pairing_summary,
)
from nnunet_lossplug.evaluation.result_io import (
    display_name,
    load_label_names,
    load_result,
    result_label_names,
    to_json_compatible,
)
from nnunet_lossplug.evaluation.summary import parse_metrics, summarize_cases
from nnunet_lossplug.evaluation.tables import format_class_table


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add the ``compare`` subcommand to ``subparsers`` (handler: :func:`run_compare`)."""
    parser = subparsers.add_parser(
        "compare",
        help="paired permutation test per class and metric between two evaluate results",
        description=(
            "Pair the cases present in both A.json and B.json (written by `nnunet-lossplug evaluate`) and "
            "test, per class and metric, whether the two methods differ: paired two-sample permutation "
            "test with statistic |mean(A - B)| over the paired cases and random sign flips of the "
            "per-case differences (paper 002, Sec. 4.1: 10 000 permutations, p < 0.05 marked *)."
        ),
    )
    parser.add_argument("result_a", metavar="A.json", help="result of method A (the reference)")
    parser.add_argument("result_b", metavar="B.json", help="result of method B")
    parser.add_argument("--metrics", default="dice,hd",
                        help="comma-separated: dice, hd, hd95 (default: dice,hd)")
    parser.add_argument("-n", "--n-permutations", type=int, default=10000,
                        help="random sign flips per test (default: 10000; exact test when 2^pairs <= n)")
    parser.add_argument("--seed", type=int, default=0, help="random seed (default: 0)")
    parser.add_argument("--names", nargs=2, metavar=("NAME_A", "NAME_B"), default=None,
                        help="display names (default: the file names)")
    parser.add_argument("--dataset-json", default=None, help="nnU-Net dataset.json for class names")
    parser.add_argument("-o", "--output", default=None, metavar="COMPARISON.json",
                        help="also write the comparison as JSON")
    parser.set_defaults(func=run_compare)


def run_compare(args: argparse.Namespace) -> int:
    """Run the comparison described by ``args``; return the process exit code (0 on success)."""
    try:
        result_a = load_result(args.result_a)
        result_b = load_result(args.result_b)
        metrics = parse_metrics(args.metrics)
        report = compare_results(result_a, result_b, metrics=metrics, n_permutations=args.n_permutations,
                                 seed=args.seed)
        names = load_label_names(args.dataset_json) if args.dataset_json else result_label_names(result_a)
    except (FileNotFoundError, ValueError, json.JSONDecodeError) as error:
        print(f"nnunet-lossplug compare: error: {error}", file=sys.stderr)
        return 2
    name_a, name_b = args.names or (display_name(args.result_a), display_name(args.result_b))
    if name_a == name_b:
        name_a, name_b = f"A: {name_a}", f"B: {name_b}"

    paired = [c for c in result_a["cases"] if c in result_b["cases"]]
    labels = sorted({row.label for row in report.rows}, key=lambda s: (0, int(s)) if s.isdigit() else (1, s))
    rows = [
        (name_a, summarize_cases({c: result_a["cases"][c] for c in paired}, labels)["classes"]),
        (name_b, summarize_cases({c: result_b["cases"][c] for c in paired}, labels)["classes"]),
    ]
    marks = {(name_b, row.label, row.metric): "*" for row in report.rows if row.significant}
    print(pairing_summary(report, name_a, name_b))
    print()
    print(format_class_table(rows, labels, names, metrics=metrics, marks=marks))
    print()
    print(format_comparison_table(report, name_a, name_b, names))
    if args.output:
        out = Path(args.output)
        out.parent.mkdir(parents=True, exist_ok=True)
        payload = {"a": str(args.result_a), "b": str(args.result_b), "name_a": name_a, "name_b": name_b,
                   **report.to_dict()}
        out.write_text(json.dumps(to_json_compatible(payload), indent=2, allow_nan=False) + "\n")
        print(f"wrote {out}")
    return 0

