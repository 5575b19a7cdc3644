"""Codecs: what ``decode(encode(case), labels)`` gives equals the map computed from the labels, per kind.

Reference maps come from :mod:`nnunet_lossplug.maps` (numpy), the decode runs in torch on batched tensors
as the training process does; the comparison is dense, voxel by voxel. Also: the layout rule that keeps
nnU-Net's loader uncopied.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

from nnunet_lossplug.losses import RectifiedMap
from nnunet_lossplug.maps import MapKind, ac_map, boundary_map, cao_map, get_map_kind, rrw_map
from nnunet_lossplug.nnunet.codecs.softmax import (
    MapCodec,
    MapNotRectifiedError,
    RectifiedValuesCodec,
    codec_for,
    decode_levels,
)
from nnunet_lossplug.nnunet.map_transport.transport import unpack_target

K = 4
SPACING = (2.0, 1.0, 1.5)
FLOAT16_ATOL = 2.0**-11


def _labels(seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    labels = np.zeros((6, 12, 10), dtype=np.int64)
    labels[1:5, 2:10, 2:9] = 1
    labels[2:4, 4:8, 3:7] = rng.integers(2, K, size=(2, 4, 4))
    return labels


def _decode_dense(codec: MapCodec, labels: np.ndarray) -> np.ndarray:
    encoded = torch.from_numpy(codec.encode(labels, SPACING))[None]
    z = codec.decode(encoded, torch.from_numpy(labels)[None, None])
    return (z.dense() if isinstance(z, RectifiedMap) else z)[0].numpy()


@pytest.mark.parametrize(
    ("name", "reference", "atol"),
    [("rrw", rrw_map, FLOAT16_ATOL), ("ac", ac_map, 0.0), ("cao", cao_map, 0.0), ("boundary", boundary_map, 0.02)],
)
def test_decode_of_the_encoding_is_the_map(name, reference, atol):
    labels = _labels()
    codec = codec_for(name, K)
    assert codec.rectified == (name != "boundary")
    expected = reference(labels, K, spacing=SPACING)
    np.testing.assert_allclose(_decode_dense(codec, labels), expected, rtol=2e-3 if atol else 0, atol=atol)


def test_rrw_class_emphasis_is_the_true_class_value_everywhere_else():
    values = (1.0, 2.0, 3.0, 4.0)
    codec = codec_for(get_map_kind("rrw").with_params(class_values=values), K)
    labels = _labels(1)
    expected = rrw_map(labels, K, spacing=SPACING, class_values=values)
    np.testing.assert_allclose(_decode_dense(codec, labels), expected, rtol=0, atol=FLOAT16_ATOL)


def _scaled_rrw(labels, num_classes, spacing=None):
    """A user's rectified map: RRW with twice the depth values and 3 outside."""
    z = rrw_map(labels, num_classes, spacing=spacing)
    return np.where(z > 0, 3.0, 2.0 * z).astype(np.float32)


def test_a_users_rectified_kind_is_stored_in_two_channels_and_decoded_exactly():
    codec = codec_for(MapKind("scaled_rrw", _scaled_rrw), K, rectified=True)
    assert isinstance(codec, RectifiedValuesCodec) and codec.channels() == 2
    labels = _labels(2)
    np.testing.assert_allclose(_decode_dense(codec, labels), _scaled_rrw(labels, K, SPACING), rtol=0,
                               atol=2 * FLOAT16_ATOL)
    # the same kind without the start-up check's verdict keeps all K channels
    assert codec_for(MapKind("scaled_rrw", _scaled_rrw), K).channels() == K


def test_a_kind_claimed_rectified_that_is_not_stops_with_the_reason():
    codec = codec_for("boundary", K)
    not_rectified = RectifiedValuesCodec(codec.kind, K)
    with pytest.raises(MapNotRectifiedError, match="rectification_check_cases"):
        not_rectified.encode(_labels(), SPACING)


def test_levels_pick_the_encoding_like_nnunet_picks_the_target():
    labels = torch.from_numpy(_labels(3))[None, None]
    codec = codec_for("rrw", K)
    encoded = torch.from_numpy(codec.encode(labels[0, 0].numpy(), SPACING))[None]
    shapes = [(6, 12, 10), (3, 6, 5), (3, 3, 3)]
    targets = [torch.nn.functional.interpolate(labels.float(), s, mode="nearest-exact").long() for s in shapes]
    maps = decode_levels(codec, encoded.float(), targets)
    for target, z, shape in zip(targets, maps, shapes):
        dense = z.dense()
        assert tuple(dense.shape) == (1, K, *shape)
        own = torch.gather(dense, 1, target)
        assert torch.all(own < 0) and torch.all(own >= -1)
        outside = dense.masked_fill(torch.nn.functional.one_hot(target[:, 0], K).movedim(-1, 1).bool(), 1.0)
        assert torch.all(outside == 1.0)


def test_packed_target_round_trip_keeps_labels_and_float16_bits():
    labels = torch.randint(0, K, (3, 1, 5, 6), dtype=torch.int16)
    encoded = torch.rand(3, 2, 5, 6).half()
    packed = [torch.cat([labels, encoded.view(torch.int16)], 1), labels[:, :, ::2, ::2]]
    levels, back = unpack_target(packed, 2)
    assert torch.equal(levels[0], labels) and torch.equal(levels[1], labels[:, :, ::2, ::2])
    assert back.dtype == torch.float16 and torch.equal(back, encoded)
