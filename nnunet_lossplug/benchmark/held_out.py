"""The dataset's folders a benchmark reads, and which cases it scores: the held-out test cases, or the fold's
validation cases when the dataset has none.

With ``imagesTs`` and ``labelsTs`` in the raw dataset folder every run predicts those images with
``nnUNetv2_predict``; the post-processing is chosen on the fold's validation cases, which are not scored. Without
them (or without their labels) the scored cases are the fold's validation cases that nnU-Net's ``nnUNetv2_train``
predicts at its end (``fold_0/validation``), scored against nnU-Net's ``gt_segmentations``; the post-processing is
then chosen on the same cases it is scored on, and the report says so.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class DatasetFolders:
    """nnU-Net's folders of one planned dataset."""

    name: str
    raw: Path
    preprocessed: Path

    @property
    def plans(self) -> Path:
        return self.preprocessed / "nnUNetPlans.json"

    @property
    def dataset_json(self) -> Path:
        return self.preprocessed / "dataset.json"

    @property
    def ground_truth(self) -> Path:
        """nnU-Net's copy of the training labels (what its validation and post-processing compare with)."""
        return self.preprocessed / "gt_segmentations"


def dataset_folders(dataset: str, configuration: str, environ: dict[str, str]) -> DatasetFolders:
    """Find ``dataset`` (name or id) under ``environ``'s nnU-Net folders, planned for ``configuration``.

    Raises:
        ValueError: one line naming what is missing and the command that makes it.
    """
    raw_base, preprocessed_base = environ.get("nnUNet_raw"), environ.get("nnUNet_preprocessed")
    if not raw_base or not preprocessed_base:
        raise ValueError("nnUNet_raw and nnUNet_preprocessed are not set; set them as for nnUNetv2_train "
                         "(nnunet-lossplug env shows them).")
    name = _dataset_name(dataset, Path(preprocessed_base), Path(raw_base))
    folders = DatasetFolders(name, Path(raw_base) / name, Path(preprocessed_base) / name)
    if not folders.plans.is_file():
        raise ValueError(f"{folders.plans} does not exist: plan the dataset first (nnUNetv2_plan_and_preprocess "
                         f"-d {dataset} -c {configuration}).")
    plans = json.loads(folders.plans.read_text())
    if configuration not in plans.get("configurations", {}):
        raise ValueError(f"-c {configuration}: the plans of {name} have no such configuration (they have "
                         f"{', '.join(plans.get('configurations', {}))}).")
    return folders


def _dataset_name(dataset: str, preprocessed_base: Path, raw_base: Path) -> str:
    if dataset.startswith("Dataset"):
        return dataset
    if not dataset.isdigit():
        raise ValueError(f"-d {dataset}: give a dataset id (e.g. 501) or name (Dataset501_Organ).")
    prefix = f"Dataset{int(dataset):03d}_"
    found = sorted({p.name for base in (preprocessed_base, raw_base) if base.is_dir()
                    for p in base.iterdir() if p.name.startswith(prefix)})
    if len(found) != 1:
        raise ValueError(f"-d {dataset}: {'no' if not found else len(found)} datasets named {prefix}* in "
                         f"{preprocessed_base} or {raw_base}" + (f" ({', '.join(found)})" if found else "")
                         + "; give the dataset's full name.")
    return found[0]


@dataclass(frozen=True)
class HeldOut:
    """The cases a benchmark scores, and in plain words which they are."""

    kind: str  # "test" (imagesTs/labelsTs) or "validation" (the fold's validation cases)
    images: Path | None  # imagesTs, or None for the validation cases (nnUNetv2_train predicts them)
    labels: Path
    description: str

    @property
    def is_validation(self) -> bool:
        return self.kind == "validation"


def held_out_cases(folders: DatasetFolders, fold: int) -> HeldOut:
    """``imagesTs`` + ``labelsTs`` when both hold files, else the fold's validation cases."""
    file_ending = json.loads(folders.dataset_json.read_text()).get("file_ending", ".nii.gz")
    images, labels = folders.raw / "imagesTs", folders.raw / "labelsTs"
    image_files = sorted(images.glob(f"*{file_ending}")) if images.is_dir() else []
    label_files = sorted(labels.glob(f"*{file_ending}")) if labels.is_dir() else []
    if image_files and label_files:
        return HeldOut("test", images, labels,
                       f"the {len(label_files)} held-out test cases of {folders.name} (imagesTs, labelsTs), never "
                       f"seen in training; post-processing chosen on fold {fold}'s validation cases")
    why = "has no labelsTs" if image_files else "has no imagesTs"
    return HeldOut("validation", None, folders.ground_truth,
                   f"fold {fold}'s validation cases ({folders.raw.name} {why}): not trained on, but the "
                   f"post-processing was chosen on these same cases, so its row is optimistic; put held-out cases "
                   f"in imagesTs and labelsTs for an unbiased answer")


def file_digest(path: Path) -> str:
    """SHA-256 of a file ('' when it does not exist)."""
    return hashlib.sha256(path.read_bytes()).hexdigest() if path.is_file() else ""


def folder_digest(folder: Path | None) -> str:
    """SHA-256 over the names and sizes of a folder's files (cheap: the held-out set's identity)."""
    if folder is None or not folder.is_dir():
        return ""
    listing = "\n".join(f"{p.name} {p.stat().st_size}" for p in sorted(folder.iterdir()) if p.is_file())
    return hashlib.sha256(listing.encode()).hexdigest()
