"""nnU-Net's data loader, extended to carry a precomputed map with the image and segmentation.

The encoded map of a case (see :mod:`map_codecs`) is cropped with exactly the bounding box nnU-Net samples
for the image and segmentation (random or foreground-oversampled, 2D slice or 3D patch), padded with zeros
like the image, and handed to the augmentation pipeline as batchgeneratorsv2's ``regression_target``: every
spatial transform interpolates it like an image (linearly, never nearest-neighbour). The pipeline's last
transform (:class:`~nnunet_lossplug.nnunet.transforms.DecodeRWMaps` or ``ComputeRWMapsPerPatch``) turns
it into the loss's map at each deep-supervision resolution, stored in the batch under ``"rw_map"``.
"""

from __future__ import annotations

from collections import OrderedDict

import numpy as np
import torch
from acvl_utils.cropping_and_padding.bounding_boxes import crop_and_pad_nd
from nnunetv2.training.dataloading.data_loader import nnUNetDataLoader
from threadpoolctl import threadpool_limits

from nnunet_lossplug.nnunet.map_integrity import load_checked_map
from nnunet_lossplug.nnunet.precompute import CaseCache

RW_MAP_KEY = "rw_map"


class RWMapDataLoader(nnUNetDataLoader):
    """:class:`nnUNetDataLoader` that also yields ``batch["rw_map"]``.

    ``map_cache`` is the precompute cache to read from, or None when the map is computed per patch in the
    augmentation workers (``ComputeRWMapsPerPatch`` then builds it from the augmented segmentation).
    """

    #: memory maps kept open per loader (each worker process has its own); parsing a .npy header costs
    #: about as much as cropping a 2D patch, so reopening every case on every draw is avoided
    OPEN_MAPS = 32

    def __init__(self, *args, map_cache: CaseCache | None = None, **kwargs):
        super().__init__(*args, **kwargs)
        self.map_cache = map_cache
        self._open_maps: OrderedDict[str, tuple[tuple[int, int], np.ndarray]] = OrderedDict()

    def _mapped(self, identifier: str, spatial_shape: tuple[int, ...]) -> np.ndarray:
        """The case's memory-mapped, checked encoding, reopened when the file changed since it was opened."""
        assert self.map_cache is not None
        path = self.map_cache.map_path(identifier)
        try:
            st = path.stat()
            stamp = (st.st_mtime_ns, st.st_size)
        except OSError:
            stamp = (-1, -1)  # let load_checked_map raise its error naming the fix
        cached = self._open_maps.get(identifier)
        if cached is not None and cached[0] == stamp:
            self._open_maps.move_to_end(identifier)
            return cached[1]
        encoded = load_checked_map(self.map_cache, identifier, spatial_shape)
        self._open_maps[identifier] = (stamp, encoded)
        while len(self._open_maps) > self.OPEN_MAPS:
            self._open_maps.popitem(last=False)
        return encoded

    def _load_encoded(self, identifier: str, bbox: list[list[int]], spatial_shape: tuple[int, ...]):
        """The cropped encoded map channels, or None when nothing is stored (per-patch mode, AC, Cao)."""
        if self.map_cache is None or not self.map_cache.stores_maps:
            return None
        encoded = self._mapped(identifier, spatial_shape)  # unreadable, wrong shape or values: MapCacheError
        return torch.from_numpy(crop_and_pad_nd(encoded, bbox, 0).astype(np.float32))

    def generate_train_batch(self) -> dict:
        selected_keys = self.get_indices()
        data_all = seg_all = map_all = None
        levels_are_list = False
        with torch.no_grad(), threadpool_limits(limits=1, user_api=None):
            for j, identifier in enumerate(selected_keys):
                force_fg = self.get_do_oversample(j)
                data, seg, seg_prev, properties = self._data.load_case(identifier)
                if seg_prev is not None:
                    raise RuntimeError("Cascaded (previous-stage) training is not supported by the plugin's trainers.")
                shape = data.shape[1:]
                bbox_lbs, bbox_ubs = self.get_bbox(shape, force_fg, properties["class_locations"])
                bbox = [[lo, hi] for lo, hi in zip(bbox_lbs, bbox_ubs)]

                image = torch.from_numpy(crop_and_pad_nd(data, bbox, 0)).float()
                labels = torch.from_numpy(crop_and_pad_nd(seg, bbox, -1, cast_cropped_to=np.int16)).to(torch.int16)
                encoded = self._load_encoded(identifier, bbox, tuple(shape))
                if self.patch_size_was_2d:
                    image, labels = image[:, 0], labels[:, 0]
                    encoded = encoded[:, 0] if encoded is not None else None

                sample = {"image": image, "segmentation": labels}
                if encoded is not None:  # a key holding None would break batchgeneratorsv2's pseudo-2D transforms
                    sample["regression_target"] = encoded
                sample = self.transforms(**sample)
                image, labels, rw_map = sample["image"], sample["segmentation"], sample["regression_target"]
                levels_are_list = isinstance(labels, list)
                labels = labels if isinstance(labels, list) else [labels]
                rw_map = rw_map if isinstance(rw_map, list) else [rw_map]

                if data_all is None:
                    data_all = torch.empty((self.batch_size, *image.shape), dtype=torch.float32)
                    seg_all = [torch.empty((self.batch_size, *s.shape), dtype=s.dtype) for s in labels]
                    map_all = [torch.empty((self.batch_size, *m.shape), dtype=torch.float32) for m in rw_map]
                data_all[j] = image
                for level, s in enumerate(labels):
                    seg_all[level][j] = s
                for level, m in enumerate(rw_map):
                    map_all[level][j] = m
        if not levels_are_list:  # no deep supervision: single tensors, as nnU-Net's loader returns them
            seg_all, map_all = seg_all[0], map_all[0]
        return {"data": data_all, "target": seg_all, RW_MAP_KEY: map_all, "keys": selected_keys}
