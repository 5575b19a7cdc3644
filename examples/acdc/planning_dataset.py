"""A planning-only nnU-Net raw dataset holding the training cases of fold 0, so that nnU-Net plans on them alone.

nnU-Net's fingerprint (``nnUNetv2_extract_fingerprint``) reads every case of ``imagesTr``. ``convert_acdc.py``
puts all 100 ACDC training patients there, because fold 0 validates on the odd ones; planning on that folder
would let the validation patients choose the target spacing, which the reference (nnU-Net v1 on the 50 even
patients only) did not do. This module writes ``DatasetMMM_<name>Planning`` with links to fold 0's training
cases only; ``prepare.sh`` fingerprints and plans it, then moves the plans to the real dataset with
``nnUNetv2_move_plans_between_datasets`` and preprocesses the real dataset with them.

Usage::

    python examples/acdc/planning_dataset.py $nnUNet_raw/Dataset027_ACDC --dataset-id 927
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
from pathlib import Path


def planning_dataset_name(source: Path, dataset_id: int) -> str:
    """``DatasetMMM_<name>Planning`` for the source ``DatasetNNN_<name>``."""
    name = source.name.split("_", 1)[1] if "_" in source.name else source.name
    return f"Dataset{dataset_id:03d}_{name}Planning"


def write_planning_dataset(source: Path, dataset_id: int, fold: int = 0) -> Path:
    """Write the planning dataset beside ``source`` (replacing an earlier one); return its folder.

    Raises:
        FileNotFoundError: ``source`` lacks ``dataset.json`` or ``splits_final.json``, or a training case's files.
        ValueError: ``dataset_id`` is not a free nnU-Net id, or the fold does not exist.
    """
    source = Path(source)
    if not 0 < dataset_id < 1000:
        raise ValueError(f"planning dataset id must be between 1 and 999, got {dataset_id}: set PLANNING_DATASET_ID.")
    for required in ("dataset.json", "splits_final.json"):
        if not (source / required).is_file():
            raise FileNotFoundError(f"{source / required} is missing: convert the dataset with convert_acdc.py first.")
    splits = json.loads((source / "splits_final.json").read_text())
    if not 0 <= fold < len(splits):
        raise ValueError(f"{source / 'splits_final.json'} has {len(splits)} folds; fold {fold} does not exist.")
    train = sorted(splits[fold]["train"])
    target = source.parent / planning_dataset_name(source, dataset_id)
    clashes = [p for p in source.parent.glob(f"Dataset{dataset_id:03d}_*") if p != target]
    if clashes:
        raise ValueError(f"dataset id {dataset_id} is taken by {clashes[0]}: set PLANNING_DATASET_ID to a free id.")
    if target.exists():
        shutil.rmtree(target)
    dataset = json.loads((source / "dataset.json").read_text())
    ending = dataset.get("file_ending", ".nii.gz")
    for sub in ("imagesTr", "labelsTr"):
        (target / sub).mkdir(parents=True)
    for case in train:
        pairs = [(source / "labelsTr" / f"{case}{ending}", target / "labelsTr" / f"{case}{ending}")]
        pairs += [(source / "imagesTr" / f"{case}_{int(c):04d}{ending}",
                   target / "imagesTr" / f"{case}_{int(c):04d}{ending}") for c in dataset["channel_names"]]
        for original, link in pairs:
            if not original.is_file():
                raise FileNotFoundError(f"{original} is missing: convert the dataset again.")
            link.symlink_to(original.resolve())
    dataset["numTraining"] = len(train)
    dataset["description"] = f"planning copy of {source.name}: the {len(train)} training cases of fold {fold}"
    (target / "dataset.json").write_text(json.dumps(dataset, indent=2) + "\n")
    return target


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Planning-only dataset holding fold 0's training cases.")
    parser.add_argument("source", type=Path, help="the converted raw dataset folder (DatasetNNN_ACDC)")
    parser.add_argument("--dataset-id", type=int, required=True, help="free nnU-Net id for the planning dataset")
    parser.add_argument("--fold", type=int, default=0, help="fold whose training cases are planned on (default 0)")
    args = parser.parse_args(argv)
    try:
        target = write_planning_dataset(args.source, args.dataset_id, args.fold)
    except (FileNotFoundError, ValueError) as error:
        print(f"planning_dataset: error: {error}", file=sys.stderr)
        return 2
    n = json.loads((target / "dataset.json").read_text())["numTraining"]
    print(f"wrote {target}: {n} training cases of fold {args.fold} (links)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
