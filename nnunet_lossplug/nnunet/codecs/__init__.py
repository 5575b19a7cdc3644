"""codecs: how a map kind is stored (encoded per case) and decoded on the device from each level's target.

- :mod:`.softmax`: the :class:`MapCodec` contract and the codecs of ``K`` exclusive classes (RRW, boundary,
  AC/Cao, rectified values, all channels), one per encoding of :mod:`nnunet_lossplug.maps.encodings`
  (:data:`CODEC_OF_ENCODING`), with :func:`decode_levels` for deep supervision.
- :mod:`.regions`: region-based datasets (one codec per encoding, :data:`REGION_CODEC_OF_ENCODING`) and ignore
  labels (``docs/conventions.md``).
- :mod:`.chooser`: :func:`source_codec` / :func:`dataset_codec`, the one place that picks a dataset's codec.

Shared by the map cache (encode) and the map transport (decode). This part may import
:mod:`nnunet_lossplug.maps`, :mod:`nnunet_lossplug.losses`, :mod:`~nnunet_lossplug.nnunet.errors`, numpy and
torch; never nnunetv2, the cache, the transport or the trainer.
"""

from nnunet_lossplug.nnunet.codecs.chooser import dataset_codec, source_codec
from nnunet_lossplug.nnunet.codecs.regions import (
    REGION_CODEC_OF_ENCODING,
    IgnoreLabelCodec,
    RegionCodec,
    region_codec_for,
)
from nnunet_lossplug.nnunet.codecs.softmax import CODEC_OF_ENCODING, MapCodec, codec_for, decode_levels

__all__ = ["CODEC_OF_ENCODING", "REGION_CODEC_OF_ENCODING", "IgnoreLabelCodec", "MapCodec", "RegionCodec",
           "codec_for", "dataset_codec", "decode_levels", "region_codec_for", "source_codec"]
