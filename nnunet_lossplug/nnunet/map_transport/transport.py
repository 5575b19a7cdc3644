""":class:`MapTransport`: a trainer's map path through nnU-Net's loader, built once per trainer."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch

from nnunet_lossplug.nnunet.codecs.softmax import MapCodec, decode_levels
from nnunet_lossplug.nnunet.map_cache.cache import CaseCache
from nnunet_lossplug.nnunet.map_cache.integrity import file_stamp
from nnunet_lossplug.nnunet.map_transport.dataset import EncodedMapDataset
from nnunet_lossplug.nnunet.map_transport.transforms import DetachEncoding, EncodePerPatch, PackEncoding, unpack_target


class MapTransport:
    """A trainer's map path: cache (precomputed) or per-patch encoding (worker), and the decode on the device.

    ``cache`` is the precompute cache for ``placement == "precomputed"``, None for ``"worker"``.
    """

    def __init__(self, codec: MapCodec, placement: str, spacing: Sequence[float], cache: CaseCache | None):
        self.codec = codec
        self.placement = placement
        self.spacing = tuple(spacing)
        self.cache = cache
        self.channels = codec.channels()

    def load_encoded(self, identifier: str, spatial_shape: tuple[int, ...]) -> np.ndarray:
        """The case's memory-mapped encoding, checked (:meth:`CaseCache.load`): an unreadable, stale or
        out-of-range one stops with one line naming the case and the command that rebuilds the cache."""
        assert self.cache is not None
        return self.cache.load(identifier, spatial_shape)

    def _stamp(self, identifier: str) -> tuple[int, int, int]:
        assert self.cache is not None
        return file_stamp(self.cache.map_path(identifier))

    def wrap_datasets(self, datasets: Sequence) -> tuple:
        """nnU-Net's training and validation datasets, with the cached encoding behind the image channels."""
        if self.cache is None or not self.channels:
            return tuple(datasets)
        return tuple(EncodedMapDataset(dataset, self.load_encoded, self._stamp) for dataset in datasets)

    def extend_pipeline(self, pipeline):
        """nnU-Net's augmentation pipeline with the encoding detached first and packed (or computed) last."""
        if self.channels and self.placement == "precomputed":
            pipeline.transforms.insert(0, DetachEncoding(self.channels))
            pipeline.transforms.append(PackEncoding())
        elif self.channels:
            pipeline.transforms.append(EncodePerPatch(self.codec, self.spacing))
        return pipeline

    def decode(self, target, device: torch.device):
        """The batch target's levels and the loss's map at each level, on ``device``, in nnU-Net's structure."""
        is_list = isinstance(target, (list, tuple))
        if self.channels:
            levels, encoded = unpack_target(target, self.channels)
        else:
            levels = list(target) if is_list else [target]
            encoded = torch.zeros((levels[0].shape[0], 0, *levels[0].shape[2:]), device=device)
        levels = [level.to(device, non_blocking=True) for level in levels]
        maps = decode_levels(self.codec, encoded.to(device, non_blocking=True), levels)
        return (levels, maps) if is_list else (levels[0], maps[0])
