"""One nnU-Net preprocessed configuration, seen from the precompute hook: cases, segmentations, spacings.

Received data is read without trusting it: a case's properties (``<case>.pkl``) through
:func:`~nnunet_lossplug.nnunet.safe_loading.load_case_properties` (numpy arrays and containers only), its arrays
straight from nnU-Net's ``.b2nd`` / ``.npy`` / ``.npz`` files (no pickle), never through nnU-Net's ``load_case``,
which unpickles the properties with full trust.
"""

from __future__ import annotations

import hashlib
import json
import os
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path

import numpy as np
from batchgenerators.utilities.file_and_folder_operations import load_json
from nnunetv2.paths import nnUNet_preprocessed
from nnunetv2.training.dataloading.nnunet_dataset import infer_dataset_class, nnUNetDatasetBlosc2, nnUNetDatasetNumpy
from nnunetv2.utilities.dataset_name_id_conversion import maybe_convert_to_dataset_name
from nnunetv2.utilities.plans_handling.plans_handler import PlansManager

from nnunet_lossplug.nnunet.errors import (
    PreprocessedCaseMissingError,
    UndeclaredLabelError,
    UnknownConfigurationError,
    UnsupportedDatasetError,
)
from nnunet_lossplug.nnunet.safe_loading import load_case_properties


@dataclass(frozen=True)
class PreprocessedSource:
    """The preprocessed data of one dataset, plans identifier and configuration."""

    dataset_name: str
    plans_identifier: str
    configuration: str
    preprocessed_base: Path
    plans: dict
    dataset_json: dict

    @classmethod
    def from_names(cls, dataset: str | int, configuration: str, plans_identifier: str = "nnUNetPlans"):
        """Locate a dataset (name or id) under ``$nnUNet_preprocessed`` after ``nnUNetv2_plan_and_preprocess``."""
        dataset_name = maybe_convert_to_dataset_name(dataset)
        base = Path(nnUNet_preprocessed.require()) / dataset_name
        plans_file = base / f"{plans_identifier}.json"
        if not plans_file.is_file():
            raise FileNotFoundError(
                f"No plans file {plans_file}. Run nnUNetv2_plan_and_preprocess -d {dataset_name} first "
                f"(or pass the plans identifier you used with -p)."
            )
        return cls(dataset_name, plans_identifier, configuration, base, load_json(str(plans_file)),
                   load_json(str(base / "dataset.json")))

    @cached_property
    def plans_manager(self) -> PlansManager:
        return PlansManager(self.plans)

    @cached_property
    def configuration_manager(self):
        if self.configuration not in self.plans_manager.available_configurations:
            raise UnknownConfigurationError(
                f"Configuration '{self.configuration}' is not in plans {self.plans_identifier} "
                f"(available: {', '.join(self.plans_manager.available_configurations)})."
            )
        return self.plans_manager.get_configuration(self.configuration)

    @cached_property
    def label_manager(self):
        return self.plans_manager.get_label_manager(self.dataset_json)

    @property
    def data_identifier(self) -> str:
        return self.configuration_manager.data_identifier

    @property
    def data_folder(self) -> Path:
        return self.preprocessed_base / self.data_identifier

    @cached_property
    def num_classes(self) -> int:
        """Number of labels ``K`` (background included, nnU-Net's ignore label excluded)."""
        check_label_setup(self.label_manager)
        return len(self.label_manager.all_labels)

    @cached_property
    def regions(self) -> tuple[tuple[int, ...], ...] | None:
        """nnU-Net's foreground regions (one sigmoid output each) as label tuples, None without regions."""
        if not self.label_manager.has_regions:
            return None
        return tuple(tuple(int(label) for label in np.atleast_1d(region))
                     for region in self.label_manager.foreground_regions)

    @property
    def ignore_label(self) -> int | None:
        """nnU-Net's ignore label (``"ignore"`` in dataset.json: voxels without ground truth), or None."""
        return self.label_manager.ignore_label

    @cached_property
    def plans_fingerprint(self) -> str:
        """Hash of everything in the plans that changes the preprocessed segmentations and spacings.

        The configuration is taken with nnU-Net's inheritance resolved (``3d_cascade_fullres`` inherits the
        spacing of ``3d_fullres``), so a changed parent changes the key; a configuration without a parent
        hashes as before.
        """
        relevant = {
            "configuration": self.configuration_manager.configuration,
            "transpose_forward": self.plans.get("transpose_forward"),
            "labels": self.dataset_json.get("labels"),
        }
        return hashlib.blake2b(json.dumps(relevant, sort_keys=True).encode(), digest_size=8).hexdigest()

    @cached_property
    def _dataset_class(self):
        if not self.data_folder.is_dir():
            raise FileNotFoundError(
                f"No preprocessed data in {self.data_folder}. Run nnUNetv2_plan_and_preprocess -d "
                f"{self.dataset_name} -c {self.configuration} first."
            )
        return infer_dataset_class(str(self.data_folder))

    def identifiers(self) -> list[str]:
        return sorted(self._dataset_class.get_identifiers(str(self.data_folder)))

    @property
    def dataset_id(self) -> str:
        """``27`` of ``Dataset027_ACDC``: what nnU-Net's commands take as ``-d``."""
        return str(int(self.dataset_name[len("Dataset"):].split("_")[0]))

    def preprocess_command(self) -> str:
        """nnU-Net's command that writes this configuration's preprocessed cases again (from nnUNet_raw)."""
        plans = "" if self.plans_identifier == "nnUNetPlans" else f" -plans_name {self.plans_identifier}"
        return f"nnUNetv2_preprocess -d {self.dataset_id} -c {self.configuration}{plans}"

    def check_case_exists(self, identifier: str) -> None:
        """Raise :class:`PreprocessedCaseMissingError` (the file and nnU-Net's command) for a case without files."""
        if not self.segmentation_file_stats(identifier):
            raise PreprocessedCaseMissingError(self.missing_case_message(identifier))

    def missing_case_message(self, identifier: str) -> str:
        """One line for a case that the split lists but whose preprocessed files are gone; names the fix."""
        return (
            f"Case {identifier} is listed in {self.preprocessed_base / 'splits_final.json'} but has no preprocessed "
            f"files in {self.data_folder} (deleted or moved?). Write them again with nnU-Net's preprocessing: "
            f"{self.preprocess_command()} (or nnUNetv2_plan_and_preprocess -d {self.dataset_id}), or remove the "
            f"case from splits_final.json."
        )

    def load_case_arrays(self, identifier: str, image: bool = False) -> tuple[np.ndarray | None, np.ndarray]:
        """``(image or None, segmentation)`` of one case as nnU-Net stored them, memory-mapped where it can.

        Read straight from nnU-Net's files (blosc2 ``.b2nd``, or ``.npy`` / ``.npz`` without pickles), so the
        case's ``.pkl`` is never unpickled here; a dataset class of nnU-Net's that the plugin does not know goes
        through its ``load_case``.
        """
        folder = self.data_folder
        if issubclass(self._dataset_class, nnUNetDatasetBlosc2):
            import blosc2

            options = {} if os.name == "nt" else {"mmap_mode": "r"}  # as nnU-Net opens them

            def open_b2nd(name: str):
                return blosc2.open(urlpath=str(folder / name), mode="r", dparams={"nthreads": 1}, **options)

            return (open_b2nd(f"{identifier}.b2nd") if image else None), open_b2nd(f"{identifier}_seg.b2nd")
        if issubclass(self._dataset_class, nnUNetDatasetNumpy):
            def load_npy(key: str, suffix: str):
                npy = folder / f"{identifier}{suffix}.npy"
                if npy.is_file():
                    return np.load(npy, mmap_mode="r", allow_pickle=False)
                with np.load(folder / f"{identifier}.npz", allow_pickle=False) as archive:
                    return archive[key]

            return (load_npy("data", "") if image else None), load_npy("seg", "_seg")
        data, seg, _, _ = self._dataset_class(str(folder), [identifier]).load_case(identifier)  # pragma: no cover
        return (data if image else None), seg

    def load_segmentation(self, identifier: str) -> np.ndarray:
        """The preprocessed segmentation ``(1, *spatial)`` as nnU-Net stored it (with -1 outside the crop)."""
        try:
            return np.asarray(self.load_case_arrays(identifier)[1][:])
        except FileNotFoundError:
            self.check_case_exists(identifier)
            raise

    def segmentation_file_stats(self, identifier: str) -> list[list]:
        """``[name, size, mtime_ns]`` of each file that can hold this case's segmentation."""
        stats = []
        for name in (f"{identifier}_seg.b2nd", f"{identifier}.npz", f"{identifier}_seg.npy"):
            path = self.data_folder / name
            if path.is_file():
                st = path.stat()
                stats.append([name, st.st_size, st.st_mtime_ns])
        return stats

    def labels_for_maps(self, seg: np.ndarray, identifier: str) -> np.ndarray:
        """The label map the maps are computed from: channel 0, nnU-Net's -1 (outside the nonzero crop) -> 0.

        nnU-Net's training pipeline turns -1 into background (``RemoveLabelTansform(-1, 0)``), so the maps do too.
        The ignore label, if the dataset declares one, is kept (the codecs treat it, docs/conventions.md#ignore-labels).
        """
        labels = np.asarray(seg[0]).astype(np.int16, copy=True)
        labels[labels < 0] = 0
        known = labels if self.ignore_label is None else labels[labels != self.ignore_label]
        if known.size and known.max() >= self.num_classes:
            raise UndeclaredLabelError(
                f"Case {identifier} has label {int(known.max())} but dataset.json declares {self.num_classes} "
                f"labels {[int(label) for label in self.label_manager.all_labels]}. Fix dataset.json or the label "
                f"files and preprocess again."
            )
        return labels

    def case_spacing(self, identifier: str) -> tuple[float, ...]:
        """Voxel spacing of the preprocessed case in nnU-Net's axis order (mm).

        nnU-Net resamples to the configuration's target spacing; in a 2d configuration the target spacing has
        two entries and the axis between slices keeps the case's own (transposed) spacing.
        """
        properties = load_case_properties(self.data_folder / f"{identifier}.pkl")
        original = [properties["spacing"][i] for i in self.plans_manager.transpose_forward]
        target = list(self.configuration_manager.spacing)
        if len(target) < len(original):
            target = [original[0]] + target
        return tuple(float(s) for s in target)


def check_label_setup(label_manager) -> None:
    """Refuse label setups the plugin cannot train on (none today: regions and ignore labels work,
    docs/conventions.md#regions).

    Kept as the one place where such refusals live; nnU-Net's own checks (an ignore label must be the highest
    label, regions need ``regions_class_order``) run before, in its ``LabelManager``.
    """
    if label_manager.has_ignore_label and label_manager.ignore_label != len(label_manager.all_labels):
        raise UnsupportedDatasetError(
            f"The ignore label {label_manager.ignore_label} is not the number of labels "
            f"({len(label_manager.all_labels)}: {label_manager.all_labels}); the plugin needs the labels to be "
            f"0..K-1 and the ignore label K, as nnU-Net recommends. Renumber the labels in dataset.json."
        )
