"""The one codec chooser: which codec stores and carries a map kind on a given dataset.

Every place that needs a dataset's codec (the trainer, ``nnunet-lossplug precompute``, ``show-maps``) asks
:func:`source_codec` (or :func:`dataset_codec` with the label set-up spelled out), so a region-based dataset or
one with an ignore label never gets the plain softmax codec of :func:`~nnunet_lossplug.nnunet.codecs.softmax.codec_for`.
"""

from __future__ import annotations

from nnunet_lossplug.maps import get_map_kind
from nnunet_lossplug.maps.registry import MapKind
from nnunet_lossplug.nnunet.codecs.regions import REGION_KIND_CHANNELS, IgnoreLabelCodec, RegionCodec
from nnunet_lossplug.nnunet.codecs.softmax import MapCodec, codec_for
from nnunet_lossplug.nnunet.errors import UnsupportedDatasetError


def dataset_codec(
    kind: str | MapKind,
    num_classes: int,
    regions: tuple[tuple[int, ...], ...] | None = None,
    ignore_label: int | None = None,
    rectified: bool = False,
) -> MapCodec:
    """The codec of a map kind for a dataset's label setup: softmax classes, regions, and/or an ignore label.

    Raises :class:`UnsupportedDatasetError` for a map kind that has no region meaning (users' own kinds and
    ``rrw_reference`` are defined for ``K`` exclusive classes; class emphasis ``class_values`` is per class).
    """
    map_kind = get_map_kind(kind) if isinstance(kind, str) else kind
    if regions is not None:
        if map_kind.name not in REGION_KIND_CHANNELS or map_kind.params.get("class_values") is not None:
            raise UnsupportedDatasetError(
                f"Map kind '{map_kind.name}'{' with class_values' if map_kind.params.get('class_values') else ''} "
                f"has no region meaning: on a region-based dataset the plugin computes two-class maps per region "
                f"for {sorted(REGION_KIND_CHANNELS)} only (SPEC §4). Use one of those kinds, or convert the "
                f"regions to exclusive labels (drop regions_class_order) to train with this map."
            )
        return RegionCodec(map_kind, num_classes, tuple(tuple(r) for r in regions), ignore_label)
    codec = codec_for(map_kind, num_classes, rectified=rectified)
    if ignore_label is None:
        return codec
    return IgnoreLabelCodec(map_kind, num_classes, codec, int(ignore_label))


def source_codec(kind: str | MapKind, source, rectified: bool = False) -> MapCodec:
    """:func:`dataset_codec` for a :class:`~nnunet_lossplug.nnunet.map_cache.source.PreprocessedSource`."""
    return dataset_codec(kind, source.num_classes, source.regions, source.ignore_label, rectified=rectified)
