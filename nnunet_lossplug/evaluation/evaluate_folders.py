"""Evaluate a folder of predictions against a folder of ground truths: Dice, HD and HD95 in mm per class.

Every case is read with nnU-Net's reader (see :mod:`nnunet_lossplug.evaluation.segmentation_io`); the
spacing comes from the ground-truth file's header, in the array's axis order. Every file must hold integer
labels, and the prediction must lie in the ground truth's geometry (shape, spacing, origin, direction; see
:mod:`~nnunet_lossplug.evaluation.segmentation_io` for the tolerances); with a dataset.json every label
present must be declared there. A file that fails is refused, never rounded, realigned or partly ignored.
Metrics and the empty-structure convention are those of :mod:`nnunet_lossplug.evaluation.case_metrics`. Cases
run in a process pool (``num_processes``, default 2) with a tqdm progress bar.
"""

from __future__ import annotations

import hashlib
import json
import multiprocessing
import os
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path

import numpy as np
from tqdm import tqdm

from nnunet_lossplug.evaluation.case_metrics import (
    EMPTY_HD_CHOICES,
    both_empty_metrics,
    case_metrics,
)
from nnunet_lossplug.evaluation.label_setup import evaluation_labels
from nnunet_lossplug.evaluation.result_io import load_label_names
from nnunet_lossplug.evaluation.segmentation_io import (
    check_declared_labels,
    check_same_geometry,
    infer_file_ending,
    pair_case_files,
    read_segmentation,
    select_reader_class,
)
from nnunet_lossplug.evaluation.summary import summarize_cases

SPACING_SOURCE = (
    "ground-truth file header, read by nnU-Net's reader ({reader}); spacing in mm per array axis, in "
    "nnU-Net's array axis order (for NIfTI/SimpleITK the reverse of the header's x, y, z order)"
)

CONVENTIONS = {
    "hausdorff": "symmetric Hausdorff distance between boundary voxels (Valverde & Tohka 2022, eq. 7), MONAI "
    "compute_hausdorff_distance, boundary = mask XOR erosion with the face-neighbour cross",
    "hd95": "maximum of the two directed 95th percentiles of boundary-to-boundary distances",
    "both_empty": "dice 1, hd 0, hd95 0",
    "missed_or_spurious": "dice 0, hd and hd95 = {penalty}",
}


def ground_truth_fingerprint(labels: np.ndarray, spacing: Sequence[float]) -> str:
    """SHA-256 of a ground truth's labels (as int32, C order), shape and spacing (mm, 4 decimals).

    Two results whose cases carry the same fingerprints were scored against the same ground truth, wherever
    its folder was; ``nnunet-lossplug compare`` checks it.
    """
    digest = hashlib.sha256()
    digest.update(repr((tuple(labels.shape), tuple(round(float(s), 4) for s in spacing))).encode())
    digest.update(np.ascontiguousarray(labels, dtype=np.int32).tobytes())
    return digest.hexdigest()


def _evaluate_one_case(task: tuple) -> tuple[str, dict, dict, list[int]]:
    """Worker: read one GT/prediction pair; its per-class metrics, case info and the labels found in either."""
    case_id, gt_path, pred_path, reader_class, labels, empty_hd, setup, dataset_json = task
    gt = read_segmentation(gt_path, reader_class, role="ground truth")
    pred = read_segmentation(pred_path, reader_class, role="prediction")
    check_same_geometry(case_id, gt, gt_path, pred, pred_path)
    if setup.declared is not None:
        check_declared_labels(case_id, gt.labels, gt_path, "ground truth", setup.declared, dataset_json)
        check_declared_labels(case_id, pred.labels, pred_path, "prediction", setup.declared, dataset_json)
    metrics = case_metrics(pred.labels, gt.labels, gt.spacing, labels=labels, empty_hd=empty_hd,
                           regions=setup.regions, ignore_label=setup.ignore_label)
    info = {"shape": list(gt.labels.shape), "spacing": list(gt.spacing),
            "gt_sha256": ground_truth_fingerprint(gt.labels, gt.spacing)}
    found = [int(v) for v in np.union1d(np.unique(gt.labels), np.unique(pred.labels))]
    return case_id, metrics, info, found


def _init_worker() -> None:
    import torch

    torch.set_num_threads(1)


def _pool_context():
    # fork lets workers share the already imported MONAI (its import alone takes seconds); spawn elsewhere
    methods = multiprocessing.get_all_start_methods()
    return multiprocessing.get_context("fork" if "fork" in methods else "spawn")


def evaluate_folders(
    gt_folder: str | Path,
    pred_folder: str | Path,
    labels: Iterable[int] | None = None,
    num_processes: int = 2,
    file_ending: str | None = None,
    dataset_json: str | Path | None = None,
    empty_hd: str = "diagonal",
    progress: bool = True,
) -> dict:
    """Evaluate every ground-truth case against the prediction of the same file name.

    Args:
        gt_folder: folder of ground-truth label maps (e.g. ``nnUNet_raw/DatasetXXX/labelsTr``).
        pred_folder: folder of predictions with the same file names.
        labels: class labels to evaluate. Default: the non-background labels of ``dataset_json`` when
            given, else every non-zero label found in any ground truth or prediction; a class absent from
            a case is then scored as ``both_empty``.
        num_processes: worker processes (default 2; 1 runs in this process).
        file_ending: e.g. ``".nii.gz"``; default: from ``dataset_json`` or the most common readable ending
            in ``gt_folder``.
        dataset_json: optional nnU-Net dataset.json for labels, names, file ending and reader class. For a
            region-based dataset every region is scored (numbered 1..R in dataset.json order, named after
            its entry; the result's ``"regions"`` maps numbers to labels); voxels of its ``"ignore"`` label
            are left out of every metric (``docs/conventions.md#regions``). A ground truth or prediction holding a
            label that dataset.json does not declare is refused (it would count as background for every class),
            and so is a requested label it does not declare; without it, a requested label found in no file.
        empty_hd: distance for a missed or spurious structure, ``"diagonal"`` (default) or ``"nan"``;
            see :mod:`nnunet_lossplug.evaluation.case_metrics`.
        progress: show a tqdm progress bar.

    Returns:
        The RESULT dictionary described in :mod:`nnunet_lossplug.evaluation.result_io`.
    """
    if empty_hd not in EMPTY_HD_CHOICES:
        raise ValueError(f"empty_hd must be one of {EMPTY_HD_CHOICES}, got {empty_hd!r}.")
    if num_processes < 1:
        raise ValueError(f"num_processes must be at least 1, got {num_processes}.")
    label_names: dict[str, str] = {}
    setup = evaluation_labels(dataset_json)
    if dataset_json is not None:
        label_names = setup.names if setup.regions is not None else {
            k: v for k, v in load_label_names(dataset_json).items() if k != str(setup.ignore_label)}
        if file_ending is None:
            file_ending = json.loads(Path(dataset_json).read_text()).get("file_ending")
        if labels is None:
            labels = [int(k) for k in label_names]
    if file_ending is None:
        file_ending = infer_file_ending(gt_folder)
    pairs, extra_predictions = pair_case_files(gt_folder, pred_folder, file_ending)
    first_gt = next(iter(pairs.values()))[0]
    reader_class = select_reader_class(file_ending, first_gt, dataset_json)
    fixed_labels = None if labels is None else sorted({int(v) for v in labels})
    if fixed_labels is not None and any(v <= 0 for v in fixed_labels):
        raise ValueError(f"labels must be positive class labels (0 is background), got {fixed_labels}.")
    if fixed_labels is not None and dataset_json is not None:
        _check_labels_declared(fixed_labels, setup, label_names, dataset_json)

    tasks = [(case, gt, pred, reader_class, fixed_labels, empty_hd, setup, dataset_json)
             for case, (gt, pred) in pairs.items()]
    results = _run_tasks(tasks, num_processes, progress)

    cases = {case: results[case][0] for case in pairs}
    case_info = {case: results[case][1] for case in pairs}
    if fixed_labels is not None and dataset_json is None:
        found = sorted({v for case in pairs for v in results[case][2]})
        _check_labels_found(fixed_labels, found, cases, gt_folder, pred_folder)
    if fixed_labels is None:
        fixed_labels = sorted({int(k) for per_case in cases.values() for k in per_case})
        for per_case in cases.values():
            for label in fixed_labels:
                per_case.setdefault(str(label), both_empty_metrics())
            ordered = {str(label): per_case[str(label)] for label in fixed_labels}
            per_case.clear()
            per_case.update(ordered)

    penalty = "image diagonal in mm" if empty_hd == "diagonal" else "NaN (null in JSON), excluded from means"
    return {
        "cases": cases,
        "summary": summarize_cases(cases, fixed_labels, case_info),
        "labels": fixed_labels,
        "label_names": {str(k): label_names.get(str(k), "") for k in fixed_labels if label_names.get(str(k))},
        "case_info": case_info,
        "spacing_source": SPACING_SOURCE.format(reader=reader_class.__name__),
        "reader": reader_class.__name__,
        "conventions": {**CONVENTIONS, "missed_or_spurious": CONVENTIONS["missed_or_spurious"].format(
            penalty=penalty)},
        "empty_hd": empty_hd,
        "regions": None if setup.regions is None else {str(k): list(v) for k, v in setup.regions.items()},
        "ignore_label": setup.ignore_label,
        "gt_folder": os.path.abspath(gt_folder),
        "pred_folder": os.path.abspath(pred_folder),
        "file_ending": file_ending,
        "extra_predictions_not_evaluated": extra_predictions,
    }


def _check_labels_declared(labels: Sequence[int], setup, label_names: Mapping[str, str],
                            dataset_json: str | Path) -> None:
    """Refuse a requested label (region number on a region-based dataset) that ``dataset_json`` does not declare.

    It would score Dice 1 ("both empty") in every case for a class that does not exist.
    """
    allowed = sorted(int(k) for k in label_names)
    unknown = [v for v in labels if v not in allowed]
    if unknown:
        what = "region numbers" if setup.regions is not None else "class labels"
        listed = ", ".join(f"{k} ({label_names[str(k)]})" for k in allowed)
        raise ValueError(
            f"label {', '.join(map(str, unknown))} requested with -l/--labels is not declared in {dataset_json} "
            f"(its {what}: {listed}); it would score Dice 1 (absent from both) in every case. Request declared "
            "labels, or leave out -l to score all of them."
        )


def _check_labels_found(labels: Sequence[int], found: Sequence[int], cases: Mapping[str, Mapping],
                        gt_folder: str | Path, pred_folder: str | Path) -> None:
    """Refuse a requested label present in no ground truth and no prediction (no dataset.json to vouch for it)."""
    absent = [v for v in labels if v not in found]
    if absent:
        present = ", ".join(str(v) for v in found if v != 0) or "none"
        raise ValueError(
            f"label {', '.join(map(str, absent))} requested with -l/--labels is in no ground truth of {gt_folder} "
            f"and no prediction of {pred_folder} ({len(cases)} cases; labels found: {present}); it would score "
            "Dice 1 (absent from both) in every case. Check the label number, or give --dataset-json to score a "
            "declared class that these cases lack."
        )


def _run_tasks(tasks: Sequence[tuple], num_processes: int, progress: bool
               ) -> Mapping[str, tuple[dict, dict, list[int]]]:
    results: dict[str, tuple[dict, dict, list[int]]] = {}
    parallel = num_processes > 1 and len(tasks) > 1
    if parallel:
        import monai.metrics  # noqa: F401  (import once, before forking: workers inherit it)
    bar = tqdm(total=len(tasks), desc="evaluating", unit="case", disable=not progress)
    try:
        if not parallel:
            for task in tasks:
                case_id, metrics, info, found = _evaluate_one_case(task)
                results[case_id] = (metrics, info, found)
                bar.update()
        else:
            with _pool_context().Pool(min(num_processes, len(tasks)), initializer=_init_worker) as pool:
                for case_id, metrics, info, found in pool.imap_unordered(_evaluate_one_case, tasks):
                    results[case_id] = (metrics, info, found)
                    bar.update()
    finally:
        bar.close()
    return results
