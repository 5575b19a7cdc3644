"""Reading segmentations and their spacing with nnU-Net's own reader selection; pairing GT and predictions.

This is the evaluation package's only use of ``nnunetv2``: the reader classes of
``nnunetv2.imageio`` (chosen by ``determine_reader_writer_from_dataset_json`` when a dataset.json is
given, else ``determine_reader_writer_from_file_ending``), so every file format nnU-Net reads can be
evaluated. ``read_seg`` returns an array of shape ``(1, *spatial)`` and ``properties['spacing']`` **in the
array's axis order** — for NIfTI via SimpleITK that is ``(z, y, x)``, the reverse of the header's
``(x, y, z)`` — so spacing and array axes always match. For a 2D file nnU-Net prepends an axis of length 1
with a placeholder spacing (999 × the largest in-plane spacing); that axis carries no distance and the
surface-distance code drops it.

Checks made on every case (a refusal names the case, the file and the fix; nothing is ever rounded,
resampled or realigned here):

- a label map holds integer labels: nnU-Net's readers return float32 whatever the file stores, so the check
  is on the values, not the data type — a float file whose values are all integers is a valid label map,
  one value such as 0.7 (a probability, a rescaled label) refuses the file;
- a prediction lies in its ground truth's geometry: same shape, spacing within 0.1 % (relative), origin within
  1 % of the smallest voxel size per axis, direction cosines within 0.001, for readers that report origin and
  direction (SimpleITK: ``sitk_stuff``; nibabel: the affine); other formats (PNG, TIFF) carry no origin.
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

SPACING_RTOL = 1e-3
ORIGIN_TOLERANCE_VOXELS = 0.01
DIRECTION_ATOL = 1e-3


@dataclass(frozen=True)
class Segmentation:
    """A label map as read by nnU-Net, with the geometry its reader reports.

    ``labels``: integer array (``spatial`` shape); ``spacing``: mm per array axis, in array order;
    ``origin`` (mm) and ``direction`` (cosines, flattened): in the file's own convention, ``None`` for
    formats without them.
    """

    labels: np.ndarray
    spacing: tuple[float, ...]
    origin: tuple[float, ...] | None = None
    direction: tuple[float, ...] | None = None


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


#: endings under which ITK's NIfTI/Analyze reader looks for a file: asked for ``x.nii.gz`` it opens ``x.nii`` when
#: both exist (and the reverse), in any letter case
ITK_SIBLING_ENDINGS: tuple[str, ...] = (".nii", ".nii.gz", ".hdr", ".img", ".hdr.gz", ".img.gz")


def list_cases(folder: str | Path, file_ending: str) -> dict[str, Path]:
    """Map case identifier (file name without ``file_ending``) -> path, for the files of ``folder``.

    Raises:
        FileNotFoundError: ``folder`` is not a directory.
        ValueError: a case name has more than one readable file (``x.nii`` beside ``x.nii.gz``, or
            ``x.NII.GZ`` beside ``x.nii.gz``): a reader may open either one, so the case's score would
            depend on which; both files are named.
    """
    folder = Path(folder)
    if not folder.is_dir():
        raise FileNotFoundError(f"Folder {folder} does not exist or is not a directory.")
    endings = sorted({*_known_file_endings(), *ITK_SIBLING_ENDINGS, file_ending.lower()}, key=len, reverse=True)
    files_by_stem: dict[str, list[Path]] = {}
    cases: dict[str, Path] = {}
    for path in sorted(folder.iterdir()):
        if not path.is_file():
            continue
        ending = _ending_of(path.name, endings)
        if ending is not None:
            files_by_stem.setdefault(path.name[: -len(ending)], []).append(path)
        if path.name.lower().endswith(file_ending.lower()):
            cases[path.name[: -len(file_ending)]] = path
    for case in cases:
        files = files_by_stem.get(case, [])
        if len(files) > 1:
            raise ValueError(
                f"case {case}: {folder} holds {len(files)} files for one case name: "
                f"{' and '.join(str(f) for f in files)}; a reader may open either one (ITK opens {case}.nii "
                f"when asked for {case}.nii.gz), so the score would not say which was evaluated. Keep one file "
                "per case name in the folder (move the other away)."
            )
    return cases


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


def _origin_and_direction(properties: dict) -> tuple[tuple[float, ...] | None, tuple[float, ...] | None]:
    if "sitk_stuff" in properties:
        stuff = properties["sitk_stuff"]
        return tuple(float(v) for v in stuff["origin"]), tuple(float(v) for v in stuff["direction"])
    if "nibabel_stuff" in properties:
        affine = np.asarray(properties["nibabel_stuff"]["original_affine"], dtype=float)
        axes = affine[:3, :3] / np.linalg.norm(affine[:3, :3], axis=0, keepdims=True)
        return tuple(float(v) for v in affine[:3, 3]), tuple(float(v) for v in axes.ravel())
    return None, None


def read_segmentation(path: str | Path, reader_class, role: str = "segmentation") -> Segmentation:
    """Read a label map with an nnU-Net reader class.

    Args:
        path: the file.
        reader_class: an nnU-Net reader/writer class (:func:`select_reader_class`).
        role: what the file is (``"prediction"``, ``"ground truth"``), for error messages.

    Returns:
        A :class:`Segmentation`: integer labels of shape ``spatial`` (nnU-Net's leading channel axis removed),
        the spacing per array axis in mm in the same axis order, origin and direction where the format has them.

    Raises:
        ValueError: the file has several channels, holds a non-integer or non-finite value, or its spacing
            does not match its axes.
    """
    seg, properties = reader_class().read_seg(str(path))
    if seg.shape[0] != 1:
        raise ValueError(
            f"{path}: expected a single-channel segmentation, the reader returned shape {seg.shape}."
        )
    values = seg[0]
    rounded = np.rint(values)
    bad = ~np.isfinite(values) | (values != rounded)
    if bad.any():
        raise ValueError(
            f"{role} {path}: {role}s must hold integer labels, but {int(bad.sum())} voxels hold non-integer "
            f"values such as {float(values[bad][0]):g}. Write label maps (nnUNetv2_predict's output, or the "
            "argmax of probabilities), not probabilities or rescaled labels."
        )
    labels = rounded.astype(np.int32)
    spacing = tuple(float(s) for s in properties["spacing"])
    if len(spacing) != labels.ndim:
        raise ValueError(
            f"{path}: the reader returned {len(spacing)} spacing values {spacing} for an array of "
            f"{labels.ndim} axes {labels.shape}."
        )
    return Segmentation(labels, spacing, *_origin_and_direction(properties))


def _rounded(values: Sequence[float]) -> tuple[float, ...]:
    return tuple(round(v, 4) for v in values)


def check_same_geometry(case_id: str, gt: Segmentation, gt_path: Path, pred: Segmentation, pred_path: Path) -> None:
    """Refuse a prediction that is not in its ground truth's geometry (tolerances: module docstring).

    A prediction with another shape, spacing, origin or direction would be compared voxel by voxel with
    structures elsewhere in space; evaluating it in physical space would need a resampling the user did not
    ask for, so it is refused with the values and the tolerance.
    """
    fix = "write the prediction in the ground truth's geometry (nnUNetv2_predict does); nothing is realigned here"
    if pred.labels.shape != gt.labels.shape:
        raise ValueError(
            f"case {case_id}: prediction {pred_path} has shape {pred.labels.shape} but ground truth {gt_path} "
            f"has {gt.labels.shape}; {fix}."
        )
    if not np.allclose(pred.spacing, gt.spacing, rtol=SPACING_RTOL, atol=1e-6):
        raise ValueError(
            f"case {case_id}: prediction spacing {pred.spacing} differs from ground-truth spacing {gt.spacing} "
            f"(tolerance {SPACING_RTOL:.1%} relative); {fix}."
        )
    if gt.origin is None or pred.origin is None or len(gt.origin) != len(pred.origin):
        return
    tolerance = ORIGIN_TOLERANCE_VOXELS * min(gt.spacing)
    if not np.allclose(pred.origin, gt.origin, rtol=0.0, atol=tolerance):
        raise ValueError(
            f"case {case_id}: prediction {pred_path} has origin {_rounded(pred.origin)} mm but ground truth "
            f"{gt_path} has {_rounded(gt.origin)} mm (tolerance {tolerance:.4g} mm per axis, "
            f"{ORIGIN_TOLERANCE_VOXELS:.0%} of the smallest voxel size); {fix}."
        )
    if gt.direction is not None and pred.direction is not None and (
            len(gt.direction) != len(pred.direction)
            or not np.allclose(pred.direction, gt.direction, rtol=0.0, atol=DIRECTION_ATOL)):
        raise ValueError(
            f"case {case_id}: prediction {pred_path} has direction {_rounded(pred.direction)} but ground truth "
            f"{gt_path} has {_rounded(gt.direction)} (tolerance {DIRECTION_ATOL:g} per direction cosine); {fix}."
        )


def check_declared_labels(case_id: str, labels: np.ndarray, path: Path, role: str, declared: Sequence[int],
                          dataset_json: str | Path) -> None:
    """Refuse a label map holding a label that ``dataset_json`` does not declare (it would count as background)."""
    undeclared = np.setdiff1d(np.unique(labels), np.asarray(sorted(declared)))
    if undeclared.size:
        counts = ", ".join(f"{int(v)} ({int((labels == v).sum())} voxels)" for v in undeclared[:5])
        raise ValueError(
            f"case {case_id}: {role} {path} holds label {counts} not declared in {dataset_json} (declared: "
            f"{', '.join(str(v) for v in sorted(declared))}); it would count as background for every class. "
            "Check that the files belong to this dataset, or evaluate without --dataset-json to score every label."
        )
