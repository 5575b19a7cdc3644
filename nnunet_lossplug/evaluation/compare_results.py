"""Compare two evaluation results case by case: a paired permutation test per class and metric.

Only cases present in both results are paired; within a class and metric a pair with an undefined value
(NaN, possible under the ``"nan"`` empty convention) is dropped and counted. The test is
:func:`nnunet_lossplug.evaluation.permutation_test.paired_permutation_test` (Valverde & Tohka 2022, Sec. 4.1).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass

import numpy as np

from nnunet_lossplug.evaluation.output_files import COMPARE_FORMAT, OutputKind
from nnunet_lossplug.evaluation.permutation_test import (
    SIGNIFICANCE_LEVEL,
    paired_permutation_test,
    smallest_p_value,
)
from nnunet_lossplug.evaluation.summary import METRICS
from nnunet_lossplug.evaluation.tables import METRIC_DECIMALS, METRIC_HEADERS

#: the JSON ``compare -o`` writes; an existing file is replaced only if it is one (older ones lack the marker)
COMPARISON_JSON = OutputKind("comparison JSON of `nnunet-lossplug compare`", json_format=COMPARE_FORMAT,
                             legacy_keys=frozenset({"a", "b", "name_a", "name_b", "n_paired_cases", "rows"}))


@dataclass(frozen=True)
class MetricComparison:
    """One class and metric of a comparison: means of A and B over the pairs, and the test outcome."""

    label: str
    metric: str
    n_pairs: int
    n_dropped_undefined: int
    mean_a: float
    mean_b: float
    mean_difference_b_minus_a: float
    statistic: float
    p_value: float
    exact: bool
    significant: bool


@dataclass(frozen=True)
class ComparisonReport:
    """All comparisons of two results and how the cases were paired."""

    n_paired_cases: int
    only_in_a: list[str]
    only_in_b: list[str]
    n_permutations: int
    seed: int | None
    rows: list[MetricComparison]

    def to_dict(self) -> dict:
        """A JSON-ready dictionary (NaN kept as float; serialise with result_io.to_json_compatible)."""
        return asdict(self)


def compare_results(
    result_a: Mapping,
    result_b: Mapping,
    metrics: Sequence[str] = ("dice", "hd"),
    n_permutations: int = 10000,
    seed: int | None = 0,
    labels: Sequence[str] | None = None,
) -> ComparisonReport:
    """Paired permutation tests of every class and metric between two loaded results.

    Args:
        result_a: a result dictionary (``load_result``) of method A.
        result_b: the same for method B.
        metrics: metric names among ``dice``, ``hd``, ``hd95`` (default Dice and HD, as in the paper).
        n_permutations: random sign flips per test (default 10 000, as Valverde & Tohka 2022).
        seed: random seed (default 0); every test uses the same seed, so reruns give identical p-values.
        labels: classes to compare (strings); default those present in both results.

    Raises:
        ValueError: on an unknown metric or when no case is present in both results.
    """
    unknown = [m for m in metrics if m not in METRICS]
    if unknown:
        raise ValueError(f"unknown metrics {unknown}; choose from {list(METRICS)}.")
    cases_a, cases_b = result_a["cases"], result_b["cases"]
    paired = [c for c in cases_a if c in cases_b]
    if not paired:
        raise ValueError(
            "the two results have no case in common; compare results evaluated on the same cases "
            f"(A has e.g. {list(cases_a)[:3]}, B has e.g. {list(cases_b)[:3]})."
        )
    if labels is None:
        labels_a = {lb for c in paired for lb in cases_a[c]}
        labels_b = {lb for c in paired for lb in cases_b[c]}
        labels = sorted(labels_a & labels_b, key=_label_sort_key)

    rows = []
    for label in labels:
        for metric in metrics:
            a = np.array([_value(cases_a[c], label, metric) for c in paired])
            b = np.array([_value(cases_b[c], label, metric) for c in paired])
            keep = np.isfinite(a) & np.isfinite(b)
            test = paired_permutation_test(a[keep], b[keep], n_permutations=n_permutations, seed=seed)
            rows.append(
                MetricComparison(
                    label=str(label),
                    metric=metric,
                    n_pairs=int(keep.sum()),
                    n_dropped_undefined=int((~keep).sum()),
                    mean_a=float(a[keep].mean()) if keep.any() else math.nan,
                    mean_b=float(b[keep].mean()) if keep.any() else math.nan,
                    mean_difference_b_minus_a=-test.mean_difference if keep.any() else math.nan,
                    statistic=test.statistic,
                    p_value=test.p_value,
                    exact=test.exact,
                    significant=test.significant,
                )
            )
    return ComparisonReport(
        n_paired_cases=len(paired),
        only_in_a=sorted(set(cases_a) - set(cases_b)),
        only_in_b=sorted(set(cases_b) - set(cases_a)),
        n_permutations=n_permutations,
        seed=seed,
        rows=rows,
    )


def ground_truth_differences(result_a: Mapping, result_b: Mapping, name_a: str, name_b: str) -> list[str]:
    """Why the cases of two results may not be paired: another ground truth or another label set; [] if none.

    The ground truth is the same when every paired case carries the same ``gt_sha256`` fingerprint in both
    (:func:`nnunet_lossplug.evaluation.evaluate_folders.ground_truth_fingerprint`), wherever its folder was;
    results without fingerprints (written before they existed) are compared by ``gt_folder``. The label sets
    are ``labels``, ``regions`` and ``ignore_label`` as ``evaluate`` recorded them. A result recording none of
    these cannot be checked (:func:`unchecked_ground_truth`).
    """
    problems = []
    folder_a, folder_b = result_a.get("gt_folder"), result_b.get("gt_folder")
    paired = [c for c in result_a["cases"] if c in result_b["cases"]]
    prints_a = {c: (result_a.get("case_info") or {}).get(c, {}).get("gt_sha256") for c in paired}
    prints_b = {c: (result_b.get("case_info") or {}).get(c, {}).get("gt_sha256") for c in paired}
    if paired and all(prints_a.values()) and all(prints_b.values()):
        differing = [c for c in paired if prints_a[c] != prints_b[c]]
        if differing:
            problems.append(
                f"the ground truth of {len(differing)} of {len(paired)} paired cases differs (e.g. {differing[0]}): "
                f"{name_a} was scored against {folder_a}, {name_b} against {folder_b}")
    elif folder_a and folder_b and folder_a != folder_b:
        problems.append(f"{name_a} was scored against ground truth {folder_a}, {name_b} against {folder_b}")
    for key, what in (("labels", "labels"), ("regions", "regions"), ("ignore_label", "ignore label")):
        if key in result_a and key in result_b and result_a[key] != result_b[key]:
            problems.append(f"{name_a} scored {what} {_compact(result_a[key])}, {name_b} {what} "
                            f"{_compact(result_b[key])}")
    return problems


def unchecked_ground_truth(result_a: Mapping, result_b: Mapping, name_a: str, name_b: str) -> list[str]:
    """The results that record neither ground-truth fingerprints nor folder (hand-made), by name."""
    return [name for name, result in ((name_a, result_a), (name_b, result_b))
            if not result.get("gt_folder") and not any(
                info.get("gt_sha256") for info in (result.get("case_info") or {}).values())]


def reachability_notes(report: ComparisonReport) -> list[str]:
    """One line per number of pairs whose smallest reachable p-value is not below 0.05 (no row can be significant).

    ``with 3 pairs the smallest reachable p is 0.25: no difference can be significant at 0.05; use more cases
    or seeds`` (exact test), or with too few random sign flips ``...; raise -n``.
    """
    notes = []
    for n_pairs in sorted({row.n_pairs for row in report.rows if row.n_pairs > 0}):
        floor = smallest_p_value(n_pairs, report.n_permutations)
        if floor < SIGNIFICANCE_LEVEL:
            continue
        rows = [row for row in report.rows if row.n_pairs == n_pairs]
        scope = "" if len(rows) == len(report.rows) else f" ({len(rows)} of {len(report.rows)} tests)"
        if any(row.exact for row in rows):
            fix = "use more cases or seeds"
            pairs_text = f"with {n_pairs} pairs"
        else:
            fix = f"raise -n above {int(round(1 / SIGNIFICANCE_LEVEL))}"
            pairs_text = f"with {n_pairs} pairs and {report.n_permutations} random sign flips"
        notes.append(f"{pairs_text}{scope} the smallest reachable p is {floor:.3g}: no difference can be "
                     f"significant at {SIGNIFICANCE_LEVEL:g}; {fix}")
    return notes


def _compact(value) -> str:
    if isinstance(value, list) and all(isinstance(v, int) for v in value) and value:
        return "{" + ", ".join(map(str, value)) + "}"
    return str(value)


def _label_sort_key(label: str):
    return (0, int(label)) if str(label).isdigit() else (1, str(label))


def _value(per_class: Mapping, label: str, metric: str) -> float:
    entry = per_class.get(str(label))
    if entry is None:
        return math.nan
    value = entry[metric]
    return math.nan if value is None else float(value)


def format_comparison_table(
    report: ComparisonReport,
    name_a: str,
    name_b: str,
    label_names: Mapping[str, str] | None = None,
) -> str:
    """A text table: class, metric, pairs, mean A, mean B, B − A, p-value and ``*`` when p < 0.05."""
    label_names = label_names or {}
    header = ["class", "metric", "pairs", f"mean {name_a}", f"mean {name_b}", "B - A", "p-value", "sig"]
    body = []
    for row in report.rows:
        decimals = METRIC_DECIMALS[row.metric]
        p_text = "–" if not math.isfinite(row.p_value) else f"{row.p_value:.4f}"
        if row.exact:
            p_text += " (exact)"
        pairs = str(row.n_pairs)
        if row.n_dropped_undefined:
            pairs += f" (-{row.n_dropped_undefined} undefined)"
        body.append(
            [
                label_names.get(row.label) or f"label {row.label}",
                METRIC_HEADERS[row.metric],
                pairs,
                _fmt(row.mean_a, decimals),
                _fmt(row.mean_b, decimals),
                _fmt(row.mean_difference_b_minus_a, decimals, signed=True),
                p_text,
                "*" if row.significant else "",
            ]
        )
    widths = [max(len(r[i]) for r in [header, *body]) for i in range(len(header))]
    lines = ["  ".join(cell.ljust(w) for cell, w in zip(header, widths, strict=True)).rstrip()]
    lines.append("-" * len(lines[0]))
    lines += ["  ".join(cell.ljust(w) for cell, w in zip(r, widths, strict=True)).rstrip() for r in body]
    return "\n".join(lines)


def pairing_summary(report: ComparisonReport, name_a: str, name_b: str) -> str:
    """One line saying how many cases were paired and how many were left out on each side."""
    text = f"paired {report.n_paired_cases} cases present in both {name_a} and {name_b}"
    if report.only_in_a or report.only_in_b:
        text += (
            f"; left out {len(report.only_in_a)} only in {name_a}, {len(report.only_in_b)} only in {name_b}"
        )
    exact = [row.exact for row in report.rows]
    if exact and all(exact):
        perm = "exact: every sign flip of the pairs enumerated"
    else:
        perm = f"{report.n_permutations} random sign flips (seed {report.seed})" + (
            "; exact where marked" if any(exact) else "")
    floor = smallest_p_value(report.n_paired_cases, report.n_permutations)
    return text + (f"; paired permutation test, statistic |mean(A - B)|, {perm}; smallest reachable p "
                   f"{floor:.3g}; * = p < {SIGNIFICANCE_LEVEL:g}")


def _fmt(value: float, decimals: int, signed: bool = False) -> str:
    if not math.isfinite(value):
        return "–"
    return f"{value:+.{decimals}f}" if signed else f"{value:.{decimals}f}"
