"""One preprocessed case with its RW map exactly as training reads it: from the precompute cache, decoded.

Used by ``nnunet-lossplug show-maps``. The read and decode of the map is :func:`read_case_maps` alone, which
does what a training batch does for a whole case instead of a patch: the cached encoding
(:meth:`CaseCache.load`, the checked reader training uses, with the dataset's codec from
:func:`~nnunet_lossplug.nnunet.codecs.chooser.source_codec`) and nnU-Net's segmentation with its ``-1``
(outside the nonzero crop) set to background, as nnU-Net's ``RemoveLabelTansform(-1, 0)`` does before the map
is decoded, go through the map kind's codec (:meth:`MapCodec.decode`), and a rectified map's ``(t, z_t, c_t)``
is expanded to its ``K`` channels for the picture. Region-based datasets are refused (their maps are two-class
maps per region).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from nnunetv2.training.dataloading.nnunet_dataset import infer_dataset_class

from nnunet_lossplug.maps import get_map_kind
from nnunet_lossplug.nnunet.codecs.chooser import source_codec
from nnunet_lossplug.nnunet.map_cache.cache import CaseCache
from nnunet_lossplug.nnunet.map_cache.source import PreprocessedSource


@dataclass(frozen=True)
class CaseMaps:
    """``image (C, *spatial)``, ``labels (*spatial)`` and the decoded map ``z (K, *spatial)`` of one case."""

    identifier: str
    image: np.ndarray
    labels: np.ndarray
    z: np.ndarray
    spacing: tuple[float, ...]
    cache_folder: str


def read_case_maps(source: PreprocessedSource, kind: str, identifier: str, num_processes: int = 1) -> CaseMaps:
    """The case's map as training reads it; the cache of ``kind`` is built for this case first if needed."""
    if identifier not in source.identifiers():
        known = ", ".join(source.identifiers()[:10])
        raise ValueError(f"No preprocessed case '{identifier}' in {source.data_folder} (cases: {known}, ...).")
    get_map_kind(kind)  # an unknown kind fails here with the registry's message listing the known ones
    if source.regions is not None:
        raise ValueError(f"show-maps draws the K-class maps of exclusive labels; {source.dataset_name} is region-based "
                         f"(its maps are two-class maps per region, SPEC §4), which show-maps does not draw yet.")
    cache = CaseCache(source, source_codec(kind, source))  # the dataset's codec: regions, ignore label
    cache.ensure([identifier], num_processes=num_processes, progress=False)
    assert cache.codec is not None
    labels = source.labels_for_maps(source.load_segmentation(identifier), identifier)
    encoded = cache.load(identifier, labels.shape)  # the checked reader training uses
    labels_tensor = torch.from_numpy(labels.astype(np.int64))[None, None]  # a batch of one: (1, 1, *spatial)
    encoded_tensor = (torch.zeros((1, 0, *labels.shape)) if encoded is None
                      else torch.from_numpy(np.array(encoded, dtype=np.float32))[None])
    decoded = cache.codec.decode(encoded_tensor, labels_tensor)  # on the device in training; here on the CPU
    z = (decoded if isinstance(decoded, torch.Tensor) else decoded.dense())[0].numpy()
    dataset = infer_dataset_class(str(source.data_folder))(str(source.data_folder), [identifier])
    image, _, _, _ = dataset.load_case(identifier)
    return CaseMaps(identifier, np.asarray(image[:], dtype=np.float32), labels, z,
                    source.case_spacing(identifier), str(cache.folder))
