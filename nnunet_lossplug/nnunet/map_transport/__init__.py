"""map_transport: the map's ride through nnU-Net's own data loader and augmentation, in its compact encoding.

Nothing of nnU-Net's loader is copied or overridden; the encoding (see :mod:`~nnunet_lossplug.nnunet.codecs`: one
float16 channel for RRW) enters and leaves at the loader's seams:

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
4. **Training process** (:func:`unpack_target`, then :func:`~nnunet_lossplug.nnunet.codecs.decode_levels` on the
   device, inside the trainer's loss object): the encoding is split off the target and decoded at every
   deep-supervision level from that level's target.

:class:`MapTransport` (:mod:`.transport`) bundles the four for a trainer; :mod:`.dataset` holds step 1,
:mod:`.transforms` steps 2 to 4. This part may import the codecs, the map cache (the one checked reader of a
map file), :mod:`~nnunet_lossplug.nnunet.errors`, batchgeneratorsv2 and torch; never the trainer.
"""

from nnunet_lossplug.nnunet.map_transport.dataset import ChannelStack, EncodedMapDataset
from nnunet_lossplug.nnunet.map_transport.transforms import DetachEncoding, EncodePerPatch, PackEncoding, unpack_target
from nnunet_lossplug.nnunet.map_transport.transport import MapTransport

__all__ = ["ChannelStack", "DetachEncoding", "EncodePerPatch", "EncodedMapDataset", "MapTransport", "PackEncoding",
           "unpack_target"]
