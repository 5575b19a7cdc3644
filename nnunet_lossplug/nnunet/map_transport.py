"""The map's ride through nnU-Net's own data loader and augmentation, in its compact encoding.

Nothing of nnU-Net's loader is copied or overridden; the encoding (see :mod:`map_codecs`: one float16
channel for RRW) enters and leaves at the loader's seams:

1. **Dataset** (:class:`EncodedMapDataset`, from the trainer's ``get_tr_and_val_datasets``): a case's image is
   returned as a lazy :class:`ChannelStack` of the image channels and the cached encoding, so nnU-Net's
   ``nnUNetDataLoader`` crops and pads both with the very same box (random or foreground-oversampled, 2D
   slice or 3D patch) and reads only the patch from the memory-mapped cache file.
2. **First transform** (:class:`DetachEncoding`): moves the encoding channels from ``image`` to
   ``regression_target``. nnU-Net's intensity transforms never see it; its spatial transforms interpolate it
   like an image (linearly), mirror it and crop it with the image.
3. **Last transform** (:class:`PackEncoding`, or :class:`EncodePerPatch` for maps computed per patch): appends
   the augmented encoding, as float16 bit patterns, to the full-resolution segmentation's int16 channels. The
   loader stacks it like any target: 2 bytes per voxel and stored channel cross the process boundary.
4. **Training process** (:func:`unpack_target`, then :func:`map_codecs.decode_levels` on the device): the
   encoding is split off the target and decoded at every deep-supervision level from that level's target.

:class:`MapTransport` bundles the four for a trainer.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Callable, Sequence

import numpy as np
import torch
from batchgeneratorsv2.transforms.base.basic_transform import BasicTransform

from nnunet_lossplug.nnunet.map_codecs import MapCodec, decode_levels
from nnunet_lossplug.nnunet.map_integrity import load_checked_map
from nnunet_lossplug.nnunet.precompute import CaseCache


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


class DetachEncoding(BasicTransform):
    """First transform: the last ``channels`` image channels become the ``regression_target``."""

    def __init__(self, channels: int):
        super().__init__()
        self.channels = channels

    def apply(self, data_dict: dict, **params) -> dict:
        image = data_dict["image"]
        data_dict["image"] = image[: image.shape[0] - self.channels]
        data_dict["regression_target"] = image[image.shape[0] - self.channels:]
        return data_dict


def _pack(data_dict: dict, encoded: torch.Tensor) -> dict:
    """Append ``encoded`` (float) as float16 bit patterns to the full-resolution int16 segmentation."""
    segmentation = data_dict["segmentation"]
    levels = segmentation if isinstance(segmentation, list) else [segmentation]
    bits = encoded.to(torch.float16).contiguous().view(torch.int16)
    levels = [torch.cat([levels[0].to(torch.int16), bits]), *levels[1:]]
    data_dict["segmentation"] = levels if isinstance(segmentation, list) else levels[0]
    data_dict.pop("regression_target", None)
    return data_dict


class PackEncoding(BasicTransform):
    """Last transform (precomputed maps): the augmented ``regression_target`` rides in the target."""

    def apply(self, data_dict: dict, **params) -> dict:
        return _pack(data_dict, data_dict["regression_target"])


class EncodePerPatch(BasicTransform):
    """Last transform (maps computed per patch, the reference code's placement): encode the augmented patch.

    The codec encodes the full-resolution augmented segmentation of the patch (a 2D slice in the 2d
    configuration) with the configuration's spacing; distances are normalised per patch, not per 3D case.
    """

    def __init__(self, codec: MapCodec, spacing: Sequence[float]):
        super().__init__()
        self.codec = codec
        self.spacing = tuple(float(s) for s in spacing)

    def apply(self, data_dict: dict, **params) -> dict:
        segmentation = data_dict["segmentation"]
        labels = (segmentation[0] if isinstance(segmentation, list) else segmentation)[0]
        spacing = self.spacing[-labels.ndim:]
        encoded = self.codec.encode(labels.numpy().astype(np.int16), spacing)
        return _pack(data_dict, torch.from_numpy(encoded))


def unpack_target(target, channels: int) -> tuple[list[torch.Tensor], torch.Tensor]:
    """Split a packed batch target into its levels ``(B, 1, *spatial)`` and the encoding ``(B, C, *spatial)``."""
    levels = list(target) if isinstance(target, (list, tuple)) else [target]
    full = levels[0]
    encoded = full[:, full.shape[1] - channels:].contiguous().view(torch.float16)
    levels[0] = full[:, : full.shape[1] - channels]
    return levels, encoded


def map_file_stamp(path) -> tuple[int, int]:
    """``(mtime_ns, size)`` of a cache file, ``(-1, -1)`` when it cannot be read (the load then names the fix)."""
    try:
        st = path.stat()
    except OSError:
        return (-1, -1)
    return (st.st_mtime_ns, st.st_size)


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
        """The case's memory-mapped encoding, checked (:func:`map_integrity.load_checked_map`): an unreadable,
        stale or out-of-range one stops with one line naming the case and the command that rebuilds the cache."""
        assert self.cache is not None
        return load_checked_map(self.cache, identifier, spatial_shape)

    def _stamp(self, identifier: str) -> tuple[int, int]:
        assert self.cache is not None
        return map_file_stamp(self.cache.map_path(identifier))

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
            encoded = torch.zeros((levels[0].shape[0], 0, *levels[0].shape[2:]))
        levels = [level.to(device, non_blocking=True) for level in levels]
        maps = decode_levels(self.codec, encoded.to(device, non_blocking=True), levels)
        return (levels, maps) if is_list else (levels[0], maps[0])
