"""The one codec chooser: which codec stores and carries a map kind on a given dataset.

Every place that needs a dataset's codec (the trainer, ``nnunet-lossplug precompute``, ``show-maps``) asks
:func:`source_codec` (or :func:`dataset_codec` with the label set-up spelled out), so a region-based dataset or
one with an ignore label never gets the plain softmax codec of :func:`~nnunet_lossplug.nnunet.codecs.softmax.codec_for`.
The codec classes are looked up by the kind's declared encodings (``encoding``, ``region_encoding``), never by its
name.
"""

from __future__ import annotations

from nnunet_lossplug.maps import get_map_kind
from nnunet_lossplug.maps.registry import MapKind
from nnunet_lossplug.nnunet.codecs.regions import IgnoreLabelCodec, region_codec_for
from nnunet_lossplug.nnunet.codecs.softmax import MapCodec, codec_for


def dataset_codec(
    kind: str | MapKind,
    num_classes: int,
    regions: tuple[tuple[int, ...], ...] | None = None,
    ignore_label: int | None = None,
    rectified: bool = False,
) -> MapCodec:
    """The codec of a map kind for a dataset's label setup: softmax classes, regions, and/or an ignore label.

    Raises :class:`~nnunet_lossplug.nnunet.errors.UnsupportedDatasetError` on a region-based dataset for a map kind
    registered without a ``region_encoding`` (users' own kinds and ``rrw_reference`` are defined for ``K``
    exclusive classes) and for RRW with class emphasis ``class_values`` (per class).
    """
    map_kind = get_map_kind(kind) if isinstance(kind, str) else kind
    if regions is not None:
        return region_codec_for(map_kind, num_classes, regions, ignore_label)
    codec = codec_for(map_kind, num_classes, rectified=rectified)
    if ignore_label is None:
        return codec
    return IgnoreLabelCodec(map_kind, num_classes, codec, int(ignore_label))


def source_codec(kind: str | MapKind, source, rectified: bool = False) -> MapCodec:
    """:func:`dataset_codec` for a :class:`~nnunet_lossplug.nnunet.map_cache.source.PreprocessedSource`."""
    return dataset_codec(kind, source.num_classes, source.regions, source.ignore_label, rectified=rectified)
