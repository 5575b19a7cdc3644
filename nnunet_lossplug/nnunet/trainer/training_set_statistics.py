"""``TrainingSetStatistics``: the fold's class (or region) voxel counts that class-weighted losses need (Shen et al.
2018, eq. 4-5), read from the precompute hook's statistics (computed once per case, beside the maps)."""

from __future__ import annotations

import numpy as np

from nnunet_lossplug.nnunet.map_cache.cache import CaseCache


class TrainingSetStatistics:
    """Mixin for ``LossPlugTrainer`` (it uses its ``_ensure_cache``, ``source`` and ``label_setup``)."""

    def training_set_class_voxel_counts(self) -> np.ndarray:
        """Voxel counts per class over this fold's training cases, from the precompute hook (run if needed)."""
        self._ensure_cache(stats := CaseCache(self.source, None), always_log=False)
        key = "region_voxel_counts" if self.label_setup.regions is not None else "class_voxel_counts"
        counts = stats.class_voxel_counts(self.do_split()[0], key)
        self.print_to_log_file(f"Training-set {key.replace('_', ' ')}: {counts.tolist()}")
        return counts

    def training_set_voxel_total(self) -> int | None:
        """``N`` of Shen et al. 2018's class weights for regions (annotated voxels; regions overlap), else None
        (the sum of the counts)."""
        if self.label_setup.regions is None:
            return None
        return int(CaseCache(self.source, None).class_voxel_counts(self.do_split()[0], "annotated_voxels")[0])
