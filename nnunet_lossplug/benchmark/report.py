"""The benchmark's report: quality per trainer (raw and after nnU-Net's post-processing) and the paired test.

The unit of the quality table is one training run: a run's Dice (HD95) of a class is its mean over the scored
cases; the table gives mean ± sd over the runs (seeds), the lowest run, and the runs that lost a class. The paired
permutation test (Valverde & Tohka 2022, Sec. 4.1; :func:`~nnunet_lossplug.evaluation.compare_results`) compares
each trainer with the reference one case at a time: a pair is (seed, case), the same case scored by the two
trainers trained with the same seed, so K seeds and N cases give K × N pairs. With n pairs the exact test's
smallest p-value is 2 / 2^n. The pairs are not independent (a case recurs in every seed, a run in every case), so
the p-values lean optimistic; a difference that matters should also show in the per-run means.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np

from nnunet_lossplug.evaluation.compare_results import ComparisonReport, compare_results
from nnunet_lossplug.evaluation.permutation_test import SIGNIFICANCE_LEVEL, is_exact, smallest_p_value

KINDS = {"raw": "raw", "postprocessed": "nnU-Net post-processing"}
PAIRED_METRICS = ("dice", "hd95")
DASH = "—"


@dataclass(frozen=True)
class QualityRow:
    """One trainer's runs, raw or post-processed: per class the runs' mean Dice and HD95 (one value per run)."""

    trainer: str
    kind: str
    seeds: list[int]
    dice: np.ndarray  # runs x classes
    hd95: np.ndarray
    seconds: float

    def lost(self, below: float) -> np.ndarray:
        return (self.dice < below).sum(axis=0)


def run_means(cases: Mapping[str, Mapping], labels: Sequence[str], metric: str) -> list[float]:
    """Per class, the mean of ``metric`` over the cases (undefined values left out)."""
    means = []
    for label in labels:
        values = np.array([_number(per_class.get(label, {}).get(metric)) for per_class in cases.values()])
        values = values[np.isfinite(values)]
        means.append(float(values.mean()) if values.size else math.nan)
    return means


def _number(value) -> float:
    return math.nan if value is None else float(value)


def quality_rows(document: Mapping) -> list[QualityRow]:
    """Per trainer (in the order named) and kind (raw, post-processed), the runs' means."""
    labels = sorted(document["label_names"], key=int)
    rows = []
    for trainer in document["trainers"]:
        runs = [run for run in document["runs"] if run["trainer"] == trainer]
        if not runs:
            continue
        seconds = float(np.median([sum(run["seconds"].values()) for run in runs]))
        for kind in KINDS:
            rows.append(QualityRow(trainer, kind, [run["seed"] for run in runs],
                                   np.array([run_means(run[kind], labels, "dice") for run in runs]),
                                   np.array([run_means(run[kind], labels, "hd95") for run in runs]), seconds))
    return rows


def mean_sd(values: np.ndarray, digits: int) -> str:
    """``mean ± sd`` over the runs; ``mean ± —`` for a single run (no sd), ``—`` when nothing is defined."""
    finite = values[np.isfinite(values)]
    if finite.size == 0:
        return DASH
    sd = f"{finite.std(ddof=1):.{digits}f}" if finite.size > 1 else DASH
    return f"{finite.mean():.{digits}f} ± {sd}"


def seeds_by_cases(document: Mapping, trainer: str, kind: str, seeds: Sequence[int]) -> dict:
    """A result-shaped dictionary whose cases are (seed, case) pairs of ``trainer``'s runs on ``seeds``."""
    cases = {}
    for run in document["runs"]:
        if run["trainer"] == trainer and run["seed"] in seeds:
            for case, per_class in run[kind].items():
                cases[f"seed {run['seed']} / {case}"] = {
                    label: {m: _number(v) for m, v in entry.items()} for label, entry in per_class.items()}
    return {"cases": cases}


def paired_comparisons(document: Mapping) -> list[tuple[str, str, ComparisonReport, list[int]]]:
    """``(trainer, kind, comparison with the reference, seeds paired)`` for every other trainer and kind."""
    reference = document["reference"]
    seeds_of = {t: {run["seed"] for run in document["runs"] if run["trainer"] == t} for t in document["trainers"]}
    found = []
    for trainer in document["trainers"]:
        common = sorted(seeds_of[trainer] & seeds_of.get(reference, set()))
        if trainer == reference or not common:
            continue
        for kind in KINDS:
            report = compare_results(seeds_by_cases(document, reference, kind, common),
                                     seeds_by_cases(document, trainer, kind, common), metrics=PAIRED_METRICS)
            found.append((trainer, kind, report, common))
    return found


def _number_text(value: float, digits: int, sign: str = "") -> str:
    return f"{value:{sign}.{digits}f}" if math.isfinite(value) else DASH


def _count(number: int, noun: str) -> str:
    return f"{number} {noun}{'' if number == 1 else 's'}"


def schedule_text(schedule: Mapping) -> str:
    """``12 epochs × 40 iterations``."""
    return f"{_count(schedule['epochs'], 'epoch')} × {_count(schedule['iterations_per_epoch'], 'iteration')}"


def _name(document: Mapping, label: str) -> str:
    return document["label_names"].get(label) or f"label {label}"


def markdown_report(document: Mapping, lost_below: float = 0.5, target: float | None = None) -> str:
    """The whole report as Markdown: what was run, the quality table, the paired test, what it means.

    ``target`` adds a column counting the runs with every class at or above that Dice.
    """
    labels = sorted(document["label_names"], key=int)
    names = [_name(document, label) for label in labels]
    schedule = document["schedule"]
    rows = quality_rows(document)
    seeds = sorted({run["seed"] for run in document["runs"]})
    lr = (f"; trainers that declare Adam start at lr {schedule['adam_lr']:g}, SGD trainers at their own"
          if schedule["adam_lr"] is not None else "; every trainer at its own learning rate")
    lines = [
        f"# Which loss for {document['dataset']}? ({document['configuration']}, {schedule_text(schedule)}, "
        f"{_count(len(seeds), 'seed')})",
        "",
        f"Written by `{document['written_by']}`. Every trainer ran on the same data, fold {document['fold']}, schedule "
        f"({schedule_text(schedule)} on {document['device']}{lr}) "
        f"and seeds ({', '.join(map(str, seeds))}), through `nnUNetv2_train` with `NNUNET_LOSSPLUG_SEED` and "
        f"`nnUNet_n_proc_DA=0`; only what each trainer declares differs.",
        "",
        f"**Scored cases:** {document['held_out']}.",
        "",
        f"**Rows:** *raw* is the network's prediction; *nnU-Net post-processing* is the same prediction after "
        f"{document['postprocessing_step']}, chosen per run on fold {document['fold']}'s validation cases"
        + (" (the scored cases themselves: optimistic)" if document["held_out_kind"] == "validation" else "")
        + ". A run's value of a class is its mean over the scored cases; mean ± sd are over the runs "
        "(— : one run, no sd). A class missing from a prediction but not from the reference scores Dice 0 and, as "
        "HD95, the image's diagonal (as `nnunet-lossplug evaluate` scores it), so one missed case dominates a mean "
        "HD95.",
        "",
        "| trainer | predictions | runs | " + " | ".join(f"{n} Dice (lowest run)" for n in names) + " | "
        + " | ".join(f"{n} HD95 mm" for n in names) + f" | runs that lost a class (Dice < {lost_below:g}) "
        + ("" if target is None else f"| runs with every class ≥ {target:g} ") + "| median min per run |",
        "|---|---|---|" + "---|" * (2 * len(names) + 2 + (target is not None)),
    ]
    for row in rows:
        dice = [f"{mean_sd(row.dice[:, c], 3)} ({np.nanmin(row.dice[:, c]):.3f})"
                if np.isfinite(row.dice[:, c]).any() else DASH for c in range(len(labels))]
        hd95 = [mean_sd(row.hd95[:, c], 1) for c in range(len(labels))]
        lost = ", ".join(f"{n}: {int(k)}" for n, k in zip(names, row.lost(lost_below), strict=True) if k) or "none"
        at_target = "" if target is None else f" {int((row.dice >= target).all(axis=1).sum())} / {len(row.seeds)} |"
        lines.append(f"| {row.trainer} | {KINDS[row.kind]} | {len(row.seeds)} | " + " | ".join(dice) + " | "
                     + " | ".join(hd95) + f" | {lost} |{at_target} {row.seconds / 60:.1f} |")
    lines += ["", "Post-processing chosen per run: " + "; ".join(
        f"{run['trainer']} seed {run['seed']}: {run['postprocessing_text']}" for run in document["runs"]) + "."]
    lines += _comparison_section(document, names, labels)
    lines += ["", "Files: `report.json` (every run: settings, per-case metrics raw and post-processed, seconds, "
              "commands), `report.png` (one dot per run and class), `commands.sh` (the exact commands), `runs/` "
              "(models, predictions, logs), `trainers/` (the short-schedule trainers; "
              f"`{document['ext_trainer_line']}` lets `nnUNetv2_train` and `nnUNetv2_predict` use them)."]
    return "\n".join(lines) + "\n"


def _comparison_section(document: Mapping, names: list[str], labels: list[str]) -> list[str]:
    reference = document["reference"]
    comparisons = paired_comparisons(document)
    if not comparisons:
        return ["", f"No paired test: no other trainer shares a seed with the reference {reference}."]
    lines = ["", f"## Paired permutation test against {reference}", "",
             "| trainer | predictions | class | metric | pairs | mean " + reference + " | mean trainer | "
             "trainer − reference | p |", "|---|---|---|---|---|---|---|---|---|"]
    significant = []
    for trainer, kind, report, _ in comparisons:
        for row in report.rows:
            digits = 3 if row.metric == "dice" else 1
            p_text = DASH if not math.isfinite(row.p_value) else f"{row.p_value:.4f}"
            p_text += " *" if row.significant else ""
            lines.append(f"| {trainer} | {KINDS[kind]} | {_name(document, row.label)} | "
                         f"{'Dice' if row.metric == 'dice' else 'HD95 mm'} | {row.n_pairs} | "
                         f"{_number_text(row.mean_a, digits)} | {_number_text(row.mean_b, digits)} | "
                         f"{_number_text(row.mean_difference_b_minus_a, digits, '+')} | {p_text} |")
            if row.significant:
                better = (row.mean_difference_b_minus_a > 0) == (row.metric == "dice")
                significant.append(f"{trainer} ({KINDS[kind]}) {'better' if better else 'worse'} than {reference} "
                                   f"on {_name(document, row.label)} {('Dice' if row.metric == 'dice' else 'HD95')}")
    _, _, report, common = comparisons[0]
    tests = sum(len(found.rows) for _, _, found, _ in comparisons)
    pairs = report.n_paired_cases
    cases = pairs // max(1, len(common))
    floor = smallest_p_value(pairs, report.n_permutations)
    floor_text = (f"the smallest p the exact test can reach is 2/2^{pairs} = {floor:.2g}"
                  if is_exact(pairs, report.n_permutations) else
                  f"the test flips signs {report.n_permutations} times at random, so its smallest p is "
                  f"1/{report.n_permutations + 1} = {floor:.2g}")
    lines += ["", f"Pairs = seeds × cases: {_count(len(common), 'seed')} × {_count(cases, 'case')} = "
              f"{pairs} pairs (a pair: one case scored by both trainers trained with the same seed). With {pairs} "
              f"pairs {floor_text}"
              + ("" if floor < SIGNIFICANCE_LEVEL else
                 f", not below {SIGNIFICANCE_LEVEL}: no difference can be significant; add seeds or cases")
              + f". * = p < {SIGNIFICANCE_LEVEL}, no correction for the {tests} tests."
              " A case recurs in every seed and a run in every case, so the pairs are not independent and the "
              "p-values lean optimistic: trust a difference that also shows in the per-run means above."]
    if significant:
        lines += ["", "Significant: " + "; ".join(significant) + "."]
    elif floor >= SIGNIFICANCE_LEVEL:
        lines += ["", f"No test can be significant with {pairs} pairs: read the differences above as sizes, not "
                      f"findings, and run more seeds."]
    else:
        lines += ["", f"No difference is significant at p < {SIGNIFICANCE_LEVEL}: on this data and budget the "
                      f"trainers cannot be told apart."]
    return lines
