"""Valverde & Tohka's (2022) Table 5 layout (Dice and HD per structure and phase) from a local evaluation of the test
set.

The ACDC challenge platform scores a submission per phase: Dice and Hausdorff distance (mm) of RV, myocardium
and LV at end-diastole (ED) and end-systole (ES), each the mean over the 50 test patients. The current ACDC
release ships the test labels, so the same numbers can be computed locally: ``nnunet-lossplug evaluate
labelsTs PRED -o test.json`` (per case), then this script groups the cases by phase with ``acdc_phases.json``
(``convert_acdc.py``) and prints the paper's row beside ours. Values are means over cases
(``nnunet_lossplug.evaluation.summarize_cases``); HD follows ``nnunet-lossplug evaluate``'s convention for an
empty structure (see the kit README, "Evaluation").

Usage::

    python examples/acdc/table5_report.py test.json --phases $nnUNet_raw/Dataset028_ACDC/acdc_phases.json
"""

from __future__ import annotations

import argparse
import math
import sys
from pathlib import Path

STRUCTURES = (("1", "RV"), ("2", "M"), ("3", "LV"))
PHASES = ("ED", "ES")
METRICS = (("dice", "Dice", 2), ("hd", "HD", 1))
# Valverde & Tohka 2022, Table 5, row "RRW": in the column order of table5_columns()
PAPER_ROW = (0.95, 0.89, 12.0, 13.9, 0.91, 0.92, 9.3, 11.8, 0.97, 0.93, 6.2, 10.5)


def table5_columns() -> list[tuple[str, str, str]]:
    """``(label, metric, phase)`` in the paper's column order: per structure Dice ED, Dice ES, HD ED, HD ES."""
    return [(label, metric, phase) for label, _ in STRUCTURES for metric, _, _ in METRICS for phase in PHASES]


def per_phase_means(result: dict, phases: dict[str, dict]) -> dict[tuple[str, str, str], float]:
    """``{(label, metric, phase): mean over the cases of that phase}`` from an evaluation result.

    Raises:
        ValueError: a case missing from the phase table, or a phase without any case.
    """
    from nnunet_lossplug.evaluation import summarize_cases

    unknown = sorted(case for case in result["cases"] if case not in phases)
    if unknown:
        raise ValueError(f"cases {unknown[:5]} are not in the phase table: pass the acdc_phases.json of this dataset.")
    means = {}
    for phase in PHASES:
        cases = {c: v for c, v in result["cases"].items() if phases[c]["phase"] == phase}
        if not cases:
            raise ValueError(f"no {phase} case in the evaluation: evaluate the predictions of both phases.")
        classes = summarize_cases(cases, [int(label) for label, _ in STRUCTURES])["classes"]
        for label, _ in STRUCTURES:
            for metric, _, _ in METRICS:
                means[(label, metric, phase)] = classes[label][metric]["mean"]
    return means


def format_table5(means: dict[tuple[str, str, str], float], n_patients: int, name: str = "ours") -> str:
    """Markdown table in Valverde & Tohka's (2022) Table 5 layout: the paper's RRW row and ours."""
    names = dict(STRUCTURES)
    decimals = {metric: d for metric, _, d in METRICS}
    titles = {metric: title for metric, title, _ in METRICS}
    header = ["approach"] + [f"{names[label]} {titles[metric]} {phase}" for label, metric, phase in table5_columns()]

    def cell(value: float, metric: str) -> str:
        return "–" if not math.isfinite(value) else f"{value:.{decimals[metric]}f}"

    ours = [cell(means[col], col[1]) for col in table5_columns()]
    paper = [cell(v, col[1]) for v, col in zip(PAPER_ROW, table5_columns(), strict=True)]
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header),
             "| RRW (Valverde & Tohka 2022, challenge platform) | " + " | ".join(paper) + " |",
             f"| {name} (local, {n_patients} patients) | " + " | ".join(ours) + " |"]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Table 5 layout (per-phase Dice/HD) from a local evaluation.")
    parser.add_argument("result", type=Path, help="RESULT.json of `nnunet-lossplug evaluate` on the test set")
    parser.add_argument("--phases", type=Path, required=True, help="acdc_phases.json written by convert_acdc.py")
    parser.add_argument("--name", default="ours", help="name of our row")
    args = parser.parse_args(argv)
    import json

    from nnunet_lossplug.evaluation import load_result

    try:
        result = load_result(args.result)
        phases = json.loads(args.phases.read_text())
        means = per_phase_means(result, phases)
    except (FileNotFoundError, ValueError, KeyError) as error:
        print(f"table5_report: error: {error}", file=sys.stderr)
        return 2
    patients = {phases[c]["patient"] for c in result["cases"]}
    print(format_table5(means, len(patients), args.name))
    return 0


if __name__ == "__main__":
    sys.exit(main())
