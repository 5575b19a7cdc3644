"""``nnunet-lossplug compare``: paired permutation tests between two evaluation results (Valverde & Tohka 2022,
Sec. 4.1)."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from nnunet_lossplug.evaluation.compare_results import (
    COMPARISON_JSON,
    compare_results,
    format_comparison_table,
    ground_truth_differences,
    pairing_summary,
    reachability_notes,
    unchecked_ground_truth,
)
from nnunet_lossplug.evaluation.output_files import COMPARE_FORMAT, check_replaceable, write_text_output
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
            "test, per class and metric, whether the two methods differ: a paired permutation test whose "
            "statistic is |mean(A - B)|, the absolute mean of the per-case differences (not the mean of their "
            "absolute values), against random sign flips of those differences (Valverde & Tohka 2022, Sec. 4.1: "
            "10 000 flips, p < 0.05 marked *); with n pairs and 2^n <= -n every flip is enumerated (exact test). "
            "The smallest p-value n pairs can reach is 2/2^n (0.25 with 3 pairs, 0.0625 with 5): below 6 pairs "
            "no difference can be significant at 0.05, and compare says so. Refused unless "
            "--allow-different-ground-truth: results scored against another ground truth (its content, or its "
            "folder for older results) or another label set."
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
    parser.add_argument("--allow-different-ground-truth", action="store_true",
                        help="pair the cases even if A and B were scored against different ground truths or "
                             "label sets (a warning is printed)")
    parser.add_argument("-o", "--output", default=None, metavar="COMPARISON.json",
                        help="also write the comparison as JSON (an existing file is replaced only if it is an "
                             "earlier comparison, never through a symbolic link)")
    parser.set_defaults(func=run_compare)


def run_compare(args: argparse.Namespace) -> int:
    """Run the comparison described by ``args``; return the process exit code (0 on success)."""
    if args.output:
        check_replaceable(args.output, COMPARISON_JSON)
    result_a = load_result(args.result_a)
    result_b = load_result(args.result_b)
    metrics = parse_metrics(args.metrics)
    name_a, name_b = args.names or (display_name(args.result_a), display_name(args.result_b))
    if name_a == name_b:
        name_a, name_b = f"A: {name_a}", f"B: {name_b}"
    problems = ground_truth_differences(result_a, result_b, name_a, name_b)
    if problems and not args.allow_different_ground_truth:
        raise ValueError(f"{args.result_a} and {args.result_b} were not scored alike: {'; '.join(problems)}; "
                         "their cases cannot be paired. Evaluate both against one ground truth with one label "
                         "set, or pass --allow-different-ground-truth if they are the same cases.")
    report = compare_results(result_a, result_b, metrics=metrics, n_permutations=args.n_permutations,
                             seed=args.seed)
    names = load_label_names(args.dataset_json) if args.dataset_json else result_label_names(result_a)

    paired = [c for c in result_a["cases"] if c in result_b["cases"]]
    labels = sorted({row.label for row in report.rows}, key=lambda s: (0, int(s)) if s.isdigit() else (1, s))
    rows = [
        (name_a, summarize_cases({c: result_a["cases"][c] for c in paired}, labels)["classes"]),
        (name_b, summarize_cases({c: result_b["cases"][c] for c in paired}, labels)["classes"]),
    ]
    marks = {(name_b, row.label, row.metric): "*" for row in report.rows if row.significant}
    for problem in problems:
        print(f"warning: {problem} (paired anyway: --allow-different-ground-truth)")
    unchecked = unchecked_ground_truth(result_a, result_b, name_a, name_b)
    if unchecked:
        print(f"note: {' and '.join(unchecked)} record no ground truth, so compare cannot check that both were "
              "scored against the same one")
    print(pairing_summary(report, name_a, name_b))
    for note in reachability_notes(report):
        print(note)
    print()
    print(format_class_table(rows, labels, names, metrics=metrics, marks=marks))
    print()
    print(format_comparison_table(report, name_a, name_b, names))
    if args.output:
        payload = {"format": COMPARE_FORMAT, "a": str(args.result_a), "b": str(args.result_b), "name_a": name_a,
                   "name_b": name_b, **report.to_dict()}
        out = write_text_output(args.output, COMPARISON_JSON,
                                json.dumps(to_json_compatible(payload), indent=2, allow_nan=False) + "\n")
        print(f"wrote {Path(out)}")
    return 0
