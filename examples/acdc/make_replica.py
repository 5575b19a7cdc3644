"""Write a tiny synthetic replica of the ACDC download layout, to dry-run the kit without the real data.

Each patient folder holds ``Info.cfg`` (``ED: k``, ``ES: k``, ``Group``, ...), a 4D cine file
``patientXXX_4d.nii.gz`` and the ED and ES frames ``patientXXX_frameYY.nii.gz``; training patients (and, with
``test_labels``, test patients, as in the current ACDC release) also get ``patientXXX_frameYY_gt.nii.gz`` with
labels 0 background, 1 RV, 2 MYO, 3 LV. The spacing is anisotropic like ACDC's short-axis stacks
(1.5625 × 1.40625 mm in plane, 10 mm between slices).

``varied`` makes the replica as awkward as the real download: ED frames other than frame 01, ES frames above 9,
in-plane spacings between 1.25 and 1.75 mm, 5 or 10 mm between slices, and tilted axes (a direction matrix that
is not the identity, and a non-zero origin).

Usage::

    python examples/acdc/make_replica.py /tmp/ACDC_replica --train 1 2 3 4 --test 101 102 --varied --test-labels
"""

from __future__ import annotations

import argparse
import math
import sys
from pathlib import Path

import numpy as np

SPACING_XYZ = (1.5625, 1.40625, 10.0)


def _write(path: Path, array: np.ndarray, spacing_xyz=SPACING_XYZ, direction=None, origin=None) -> None:
    import SimpleITK as sitk  # noqa: N813

    image = sitk.GetImageFromArray(array)
    if array.ndim == 3:
        image.SetSpacing(spacing_xyz)
        if direction is not None:
            image.SetDirection(direction)
        if origin is not None:
            image.SetOrigin(origin)
    else:
        image.SetSpacing((*spacing_xyz, 1.0))
    sitk.WriteImage(image, str(path))


def es_frame(patient_id: int, varied: bool = False) -> int:
    """The ES frame number given to a patient of the replica (5 to 8; 10 to 13 when ``varied``)."""
    return (10 if varied else 5) + patient_id % 4


def ed_frame(patient_id: int, varied: bool = False) -> int:
    """The ED frame number given to a patient of the replica (1; 1 to 3 when ``varied``)."""
    return 1 + patient_id % 3 if varied else 1


def patient_geometry(patient_id: int, varied: bool = False) -> tuple[tuple, tuple | None, tuple | None]:
    """``(spacing_xyz, direction, origin)`` of a patient's frames (direction/origin None: ITK defaults)."""
    if not varied:
        return SPACING_XYZ, None, None
    in_plane = 1.25 + 0.125 * (patient_id % 5)
    spacing = (in_plane, in_plane, 5.0 if patient_id % 2 else 10.0)
    angle = math.radians(10 + 5 * (patient_id % 3))  # rotation about the x axis: tilted short-axis slices
    c, s = math.cos(angle), math.sin(angle)
    direction = (1.0, 0.0, 0.0, 0.0, c, -s, 0.0, s, c)
    origin = (-100.0 + patient_id, 50.0, -20.0 * (patient_id % 3))
    return spacing, direction, origin


def _labels(shape_zyx: tuple[int, int, int]) -> np.ndarray:
    z, y, x = shape_zyx
    labels = np.zeros(shape_zyx, np.uint8)
    labels[1:z - 1, 2:y // 2, 2:x // 2] = 1
    labels[1:z - 1, y // 2:y - 2, x // 2:x - 2] = 2
    labels[1:z - 1, y // 2 + 1:y - 3, x // 2 + 1:x - 3] = 3
    return labels


def make_acdc_replica(
    root: Path,
    train_ids=(1, 2, 3, 4),
    test_ids=(101, 102),
    nested_testing: bool = False,
    shape_zyx: tuple[int, int, int] = (4, 10, 12),
    n_frames: int = 12,
    seed: int = 0,
    varied: bool = False,
    test_labels: bool = False,
) -> Path:
    """Write ``root/training/patientXXX`` and ``root/testing/patientXXX`` folders; return ``root``.

    ``nested_testing`` puts the test patients under ``testing/testing/`` as some archives unpack;
    ``test_labels`` writes ``_gt`` files for the test patients too; ``varied`` is described in the module docstring.
    """
    root = Path(root)
    rng = np.random.default_rng(seed)
    n_frames = max(n_frames, 14) if varied else n_frames
    z, y, x = shape_zyx
    for subset, ids in (("training", train_ids), ("testing", test_ids)):
        base = root / subset / subset if (subset == "testing" and nested_testing) else root / subset
        for pid in ids:
            patient = f"patient{pid:03d}"
            folder = base / patient
            folder.mkdir(parents=True)
            ed, es = ed_frame(pid, varied), es_frame(pid, varied)
            spacing, direction, origin = patient_geometry(pid, varied)
            (folder / "Info.cfg").write_text(f"ED: {ed}\nES: {es}\nGroup: DCM\nHeight: 180.0\nNbFrame: {n_frames}\n")
            cine = rng.integers(0, 200, size=(n_frames, z, y, x)).astype(np.int16)
            _write(folder / f"{patient}_4d.nii.gz", cine, spacing)
            for frame in (ed, es):
                _write(folder / f"{patient}_frame{frame:02d}.nii.gz", cine[frame - 1], spacing, direction, origin)
                if subset == "training" or test_labels:
                    _write(folder / f"{patient}_frame{frame:02d}_gt.nii.gz", _labels(shape_zyx), spacing, direction,
                           origin)
    return root


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Write a tiny synthetic ACDC-like download.")
    parser.add_argument("root", type=Path, help="folder to create (must not exist)")
    parser.add_argument("--train", type=int, nargs="+", default=[1, 2, 3, 4], help="training patient ids")
    parser.add_argument("--test", type=int, nargs="+", default=[101, 102], help="test patient ids")
    parser.add_argument("--shape", type=int, nargs=3, default=[4, 10, 12], metavar=("Z", "Y", "X"),
                        help="voxels per frame in array order (default: 4 10 12)")
    parser.add_argument("--varied", action="store_true",
                        help="ED frames other than 01, ES frames above 9, varied spacings, tilted axes")
    parser.add_argument("--test-labels", action="store_true", help="write _gt labels for the test patients too")
    args = parser.parse_args(argv)
    if args.root.exists():
        print(f"make_replica: error: {args.root} exists; choose a new folder.", file=sys.stderr)
        return 2
    make_acdc_replica(args.root, args.train, args.test, shape_zyx=tuple(args.shape), varied=args.varied,
                      test_labels=args.test_labels)
    print(f"wrote {args.root}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
