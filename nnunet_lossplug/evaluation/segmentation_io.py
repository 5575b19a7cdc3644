"""Reading segmentations and their spacing with nnU-Net's own reader selection; pairing GT and predictions.

This is the evaluation package's only use of ``nnunetv2``: the reader classes of
``nnunetv2.imageio`` (chosen by ``determine_reader_writer_from_dataset_json`` when a dataset.json is
given, else ``determine_reader_writer_from_file_ending``), so every file format nnU-Net reads can be
evaluated. ``read_seg`` returns an array of shape ``(1, *spatial)`` and ``properties['spacing']`` **in the
array's axis order** — for NIfTI via SimpleITK that is ``(z, y, x)``, the reverse of the header's
``(x, y, z)`` — so spacing and array axes always match. For a 2D file nnU-Net prepends an axis of length 1
with a placeholder spacing (999 × the largest in-plane spacing); that axis carries no distance and the
surface-distance code drops it.
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Sequence
from pathlib import Path

import numpy as np


def _known_file_endings() -> list[str]:
    """All file endings nnU-Net's registered reader/writer classes support, longest first."""
    from nnunetv2.imageio.reader_writer_registry import LIST_OF_IO_CLASSES

    endings = {e.lower() for io_class in LIST_OF_IO_CLASSES for e in io_class.supported_file_endings}
    return sorted(endings, key=len, reverse=True)


def _ending_of(name: str, endings: Sequence[str]) -> str | None:
    lower = name.lower()
    for ending in endings:  # longest first, so ".nii.gz" wins over ".gz"-like shorter matches
        if lower.endswith(ending):
            return ending
    return None


def infer_file_ending(folder: str | Path) -> str:
    """The most common nnU-Net-readable file ending among the files of ``folder`` (e.g. ``".nii.gz"``)."""
    folder = Path(folder)
    endings = _known_file_endings()
    counts = Counter(
        e for p in folder.iterdir() if p.is_file() and (e := _ending_of(p.name, endings)) is not None
    )
    if not counts:
        raise FileNotFoundError(
            f"No segmentation files found in {folder}: expected files ending in one of {endings}. "
            "Pass --file-ending if your files use another ending."
        )
    return counts.most_common(1)[0][0]


def list_cases(folder: str | Path, file_ending: str) -> dict[str, Path]:
    """Map case identifier (file name without ``file_ending``) -> path, for the files of ``folder``."""
    folder = Path(folder)
    if not folder.is_dir():
        raise FileNotFoundError(f"Folder {folder} does not exist or is not a directory.")
    return {
        p.name[: -len(file_ending)]: p
        for p in sorted(folder.iterdir())
        if p.is_file() and p.name.lower().endswith(file_ending.lower())
    }


def pair_case_files(
    gt_folder: str | Path, pred_folder: str | Path, file_ending: str
) -> tuple[dict[str, tuple[Path, Path]], list[str]]:
    """Pair every ground-truth case with the prediction of the same name.

    Returns:
        ``({case_id: (gt_path, pred_path)}, extra_prediction_ids)``; predictions without a ground truth
        are returned separately (they are not evaluated).

    Raises:
        FileNotFoundError: if the ground-truth folder holds no case, or a ground-truth case has no
            prediction (evaluating a subset silently would bias the summary).
    """
    gt_cases = list_cases(gt_folder, file_ending)
    pred_cases = list_cases(pred_folder, file_ending)
    if not gt_cases:
        raise FileNotFoundError(f"No ground-truth files ending in {file_ending!r} in {gt_folder}.")
    missing = sorted(set(gt_cases) - set(pred_cases))
    if missing:
        shown = ", ".join(missing[:10]) + (" ..." if len(missing) > 10 else "")
        raise FileNotFoundError(
            f"{len(missing)} of {len(gt_cases)} ground-truth cases have no prediction in {pred_folder} "
            f"(expected files named like the ground truth, ending in {file_ending!r}): {shown}. "
            "Run the prediction for all cases, or evaluate against a ground-truth folder holding only "
            "the predicted cases."
        )
    extra = sorted(set(pred_cases) - set(gt_cases))
    return {case: (gt_cases[case], pred_cases[case]) for case in gt_cases}, extra


def select_reader_class(file_ending: str, example_file: str | Path, dataset_json: str | Path | None = None):
    """nnU-Net's reader/writer class for these files (honours ``overwrite_image_reader_writer``)."""
    from nnunetv2.imageio.reader_writer_registry import (
        determine_reader_writer_from_dataset_json,
        determine_reader_writer_from_file_ending,
    )

    if dataset_json is not None:
        content = json.loads(Path(dataset_json).read_text())
        content.setdefault("file_ending", file_ending)
        return determine_reader_writer_from_dataset_json(content, str(example_file), verbose=False)
    return determine_reader_writer_from_file_ending(file_ending, str(example_file), verbose=False)


def read_segmentation(path: str | Path, reader_class) -> tuple[np.ndarray, tuple[float, ...]]:
    """Read a label map with an nnU-Net reader class.

    Returns:
        ``(labels, spacing)``: an integer array of shape ``spatial`` (nnU-Net's leading channel axis
        removed) and the spacing per array axis in mm, in the same axis order.
    """
    seg, properties = reader_class().read_seg(str(path))
    if seg.shape[0] != 1:
        raise ValueError(
            f"{path}: expected a single-channel segmentation, the reader returned shape {seg.shape}."
        )
    labels = np.rint(seg[0]).astype(np.int32)
    spacing = tuple(float(s) for s in properties["spacing"])
    if len(spacing) != labels.ndim:
        raise ValueError(
            f"{path}: the reader returned {len(spacing)} spacing values {spacing} for an array of "
            f"{labels.ndim} axes {labels.shape}."
        )
    return labels, spacing
