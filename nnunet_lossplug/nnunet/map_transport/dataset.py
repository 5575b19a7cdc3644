"""Step 1 of the map's ride (see :mod:`~nnunet_lossplug.nnunet.map_transport`): nnU-Net's dataset, with a case's
cached encoding behind its image channels, so nnU-Net's ``nnUNetDataLoader`` crops both with the same box."""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Callable

import numpy as np


class ChannelStack:
    """Lazy ``concatenate([image, encoded], axis=0)``: slicing reads only the requested box of each."""

    def __init__(self, image, encoded: np.ndarray):
        self.image = image
        self.encoded = encoded
        self.shape = (image.shape[0] + encoded.shape[0], *image.shape[1:])
        self.ndim = len(self.shape)
        self.dtype = np.dtype(np.float32)

    def __getitem__(self, index) -> np.ndarray:
        if not isinstance(index, tuple) or (index and index[0] != slice(None)):
            raise IndexError("ChannelStack is sliced over all channels only (as nnU-Net's crop does).")
        image = np.asarray(self.image[index], dtype=np.float32)
        return np.concatenate([image, np.asarray(self.encoded[index], dtype=np.float32)], axis=0)

    def __array__(self, dtype=None, copy=None) -> np.ndarray:
        return np.asarray(self[(slice(None),)], dtype=dtype)


class EncodedMapDataset:
    """An nnU-Net dataset whose cases carry their cached map encoding behind the image channels.

    ``load_encoded(identifier, spatial_shape)`` returns the case's (memory-mapped) encoding ``(C, *spatial)``
    and raises an error naming the case and the fix when it is missing, stale or corrupt. The last
    ``open_maps`` memory maps stay open per process (parsing a .npy header costs about as much as cropping a
    2D patch), reopened when the file changed.
    """

    def __init__(self, dataset, load_encoded: Callable[[str, tuple[int, ...]], np.ndarray], stamp: Callable,
                 open_maps: int = 32):
        self.dataset = dataset
        self.identifiers = dataset.identifiers
        self._load_encoded = load_encoded
        self._stamp = stamp
        self._open_maps = open_maps
        self._open: OrderedDict[str, tuple[object, np.ndarray]] = OrderedDict()

    def __getattr__(self, name: str):  # everything else is the wrapped nnU-Net dataset's
        if name == "dataset":
            raise AttributeError(name)
        return getattr(self.dataset, name)

    def __getitem__(self, identifier: str):
        return self.load_case(identifier)

    def _encoded(self, identifier: str, spatial_shape: tuple[int, ...]) -> np.ndarray:
        stamp = self._stamp(identifier)
        cached = self._open.get(identifier)
        if cached is not None and cached[0] == stamp:
            self._open.move_to_end(identifier)
            return cached[1]
        encoded = self._load_encoded(identifier, spatial_shape)
        self._open[identifier] = (stamp, encoded)
        while len(self._open) > self._open_maps:
            self._open.popitem(last=False)
        return encoded

    def load_case(self, identifier: str):
        data, seg, seg_prev, properties = self.dataset.load_case(identifier)
        encoded = self._encoded(identifier, tuple(data.shape[1:]))
        return ChannelStack(data, encoded), seg, seg_prev, properties
