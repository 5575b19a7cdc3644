"""Evaluation of nnU-Net segmentations as in Valverde & Tohka 2022 (Region-wise loss), Sec. 4.

- :func:`dice_coefficient` — eq. 6; :func:`hausdorff_distances_mm` — eq. 7 over boundary voxels, in mm,
  with HD95 (MONAI computes the distances);
- :func:`class_metrics` / :func:`case_metrics` — per-class metrics with the documented empty-structure
  convention; :func:`evaluate_folders` — a whole prediction folder, in parallel;
- :func:`paired_permutation_test` / :func:`compare_results` — the paired permutation test of Sec. 4.1;
- :func:`plot_results` — per-class box plots of several results.

Importing this package imports neither MONAI, nnU-Net nor matplotlib; they load when first needed.
"""

from nnunet_lossplug.evaluation.case_metrics import both_empty_metrics, case_metrics, class_metrics
from nnunet_lossplug.evaluation.compare_results import (
    ComparisonReport,
    MetricComparison,
    compare_results,
    format_comparison_table,
)
from nnunet_lossplug.evaluation.evaluate_folders import evaluate_folders
from nnunet_lossplug.evaluation.overlap import dice_coefficient
from nnunet_lossplug.evaluation.permutation_test import PermutationTestResult, paired_permutation_test
from nnunet_lossplug.evaluation.plots import plot_results
from nnunet_lossplug.evaluation.result_io import load_label_names, load_result, write_result_files
from nnunet_lossplug.evaluation.summary import describe, summarize_cases
from nnunet_lossplug.evaluation.surface_distance import hausdorff_distances_mm, image_diagonal_mm
from nnunet_lossplug.evaluation.tables import format_class_table

__all__ = [
    "ComparisonReport",
    "MetricComparison",
    "PermutationTestResult",
    "both_empty_metrics",
    "case_metrics",
    "class_metrics",
    "compare_results",
    "describe",
    "dice_coefficient",
    "evaluate_folders",
    "format_class_table",
    "format_comparison_table",
    "hausdorff_distances_mm",
    "image_diagonal_mm",
    "load_label_names",
    "load_result",
    "paired_permutation_test",
    "plot_results",
    "summarize_cases",
    "write_result_files",
]
