"""map_cache: the dataset preprocessing hook, and everything that reads or writes its files.

- :mod:`.source`: :class:`PreprocessedSource`, one nnU-Net preprocessed dataset / configuration (cases,
  segmentations, spacings, label set-up).
- :mod:`.cache`: :class:`CaseCache` / :func:`precompute_caches`, the per-case maps and class statistics.
- :mod:`.integrity`: content hash and stamp of a map file, and :func:`load_checked_map`, the one reader of one.
- :mod:`.atomic` (atomic writes, the build lock), :mod:`.worker_pool` (workers whose death is reported).
- :mod:`.case_view`: one case with its map as training reads it (``show-maps``).

This part may import the codecs, :mod:`~nnunet_lossplug.nnunet.errors`, :mod:`nnunet_lossplug.maps` and
nnunetv2's dataset and plans classes; never the map transport or the trainer.
"""

from nnunet_lossplug.nnunet.map_cache.cache import BuildSummary, CaseCache, precompute_caches
from nnunet_lossplug.nnunet.map_cache.integrity import file_digest, file_stamp, load_checked_map
from nnunet_lossplug.nnunet.map_cache.source import PreprocessedSource, check_label_setup

__all__ = ["BuildSummary", "CaseCache", "PreprocessedSource", "check_label_setup", "file_digest", "file_stamp",
           "load_checked_map", "precompute_caches"]
