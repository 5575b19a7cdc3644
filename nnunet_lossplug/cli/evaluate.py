"""``nnunet-lossplug evaluate``: per-case, per-class Dice, HD and HD95 (mm) of a prediction folder."""

from __future__ import annotations

import argparse
from pathlib import Path

from nnunet_lossplug.evaluation.evaluate_folders import evaluate_folders
from nnunet_lossplug.evaluation.result_io import check_result_outputs, write_result_files
from nnunet_lossplug.evaluation.tables import format_class_table


def parse_labels(values: list[str] | None) -> list[int] | None:
    """``["1", "2,3"]`` -> ``[1, 2, 3]``; ``None`` stays ``None`` (labels found in the data)."""
    if not values:
        return None
    labels = []
    for value in values:
        for part in value.split(","):
            part = part.strip()
            if not part:
                continue
            if not part.lstrip("-").isdigit():
                raise ValueError(
                    f"-l/--labels takes integer class labels such as '1 2 3' or '1,2,3', got {part!r}."
                )
            labels.append(int(part))
    return labels


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add the ``evaluate`` subcommand to ``subparsers`` (handler: :func:`run_evaluate`)."""
    parser = subparsers.add_parser(
        "evaluate",
        help="Dice, Hausdorff distance and HD95 in mm per case and class (Valverde & Tohka 2022, Sec. 4)",
        description=(
            "Evaluate every ground-truth file of GT_FOLDER against the prediction of the same name in "
            "PRED_FOLDER: Dice (eq. 6), Hausdorff distance over boundary voxels (eq. 7) and HD95, in mm "
            "from each ground-truth image's spacing (files read with nnU-Net's readers). A structure "
            "absent from both scores Dice 1, HD 0; one absent from only one scores Dice 0 and, by "
            "default, the image diagonal in mm as HD (see --empty-hd). Writes RESULT.json, RESULT.csv "
            "(per case and class) and RESULT_summary.csv, and prints the per-class mean ± std table. "
            "Refused, naming the case and file (nothing is rounded, realigned or dropped): a file holding a "
            "non-integer value (probabilities, rescaled labels; a float file of whole numbers is fine); a "
            "prediction whose shape, spacing (0.1 %), origin (1 % of the smallest voxel size) or direction "
            "(0.001 per cosine) differs from its ground truth's; with --dataset-json, a label it does not declare."
        ),
    )
    parser.add_argument("gt_folder", metavar="GT_FOLDER", help="folder of ground-truth label maps")
    parser.add_argument("pred_folder", metavar="PRED_FOLDER", help="folder of predictions (same file names)")
    parser.add_argument("-o", "--output", metavar="RESULT.json", default=None,
                        help="result file (default: PRED_FOLDER/evaluation.json); an existing file is replaced "
                             "only if it is an earlier result of evaluate (the same for RESULT.csv and "
                             "RESULT_summary.csv), never through a symbolic link")
    parser.add_argument("-l", "--labels", nargs="+", metavar="LABEL", default=None,
                        help="class labels to evaluate, e.g. '-l 1 2 3' (default: from --dataset-json, "
                             "else all non-zero labels found); a label --dataset-json does not declare, or "
                             "without it a label in no file, is refused")
    parser.add_argument("-np", "--num-processes", type=int, default=2,
                        help="worker processes (default: 2)")
    parser.add_argument("--dataset-json", default=None,
                        help="nnU-Net dataset.json: class names, labels, file ending and reader; a region-based "
                             "dataset is scored per region (numbered 1..R), its ignore label left out; a ground "
                             "truth or prediction holding a label it does not declare is refused (that label "
                             "would count as background for every class)")
    parser.add_argument("--file-ending", default=None,
                        help="file ending such as .nii.gz (default: from --dataset-json or the GT folder)")
    parser.add_argument("--empty-hd", choices=("diagonal", "nan"), default="diagonal",
                        help="HD of a structure missing from prediction or ground truth: the image diagonal "
                             "in mm (default) or NaN (excluded from means, counted)")
    parser.add_argument("--no-progress", action="store_true", help="hide the progress bar")
    parser.set_defaults(func=run_evaluate)


def run_evaluate(args: argparse.Namespace) -> int:
    """Run the evaluation described by ``args``; return the process exit code (0 on success)."""
    output = Path(args.output) if args.output else Path(args.pred_folder) / "evaluation.json"
    labels = parse_labels(args.labels)
    check_result_outputs(output)  # refuse before minutes of work: a file -o may not replace, a symbolic link
    result = evaluate_folders(
        args.gt_folder,
        args.pred_folder,
        labels=labels,
        num_processes=args.num_processes,
        file_ending=args.file_ending,
        dataset_json=args.dataset_json,
        empty_hd=args.empty_hd,
        progress=not args.no_progress,
    )
    paths = write_result_files(result, output)
    summary = result["summary"]
    labels_text = [str(lb) for lb in result["labels"]]
    name = Path(args.pred_folder).name or str(args.pred_folder)
    print(f"\n{summary['n_cases']} cases; distances in mm from each ground-truth file's voxel spacing "
          f"(read with nnU-Net's {result['reader']}); % = the class's share of all voxels of the ground-truth images")
    print(format_class_table(
        [(name, summary["classes"])],
        labels_text,
        result["label_names"],
        metrics=("dice", "hd", "hd95"),
        voxel_percent={lb: summary["classes"][lb]["gt_voxel_percent"] for lb in labels_text},
    ))
    print(_status_line(summary, labels_text, result["label_names"], result["empty_hd"]))
    print("wrote " + ", ".join(str(p) for p in paths))
    return 0


def _status_line(summary: dict, labels: list[str], names: dict[str, str], empty_hd: str) -> str:
    parts = []
    for label in labels:
        counts = summary["classes"][label]["status_counts"]
        parts.append(
            f"{names.get(label) or 'label ' + label}: {counts['both_empty']} both empty, "
            f"{counts['missed']} missed, {counts['spurious']} spurious"
        )
    penalty = "the image diagonal" if empty_hd == "diagonal" else "NaN, left out of the means"
    return f"empty structures, counted in the means (HD of a missed or spurious one = {penalty}): " + \
        "; ".join(parts)
