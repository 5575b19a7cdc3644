"""Export nnU-Net test-set predictions into the ACDC challenge's submission layout.

nnU-Net writes one file per case, ``patient101_frame01.nii.gz``; the ACDC evaluation platform expects one
file per patient and phase, ``patient101_ED.nii.gz`` and ``patient101_ES.nii.gz``, in the geometry of the
original frame, with ACDC's labels (0 background, 1 RV, 2 MYO, 3 LV — the labels of our dataset.json). The
phase of each frame comes from ``acdc_phases.json`` (written by ``convert_acdc.py``) or from the
``Info.cfg`` files of the ACDC download (``--acdc-root``).

Predictions are copied byte for byte (nnU-Net exports them in the original image geometry). With
``--acdc-root`` each prediction's size and spacing are also checked against the original frame, and every
patient must have both phases (``--allow-incomplete`` relaxes that). ``--zip`` packs the folder for upload.

Usage::

    python examples/acdc/export_submission.py PRED_FOLDER -o SUBMISSION_FOLDER \\
        --phases $nnUNet_raw/Dataset028_ACDC/acdc_phases.json --zip
"""

from __future__ import annotations

import argparse
import json
import re
import shutil
import sys
from pathlib import Path

CASE_PATTERN = re.compile(r"^(patient\d{3})_frame(\d{2})\.nii\.gz$")


def phases_from_acdc_root(acdc_root: Path) -> dict[str, dict]:
    """``{case_id: {"patient", "phase", "frame"}}`` from the ``Info.cfg`` files of an ACDC download."""
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    from convert_acdc import collect_frames

    frames = collect_frames(acdc_root / "testing", "testing", require_labels=False)
    frames += collect_frames(acdc_root / "training", "training", require_labels=False)
    return {f.case_id: {"patient": f.patient, "phase": f.phase, "frame": f.frame, "image": str(f.image)}
            for f in frames}


def submission_name(patient: str, phase: str) -> str:
    """ACDC's submission file name, ``patientXXX_ED.nii.gz`` / ``patientXXX_ES.nii.gz``."""
    return f"{patient}_{phase}.nii.gz"


def plan_export(pred_folder: Path, phases: dict[str, dict], allow_incomplete: bool = False) -> dict[Path, str]:
    """Map each prediction file to its submission file name; check every patient has ED and ES.

    Raises:
        ValueError: a prediction whose frame is neither the patient's ED nor ES frame, or (unless
            ``allow_incomplete``) a patient with only one phase.
    """
    plan: dict[Path, str] = {}
    seen: dict[str, set[str]] = {}
    files = sorted(p for p in Path(pred_folder).iterdir() if CASE_PATTERN.match(p.name))
    if not files:
        raise FileNotFoundError(f"No predictions named patientXXX_frameYY.nii.gz in {pred_folder}.")
    for path in files:
        case_id = path.name[: -len(".nii.gz")]
        if case_id not in phases:
            raise ValueError(
                f"{path.name}: frame not listed as an ED or ES frame in the phase table; only the ED and ES "
                "frames of each patient are submitted (check --phases / --acdc-root)."
            )
        entry = phases[case_id]
        plan[path] = submission_name(entry["patient"], entry["phase"])
        seen.setdefault(entry["patient"], set()).add(entry["phase"])
    incomplete = sorted(p for p, s in seen.items() if s != {"ED", "ES"})
    if incomplete and not allow_incomplete:
        shown = ", ".join(f"{p} (has {sorted(seen[p])})" for p in incomplete[:10])
        raise ValueError(
            f"{len(incomplete)} patients lack the ED or ES prediction: {shown}. Predict both frames of every "
            "patient, or pass --allow-incomplete."
        )
    return plan


def check_geometry(prediction: Path, original: Path) -> None:
    """Raise if the prediction's size or spacing differs from the original frame's (headers only)."""
    import SimpleITK as sitk  # noqa: N813

    def header(path: Path):
        reader = sitk.ImageFileReader()
        reader.SetFileName(str(path))
        reader.ReadImageInformation()
        return reader.GetSize(), reader.GetSpacing()

    (size_p, spacing_p), (size_o, spacing_o) = header(prediction), header(original)
    if size_p != size_o or any(abs(a - b) > 1e-4 * max(abs(a), 1.0) for a, b in zip(spacing_p, spacing_o, strict=True)):
        raise ValueError(
            f"{prediction.name} has size {size_p} and spacing {spacing_p}, but the original frame {original} has "
            f"{size_o} and {spacing_o}: export predictions in the original geometry (nnUNetv2_predict does)."
        )


def export_submission(
    pred_folder: Path,
    out_folder: Path,
    phases: dict[str, dict],
    allow_incomplete: bool = False,
    make_zip: bool = False,
) -> list[Path]:
    """Copy predictions to ``out_folder`` under ACDC's names; return the written files (and the zip)."""
    plan = plan_export(pred_folder, phases, allow_incomplete)
    out_folder = Path(out_folder)
    out_folder.mkdir(parents=True, exist_ok=True)
    written = []
    for source, name in plan.items():
        original = phases[source.name[: -len(".nii.gz")]].get("image")
        if original:
            check_geometry(source, Path(original))
        target = out_folder / name
        shutil.copyfile(source, target)
        written.append(target)
    if make_zip:
        archive = shutil.make_archive(str(out_folder), "zip", root_dir=out_folder)
        written.append(Path(archive))
    return written


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="nnU-Net predictions -> ACDC submission (patientXXX_ED/ES).")
    parser.add_argument("pred_folder", type=Path, metavar="PRED_FOLDER", help="nnUNetv2_predict output folder")
    parser.add_argument("-o", "--out", type=Path, required=True, help="submission folder to write")
    parser.add_argument("--phases", type=Path, default=None, help="acdc_phases.json written by convert_acdc.py")
    parser.add_argument("--acdc-root", type=Path, default=None,
                        help="ACDC download (Info.cfg phases; also enables the geometry check)")
    parser.add_argument("--allow-incomplete", action="store_true", help="allow patients with only one phase")
    parser.add_argument("--zip", action="store_true", help="also write OUT.zip for upload")
    args = parser.parse_args(argv)
    if args.phases is None and args.acdc_root is None:
        print("export_submission: error: pass --phases acdc_phases.json or --acdc-root ACDC_ROOT.", file=sys.stderr)
        return 2
    try:
        phases = phases_from_acdc_root(args.acdc_root) if args.acdc_root else {}
        if args.phases is not None:
            for case, entry in json.loads(args.phases.read_text()).items():
                phases.setdefault(case, entry)
        written = export_submission(args.pred_folder, args.out, phases, args.allow_incomplete, args.zip)
    except (FileNotFoundError, ValueError) as error:
        print(f"export_submission: error: {error}", file=sys.stderr)
        return 2
    print(f"wrote {len(written)} files to {args.out}" + (f" and {written[-1]}" if args.zip else ""))
    return 0


if __name__ == "__main__":
    sys.exit(main())
