"""Export nnU-Net test-set predictions into the ACDC challenge's submission layout, refusing any wrong file.

nnU-Net writes one file per case, ``patient101_frame01.nii.gz``; the ACDC evaluation platform expects one
file per patient and phase, ``patient101_ED.nii.gz`` and ``patient101_ES.nii.gz``, in the geometry of the
original frame, with ACDC's labels (0 background, 1 RV, 2 MYO, 3 LV — the labels of our dataset.json). The
phase of each frame comes from the ``Info.cfg`` files of the ACDC download (``--acdc-root``, default: the
``ACDC_ROOT`` environment variable) or from ``acdc_phases.json`` written by ``convert_acdc.py`` (``--phases``).

Checks, each failing with one line that names the problem (nothing is written then):

- completeness: every test patient of the phase table has its ED and its ES prediction, and every prediction
  is the ED or ES frame of a test patient (``--allow-incomplete`` relaxes the first, for debugging only);
- geometry: size, spacing, origin and direction equal the original frame's — the frame of the ACDC download,
  or its byte copy in ``imagesTs`` beside ``acdc_phases.json`` (``--skip-geometry-check`` if neither exists);
- label values within {0, 1, 2, 3}.

Predictions are copied byte for byte. The submission folder (and ``--zip``'s ``OUT.zip``) is written to a
temporary name and renamed when complete, replacing the previous export, so no file of an earlier export
survives and a failed export leaves no partial folder. A folder holding anything but submission files is not
replaced (refused).

Usage::

    python examples/acdc/export_submission.py PRED_FOLDER -o SUBMISSION_FOLDER --acdc-root $ACDC_ROOT \\
        --phases $nnUNet_raw/Dataset028_ACDC/acdc_phases.json --zip
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import sys
import tempfile
from pathlib import Path

CASE_PATTERN = re.compile(r"^(patient\d{3})_frame(\d{2})\.nii\.gz$")
SUBMISSION_PATTERN = re.compile(r"^patient\d{3}_E[DS]\.nii\.gz$")
ACDC_LABELS = frozenset({0, 1, 2, 3})


def _convert_module():
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    import convert_acdc

    return convert_acdc


def phases_from_acdc_root(acdc_root: Path) -> dict[str, dict]:
    """``{case_id: {"patient", "phase", "frame", "subset", "image"}}`` from the ``Info.cfg`` files of a download."""
    convert = _convert_module()
    frames = convert.collect_frames(acdc_root / "testing", "testing", require_labels=False)
    frames += convert.collect_frames(acdc_root / "training", "training", require_labels=False)
    return {f.case_id: {"patient": f.patient, "phase": f.phase, "frame": f.frame, "subset": f.subset,
                        "image": str(f.image)} for f in frames}


def phases_from_json(path: Path) -> dict[str, dict]:
    """The phase table of ``convert_acdc.py``, with ``image`` set to the ``imagesTs`` copy beside it if present."""
    phases = json.loads(Path(path).read_text())
    for case, entry in phases.items():
        copy = Path(path).parent / "imagesTs" / f"{case}_0000.nii.gz"
        if "image" not in entry and copy.is_file():
            entry["image"] = str(copy)
    return phases


def submission_name(patient: str, phase: str) -> str:
    """ACDC's submission file name, ``patientXXX_ED.nii.gz`` / ``patientXXX_ES.nii.gz``."""
    return f"{patient}_{phase}.nii.gz"


def expected_test_frames(phases: dict[str, dict]) -> dict[str, dict]:
    """The phase-table entries of the test set (all entries if the table does not say ``subset``)."""
    if not any("subset" in e for e in phases.values()):
        return phases
    return {case: e for case, e in phases.items() if e.get("subset") == "testing"}


def plan_export(pred_folder: Path, phases: dict[str, dict], allow_incomplete: bool = False) -> dict[Path, str]:
    """Map each prediction file to its submission file name; check that the test set is complete.

    Raises:
        FileNotFoundError: no prediction file in ``pred_folder``.
        ValueError: a prediction that is not the ED or ES frame of a test patient, or (unless
            ``allow_incomplete``) a test patient or phase without prediction.
    """
    pred_folder = Path(pred_folder)
    if not pred_folder.is_dir():
        raise FileNotFoundError(f"{pred_folder} does not exist: pass the nnUNetv2_predict output folder.")
    expected = expected_test_frames(phases)
    if not expected:
        raise ValueError("the phase table lists no test patient: convert the download with its 'testing' folder.")
    files = sorted(p for p in pred_folder.iterdir() if CASE_PATTERN.match(p.name))
    if not files:
        raise FileNotFoundError(f"No predictions named patientXXX_frameYY.nii.gz in {pred_folder}.")
    plan: dict[Path, str] = {}
    for path in files:
        case_id = path.name[: -len(".nii.gz")]
        if case_id not in expected:
            where = "a training frame" if case_id in phases else "not an ED or ES frame in the phase table"
            raise ValueError(
                f"{path.name}: {where}; only the ED and ES frames of the test patients are submitted (predict "
                "imagesTs into an empty folder; check --phases / --acdc-root)."
            )
        entry = expected[case_id]
        plan[path] = submission_name(entry["patient"], entry["phase"])
    missing = sorted(submission_name(e["patient"], e["phase"]) for case, e in expected.items()
                     if submission_name(e["patient"], e["phase"]) not in plan.values())
    if missing and not allow_incomplete:
        shown = ", ".join(missing[:10]) + (f" and {len(missing) - 10} more" if len(missing) > 10 else "")
        raise ValueError(
            f"{len(missing)} of {len(expected)} test frames have no prediction ({shown}): predict every test "
            "frame (imagesTs) before exporting."
        )
    return plan


def check_prediction(prediction: Path, original: Path | None) -> None:
    """Raise if the prediction's geometry differs from the original frame's or a label is outside {0..3}."""
    import numpy as np
    import SimpleITK as sitk  # noqa: N813

    convert = _convert_module()
    if original is not None:
        mine, theirs = convert.read_geometry(prediction), convert.read_geometry(original)
        differences = convert.geometry_differences(mine, theirs)
        if differences:
            shown = "; ".join(f"{key} {mine[key]} vs {theirs[key]}" for key in differences)
            raise ValueError(
                f"{prediction.name} differs from the original frame {original} in {', '.join(differences)} "
                f"({shown}): export predictions in the original geometry (nnUNetv2_predict does)."
            )
    values = set(np.unique(sitk.GetArrayFromImage(sitk.ReadImage(str(prediction)))).tolist())
    if not values <= ACDC_LABELS:
        raise ValueError(
            f"{prediction.name} holds label values {sorted(values - ACDC_LABELS)} outside ACDC's {{0, 1, 2, 3}} "
            "(0 background, 1 RV, 2 MYO, 3 LV): predict with the model trained on the converted dataset."
        )


def _original(entry: dict, geometry_check: bool) -> Path | None:
    image = entry.get("image")
    if image and Path(image).is_file():
        return Path(image)
    if geometry_check:
        raise FileNotFoundError(
            f"the original frame of {entry['patient']} {entry['phase']} is not reachable ({image or 'no path'}): "
            "pass --acdc-root (or set ACDC_ROOT), or --skip-geometry-check."
        )
    return None


def _check_replaceable(target: Path) -> None:
    """Refuse to replace ``target`` if it holds anything but submission files (an earlier export)."""
    if not target.exists():
        return
    foreign = [p.name for p in target.iterdir() if not SUBMISSION_PATTERN.match(p.name)] if target.is_dir() \
        else [target.name]
    if foreign:
        raise ValueError(
            f"{target} holds files that are not submission files ({', '.join(sorted(foreign)[:5])}): choose an "
            "empty or new output folder."
        )


def _replace_folder(staging: Path, target: Path) -> None:
    """Put ``staging`` at ``target``, removing a previous export there (checked by :func:`_check_replaceable`)."""
    if target.exists():
        old = target.with_name(f".{target.name}.old")
        shutil.rmtree(old, ignore_errors=True)
        target.rename(old)
        staging.rename(target)
        shutil.rmtree(old)
    else:
        staging.rename(target)


def export_submission(
    pred_folder: Path,
    out_folder: Path,
    phases: dict[str, dict],
    allow_incomplete: bool = False,
    make_zip: bool = False,
    geometry_check: bool = True,
) -> list[Path]:
    """Check and copy the predictions to ``out_folder`` under ACDC's names; return the written files (and zip)."""
    plan = plan_export(pred_folder, phases, allow_incomplete)
    for source in plan:
        check_prediction(source, _original(phases[source.name[: -len(".nii.gz")]], geometry_check))
    out_folder = Path(out_folder).absolute()
    _check_replaceable(out_folder)
    out_folder.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{out_folder.name}.", dir=out_folder.parent))
    umask = os.umask(0)
    os.umask(umask)
    staging.chmod(0o777 & ~umask)  # mkdtemp's folder is private (0700); the submission folder should not be
    partial = None
    try:
        for source, name in plan.items():
            shutil.copyfile(source, staging / name)
        partial = Path(shutil.make_archive(str(staging), "zip", root_dir=staging)) if make_zip else None
        _replace_folder(staging, out_folder)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        if partial is not None:
            partial.unlink(missing_ok=True)
        raise
    archive = None
    if partial is not None:
        archive = out_folder.with_suffix(".zip")
        os.replace(partial, archive)  # atomic: the upload file is either the old or the new complete zip
    written = sorted(out_folder / name for name in plan.values())
    return written + ([archive] if archive else [])


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="nnU-Net predictions -> ACDC submission (patientXXX_ED/ES).")
    parser.add_argument("pred_folder", type=Path, metavar="PRED_FOLDER", help="nnUNetv2_predict output folder")
    parser.add_argument("-o", "--out", type=Path, required=True, help="submission folder to (re)write")
    parser.add_argument("--acdc-root", type=Path, default=os.environ.get("ACDC_ROOT") or None,
                        help="ACDC download: Info.cfg phases and original frames (default: $ACDC_ROOT)")
    parser.add_argument("--phases", type=Path, default=None, help="acdc_phases.json written by convert_acdc.py")
    parser.add_argument("--allow-incomplete", action="store_true", help="allow missing test frames (debugging)")
    parser.add_argument("--skip-geometry-check", action="store_true",
                        help="export although no original frame is reachable (not for a real submission)")
    parser.add_argument("--zip", action="store_true", help="also write OUT.zip for upload")
    args = parser.parse_args(argv)
    if args.phases is None and args.acdc_root is None:
        print("export_submission: error: pass --acdc-root ACDC_ROOT (or set ACDC_ROOT) or --phases "
              "acdc_phases.json.", file=sys.stderr)
        return 2
    try:
        phases = phases_from_acdc_root(args.acdc_root) if args.acdc_root else {}
        if args.phases is not None:
            for case, entry in phases_from_json(args.phases).items():
                phases.setdefault(case, entry)
        written = export_submission(args.pred_folder, args.out, phases, args.allow_incomplete, args.zip,
                                    not args.skip_geometry_check)
    except (FileNotFoundError, ValueError) as error:
        print(f"export_submission: error: {error}", file=sys.stderr)
        return 2
    n_files = len(written) - (1 if args.zip else 0)
    print(f"wrote {n_files} checked files to {args.out}" + (f" and {written[-1]}" if args.zip else ""))
    return 0


if __name__ == "__main__":
    sys.exit(main())
