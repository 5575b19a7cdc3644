"""Convert the official ACDC download into an nnU-Net v2 raw dataset with Valverde & Tohka's (2022) split.

Input layout (the ACDC challenge download; ``testing`` is optional)::

    ACDC_ROOT/training/patient001/Info.cfg            ED: 1 / ES: 12 / Group: DCM / ...
    ACDC_ROOT/training/patient001/patient001_4d.nii.gz
    ACDC_ROOT/training/patient001/patient001_frame01.nii.gz      (+ _gt.nii.gz)
    ACDC_ROOT/training/patient001/patient001_frame12.nii.gz      (+ _gt.nii.gz)
    ACDC_ROOT/testing/patient101/...                              (_gt files in the current release only)

A ``training``/``testing`` folder nested once inside itself (``testing/testing/patient101``), as some
archives unpack, is accepted too.

Output (``OUT/DatasetNNN_ACDC``)::

    imagesTr/patient001_frame01_0000.nii.gz   labelsTr/patient001_frame01.nii.gz    (ED and ES frames)
    imagesTs/patient101_frame01_0000.nii.gz   labelsTs/patient101_frame01.nii.gz    (test set, if present;
                                                                                     labels if the release has them)
    imagesVal/, labelsVal/                    copies of the validation cases (odd patient ids), so that
                                              nnUNetv2_predict and `nnunet-lossplug evaluate` can run on them
    dataset.json                              background 0, RV 1, MYO 2, LV 3; channel "cine MRI"; .nii.gz
    splits_final.json                         fold 0 = the paper's split (below); copy it to
                                              nnUNet_preprocessed/DatasetNNN_ACDC/ (or pass --preprocessed)
    acdc_phases.json                          case -> patient, phase (ED/ES), frame, group: used by
                                              export_submission.py

Split (Valverde & Tohka 2022, Sec. 4 and its ``datasplits/acdc17.py``): patients with an even id (2, 4, ..., 100) train,
odd ids (1, 3, ..., 99) validate; both the ED and the ES frame of a patient go to the same side, giving
100 / 100 3D images. ``--full-training-set`` instead puts all 100 training patients into fold 0's training
set (for the challenge test set, Valverde & Tohka 2022 Table 5); as in nnU-Net's fold ``all``, the validation list then
repeats the training cases, which keeps nnU-Net's fold-0 machinery working (its validation numbers are
then training-set numbers).

Case identifiers follow nnU-Net's own ``Dataset027_ACDC`` conversion (``patientXXX_frameYY``). Files are
copied byte for byte, so the NIfTI headers (spacing, origin, direction) are kept; the header geometry (size,
spacing, origin and direction) of each image and its label is checked to agree.

A download without a ``testing`` folder converts with a warning (no ``imagesTs``: no challenge submission).
With ``--if-missing`` an existing dataset folder is kept when its ``splits_final.json`` is the one this
conversion would write, and refused (naming the fix) when it was converted differently, e.g. without
``--full-training-set``.

Usage::

    python examples/acdc/convert_acdc.py ACDC_ROOT --dataset-id 27 --out $nnUNet_raw
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import sys
from dataclasses import asdict, dataclass
from pathlib import Path

LABELS = {"background": 0, "RV": 1, "MYO": 2, "LV": 3}
PATIENT_PATTERN = re.compile(r"^patient(\d{3})$")


@dataclass(frozen=True)
class AcdcFrame:
    """One annotated (or, for the test set, to-be-segmented) ED or ES frame of a patient."""

    patient: str
    patient_id: int
    phase: str
    frame: int
    image: Path
    label: Path | None
    group: str | None
    subset: str

    @property
    def case_id(self) -> str:
        """nnU-Net case identifier, ``patientXXX_frameYY``."""
        return f"{self.patient}_frame{self.frame:02d}"


def parse_info_cfg(path: Path) -> dict[str, str]:
    """``Info.cfg`` (lines ``Key: value``) as a dictionary of strings."""
    info = {}
    for line in path.read_text().splitlines():
        if ":" in line:
            key, value = line.split(":", 1)
            info[key.strip()] = value.strip()
    return info


def find_patient_dirs(subset_dir: Path) -> list[Path]:
    """``patientXXX`` folders directly in ``subset_dir``, or in a same-named folder nested inside it."""
    if not subset_dir.is_dir():
        return []
    direct = sorted(p for p in subset_dir.iterdir() if p.is_dir() and PATIENT_PATTERN.match(p.name))
    if direct:
        return direct
    nested = subset_dir / subset_dir.name
    if nested.is_dir():
        return sorted(p for p in nested.iterdir() if p.is_dir() and PATIENT_PATTERN.match(p.name))
    return []


def collect_frames(subset_dir: Path, subset: str, require_labels: bool) -> list[AcdcFrame]:
    """The ED and ES frames of every patient of a subset (``training`` or ``testing``)."""
    frames = []
    for patient_dir in find_patient_dirs(subset_dir):
        patient = patient_dir.name
        info_path = patient_dir / "Info.cfg"
        if not info_path.is_file():
            raise FileNotFoundError(f"{info_path} is missing: every ACDC patient folder holds an Info.cfg.")
        info = parse_info_cfg(info_path)
        for phase in ("ED", "ES"):
            if phase not in info:
                raise ValueError(f"{info_path} has no '{phase}:' line (expected e.g. '{phase}: 1').")
            frame = int(info[phase])
            image = patient_dir / f"{patient}_frame{frame:02d}.nii.gz"
            label = patient_dir / f"{patient}_frame{frame:02d}_gt.nii.gz"
            if not image.is_file():
                raise FileNotFoundError(f"{image} is missing ({phase} frame {frame} according to {info_path}).")
            if require_labels and not label.is_file():
                raise FileNotFoundError(f"{label} is missing: training frames need their _gt.nii.gz label.")
            frames.append(
                AcdcFrame(
                    patient=patient,
                    patient_id=int(PATIENT_PATTERN.match(patient).group(1)),
                    phase=phase,
                    frame=frame,
                    image=image,
                    label=label if label.is_file() else None,
                    group=info.get("Group"),
                    subset=subset,
                )
            )
    return frames


def paper_split(frames: list[AcdcFrame]) -> list[dict[str, list[str]]]:
    """nnU-Net splits with fold 0 = even patient ids train, odd ids validate (Valverde & Tohka 2022)."""
    train = sorted(f.case_id for f in frames if f.patient_id % 2 == 0)
    val = sorted(f.case_id for f in frames if f.patient_id % 2 == 1)
    return [{"train": train, "val": val}]


def full_training_split(frames: list[AcdcFrame]) -> list[dict[str, list[str]]]:
    """nnU-Net splits with fold 0 = every training case, validated on itself (like nnU-Net's fold 'all')."""
    cases = sorted(f.case_id for f in frames)
    return [{"train": cases, "val": list(cases)}]


def read_geometry(path: Path) -> dict[str, tuple]:
    """``{"size", "spacing", "origin", "direction"}`` of an image, from its header only."""
    import SimpleITK as sitk  # noqa: N813

    reader = sitk.ImageFileReader()
    reader.SetFileName(str(path))
    reader.ReadImageInformation()
    return {"size": reader.GetSize(), "spacing": reader.GetSpacing(), "origin": reader.GetOrigin(),
            "direction": reader.GetDirection()}


def geometry_differences(first: dict[str, tuple], second: dict[str, tuple]) -> list[str]:
    """Names of the header fields (size, spacing, origin, direction) in which two geometries differ.

    Spacing and origin are compared with a relative tolerance of 1e-4 (mm values of NIfTI's float32 header),
    direction cosines with an absolute one of 1e-4.
    """

    def close(a, b, relative: bool) -> bool:
        return all(abs(x - y) <= 1e-4 * (max(abs(x), 1.0) if relative else 1.0) for x, y in zip(a, b, strict=True))

    differences = []
    if tuple(first["size"]) != tuple(second["size"]):
        differences.append("size")
    for key, relative in (("spacing", True), ("origin", True), ("direction", False)):
        if len(first[key]) != len(second[key]) or not close(first[key], second[key], relative):
            differences.append(key)
    return differences


def check_same_geometry(image: Path, label: Path) -> None:
    """Raise if an image and its label disagree in size, spacing, origin or direction (headers only)."""
    geometry_i, geometry_l = read_geometry(image), read_geometry(label)
    differences = geometry_differences(geometry_i, geometry_l)
    if differences:
        shown = "; ".join(f"{key} {geometry_i[key]} vs {geometry_l[key]}" for key in differences)
        raise ValueError(
            f"{image.name} and {label.name} differ in {', '.join(differences)} ({shown}); the ACDC files look "
            "damaged, re-extract the archive."
        )


def dataset_json(num_training: int) -> dict:
    """nnU-Net v2 dataset.json of the converted dataset."""
    return {
        "name": "ACDC",
        "description": "Automated Cardiac Diagnosis Challenge 2017, ED and ES frames of cine MRI",
        "reference": "Bernard et al., IEEE TMI 37(11) 2018; split of Valverde & Tohka, Pattern Recognition 2022",
        "licence": "see the ACDC challenge terms of use",
        "channel_names": {"0": "cine MRI"},
        "labels": dict(LABELS),
        "numTraining": num_training,
        "file_ending": ".nii.gz",
    }


def check_existing_conversion(folder: Path, splits: list[dict[str, list[str]]]) -> bool:
    """True if ``folder`` already holds this conversion; raise if it holds a different one; False if none.

    A conversion is identified by its ``splits_final.json``: the same ACDC download converted with and without
    ``--full-training-set`` gives different fold-0 training lists.
    """
    if not (folder / "dataset.json").is_file():
        return False
    split_file = folder / "splits_final.json"
    existing = json.loads(split_file.read_text()) if split_file.is_file() else None
    if existing == splits:
        return True
    if existing and len(existing[0].get("train", [])) != len(splits[0]["train"]):
        how = "with" if len(existing[0]["train"]) > len(splits[0]["train"]) else "without"
        what = f"was converted {how} --full-training-set ({len(existing[0]['train'])} training cases in fold 0, " \
               f"this conversion needs {len(splits[0]['train'])})"
    else:
        what = "holds another conversion (its splits_final.json differs from this download's)"
    raise ValueError(
        f"{folder} {what}. Use another dataset id (DATASET_ID=<free id> for prepare.sh, DATASET_ID_FULL for "
        f"table5.sh, --dataset-id here) or delete {folder} and its nnUNet_preprocessed folder to convert again."
    )


def convert_acdc(
    acdc_root: Path,
    out_raw: Path,
    dataset_id: int = 27,
    full_training_set: bool = False,
    preprocessed: Path | None = None,
    dataset_name: str = "ACDC",
    if_missing: bool = False,
) -> Path:
    """Write ``out_raw/DatasetNNN_<dataset_name>`` from ``acdc_root`` (see the module docstring); return it.

    With ``if_missing`` an existing, identical conversion is kept as it is and a different one is refused
    (:func:`check_existing_conversion`).
    """
    acdc_root, out_raw = Path(acdc_root), Path(out_raw)
    training = collect_frames(acdc_root / "training", "training", require_labels=True)
    if not training:
        raise FileNotFoundError(
            f"No patientXXX folders under {acdc_root / 'training'}: pass the folder that holds the ACDC "
            "'training' (and 'testing') folders."
        )
    testing = collect_frames(acdc_root / "testing", "testing", require_labels=False)
    if not 0 < dataset_id < 1000:
        raise ValueError(f"--dataset-id must be between 1 and 999 (nnU-Net's DatasetNNN), got {dataset_id}.")

    folder = out_raw / f"Dataset{dataset_id:03d}_{dataset_name}"
    splits = full_training_split(training) if full_training_set else paper_split(training)
    if if_missing and check_existing_conversion(folder, splits):
        return folder
    names = ("imagesTr", "labelsTr", "imagesTs", "labelsTs", "imagesVal", "labelsVal")
    subfolders = {name: folder / name for name in names}
    for path in subfolders.values():
        path.mkdir(parents=True, exist_ok=True)

    validation = set(paper_split(training)[0]["val"])
    for frame in training:
        check_same_geometry(frame.image, frame.label)
        shutil.copyfile(frame.image, subfolders["imagesTr"] / f"{frame.case_id}_0000.nii.gz")
        shutil.copyfile(frame.label, subfolders["labelsTr"] / f"{frame.case_id}.nii.gz")
        if frame.case_id in validation:
            shutil.copyfile(frame.image, subfolders["imagesVal"] / f"{frame.case_id}_0000.nii.gz")
            shutil.copyfile(frame.label, subfolders["labelsVal"] / f"{frame.case_id}.nii.gz")
    for frame in testing:
        shutil.copyfile(frame.image, subfolders["imagesTs"] / f"{frame.case_id}_0000.nii.gz")
        if frame.label is not None:
            check_same_geometry(frame.image, frame.label)
            shutil.copyfile(frame.label, subfolders["labelsTs"] / f"{frame.case_id}.nii.gz")

    _write_json(folder / "dataset.json", dataset_json(len(training)))
    _write_json(folder / "splits_final.json", splits)
    phases = {
        f.case_id: {k: v for k, v in asdict(f).items() if k in ("patient", "phase", "frame", "group", "subset")}
        for f in training + testing
    }
    _write_json(folder / "acdc_phases.json", phases)
    if preprocessed is not None:
        target = Path(preprocessed) / folder.name
        target.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(folder / "splits_final.json", target / "splits_final.json")
    return folder


def _write_json(path: Path, content) -> None:
    path.write_text(json.dumps(content, indent=2) + "\n")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        description=("Convert the ACDC download into an nnU-Net v2 raw dataset with the even/odd split of "
                     "Valverde & Tohka 2022."),
    )
    parser.add_argument("acdc_root", type=Path, metavar="ACDC_ROOT",
                        help="folder holding ACDC's 'training' and (optionally) 'testing' folders")
    parser.add_argument("--dataset-id", type=int, default=27, help="nnU-Net dataset id (default: 27)")
    parser.add_argument("--out", type=Path, default=None,
                        help="nnU-Net raw folder (default: the nnUNet_raw environment variable)")
    parser.add_argument("--full-training-set", action="store_true",
                        help="fold 0 trains on all 100 training patients (for the challenge test set)")
    parser.add_argument("--preprocessed", type=Path, default=None,
                        help="also copy splits_final.json to PREPROCESSED/DatasetNNN_ACDC/ (nnUNet_preprocessed)")
    parser.add_argument("--name", default="ACDC", help="dataset name after DatasetNNN_ (default: ACDC)")
    parser.add_argument("--if-missing", action="store_true",
                        help="keep an existing identical conversion; refuse one converted differently")
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    out = args.out or (Path(os.environ["nnUNet_raw"]) if os.environ.get("nnUNet_raw") else None)
    if out is None:
        print("convert_acdc: error: pass --out or set nnUNet_raw to the nnU-Net raw folder.", file=sys.stderr)
        return 2
    try:
        folder = convert_acdc(args.acdc_root, out, args.dataset_id, args.full_training_set, args.preprocessed,
                              args.name, args.if_missing)
    except (FileNotFoundError, ValueError) as error:
        print(f"convert_acdc: error: {error}", file=sys.stderr)
        return 2
    split = json.loads((folder / "splits_final.json").read_text())[0]
    print(f"{folder}: {len(split['train'])} training / {len(split['val'])} validation cases in fold 0")
    test_images = len(list((folder / "imagesTs").glob("*.nii.gz")))
    test_labels = len(list((folder / "labelsTs").glob("*.nii.gz")))
    if test_images == 0:
        print(f"convert_acdc: warning: no test patients under {args.acdc_root / 'testing'}: imagesTs is empty, so "
              "no challenge submission can be made (Table 5); add ACDC's 'testing' folder and convert again.",
              file=sys.stderr)
    else:
        print(f"test set: {test_images} frames, {test_labels} with labels (labelsTs)")
    print(f"next: copy {folder / 'splits_final.json'} to $nnUNet_preprocessed/{folder.name}/ before training")
    return 0


if __name__ == "__main__":
    sys.exit(main())
