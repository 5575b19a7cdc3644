"""Write a tiny synthetic replica of the ACDC download layout, to dry-run the kit without the real data.

Each patient folder holds ``Info.cfg`` (``ED: 1``, ``ES: k``, ``Group``, ...), a 4D cine file
``patientXXX_4d.nii.gz`` and the ED and ES frames ``patientXXX_frameYY.nii.gz``; training patients also
get ``patientXXX_frameYY_gt.nii.gz`` with labels 0 background, 1 RV, 2 MYO, 3 LV. The spacing is
anisotropic like ACDC's short-axis stacks (1.5625 × 1.40625 mm in plane, 10 mm between slices).

Usage::

    python examples/acdc/make_replica.py /tmp/ACDC_replica --train 1 2 3 4 --test 101 102
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

SPACING_XYZ = (1.5625, 1.40625, 10.0)


def _write(path: Path, array: np.ndarray) -> None:
    import SimpleITK as sitk  # noqa: N813

    image = sitk.GetImageFromArray(array)
    image.SetSpacing(SPACING_XYZ if array.ndim == 3 else (*SPACING_XYZ, 1.0))
    sitk.WriteImage(image, str(path))


def es_frame(patient_id: int) -> int:
    """The ES frame number given to a patient of the replica (varies between 5 and 8)."""
    return 5 + patient_id % 4


def make_acdc_replica(
    root: Path,
    train_ids=(1, 2, 3, 4),
    test_ids=(101, 102),
    nested_testing: bool = False,
    shape_zyx: tuple[int, int, int] = (4, 10, 12),
    n_frames: int = 12,
    seed: int = 0,
) -> Path:
    """Write ``root/training/patientXXX`` and ``root/testing/patientXXX`` folders; return ``root``.

    ``nested_testing`` puts the test patients under ``testing/testing/`` as some archives unpack.
    """
    root = Path(root)
    rng = np.random.default_rng(seed)
    z, y, x = shape_zyx
    for subset, ids in (("training", train_ids), ("testing", test_ids)):
        base = root / subset / subset if (subset == "testing" and nested_testing) else root / subset
        for pid in ids:
            patient = f"patient{pid:03d}"
            folder = base / patient
            folder.mkdir(parents=True)
            es = es_frame(pid)
            (folder / "Info.cfg").write_text(f"ED: 1\nES: {es}\nGroup: DCM\nHeight: 180.0\nNbFrame: {n_frames}\n")
            cine = rng.integers(0, 200, size=(n_frames, z, y, x)).astype(np.int16)
            _write(folder / f"{patient}_4d.nii.gz", cine)
            for frame in (1, es):
                _write(folder / f"{patient}_frame{frame:02d}.nii.gz", cine[frame - 1])
                if subset == "training":
                    labels = np.zeros(shape_zyx, np.uint8)
                    labels[1:z - 1, 2:y // 2, 2:x // 2] = 1
                    labels[1:z - 1, y // 2:y - 2, x // 2:x - 2] = 2
                    labels[1:z - 1, y // 2 + 1:y - 3, x // 2 + 1:x - 3] = 3
                    _write(folder / f"{patient}_frame{frame:02d}_gt.nii.gz", labels)
    return root


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Write a tiny synthetic ACDC-like download.")
    parser.add_argument("root", type=Path, help="folder to create (must not exist)")
    parser.add_argument("--train", type=int, nargs="+", default=[1, 2, 3, 4], help="training patient ids")
    parser.add_argument("--test", type=int, nargs="+", default=[101, 102], help="test patient ids")
    args = parser.parse_args(argv)
    if args.root.exists():
        print(f"make_replica: error: {args.root} exists; choose a new folder.", file=sys.stderr)
        return 2
    make_acdc_replica(args.root, args.train, args.test)
    print(f"wrote {args.root}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
