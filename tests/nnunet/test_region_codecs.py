"""Region and ignore-label codecs: decode(encode(case), nnU-Net's target) is the map of docs/conventions.md#regions,
voxel by voxel.

Reference maps come from :mod:`nnunet_lossplug.maps` (numpy); the decode runs on batched torch tensors shaped as
nnU-Net's training targets (region channels, a last ignore channel, the ignore value in a label map).
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

from nnunet_lossplug.losses import RectifiedMap, RegionWiseLoss
from nnunet_lossplug.maps import compute_with_ignore, region_maps, region_masks
from nnunet_lossplug.nnunet.codecs import IgnoreLabelCodec, RegionCodec, dataset_codec
from nnunet_lossplug.nnunet.map_cache.source import UnsupportedDatasetError

SPACING = (2.0, 1.0, 1.5)
REGIONS = ((1, 2, 3), (2, 3), (3,))
K = 4
IGNORE = 4
FLOAT16_ATOL = 2.0**-10


def _labels(ignore: bool) -> np.ndarray:
    labels = np.zeros((6, 14, 12), dtype=np.int16)
    labels[1:5, 2:12, 2:10] = 1
    labels[2:4, 4:10, 3:8] = 2
    labels[2:4, 5:8, 4:6] = 3
    if ignore:
        labels[:, :, 9:] = IGNORE
    return labels


def _region_target(labels: np.ndarray, ignore: bool) -> torch.Tensor:
    """nnU-Net's region target of one case: (1, R(+1), *spatial), ignore channel last."""
    masks = region_masks(labels, REGIONS)
    if ignore:
        masks = np.concatenate([masks, (labels == IGNORE)[None]])
    return torch.from_numpy(masks.astype(np.int16))[None]


def _dense(decoded) -> torch.Tensor:
    if isinstance(decoded, RectifiedMap):  # (B·R, 2, *spatial) -> (B, R, 2, *spatial)
        dense = decoded.dense(torch.float32)
        return dense.reshape(-1, len(REGIONS), 2, *dense.shape[2:])
    return decoded


@pytest.mark.parametrize("ignore", [False, True])
@pytest.mark.parametrize(("kind", "atol"), [("rrw", FLOAT16_ATOL), ("ac", 0.0), ("cao", 0.0),
                                             ("boundary", 0.02), ("distance", 0.02)])
def test_region_decode_of_the_encoding_is_each_regions_two_class_map(kind: str, atol: float, ignore: bool) -> None:
    labels = _labels(ignore)
    codec = dataset_codec(kind, K, REGIONS, IGNORE if ignore else None)
    assert isinstance(codec, RegionCodec) and codec.rectified == (kind in ("rrw", "ac", "cao"))
    encoded = torch.from_numpy(codec.encode(labels, SPACING))[None]
    assert encoded.shape[1] == codec.channels()
    decoded = _dense(codec.decode(encoded, _region_target(labels, ignore)))[0].numpy()
    expected = region_maps(kind, labels, REGIONS, SPACING, IGNORE if ignore else None)
    annotated = np.broadcast_to(labels != IGNORE, expected.shape)
    np.testing.assert_allclose(decoded[annotated], expected[annotated], rtol=2e-3 if atol else 0, atol=atol)


def test_region_rrw_through_the_loss_has_the_rectified_gradient_signs() -> None:
    labels = _labels(ignore=False)
    codec = dataset_codec("rrw", K, REGIONS)
    target = _region_target(labels, ignore=False)
    rw_map = codec.decode(torch.from_numpy(codec.encode(labels, SPACING))[None], target)
    logits = torch.randn(target.shape, dtype=torch.float32, requires_grad=True)
    RegionWiseLoss(regions=True)(logits, rw_map).backward()
    assert bool(torch.all(logits.grad[target == 1] < 0)) and bool(torch.all(logits.grad[target == 0] > 0))


@pytest.mark.parametrize(("kind", "atol"), [("rrw", FLOAT16_ATOL), ("boundary", 0.02), ("ac", 0.0)])
def test_ignore_label_codec_counts_ignored_voxels_outside_every_class(kind: str, atol: float) -> None:
    labels = _labels(ignore=True)
    codec = dataset_codec(kind, K, None, IGNORE)
    assert isinstance(codec, IgnoreLabelCodec)
    encoded = torch.from_numpy(codec.encode(labels, SPACING))[None]
    decoded = codec.decode(encoded, torch.from_numpy(labels)[None, None])
    dense = (decoded.dense() if isinstance(decoded, RectifiedMap) else decoded)[0].numpy()
    expected = compute_with_ignore(kind, labels, K, SPACING, IGNORE)
    annotated = np.broadcast_to(labels != IGNORE, expected.shape)
    np.testing.assert_allclose(dense[annotated], expected[annotated], rtol=2e-3 if atol else 0, atol=atol)
    assert codec.identity() != dataset_codec(kind, K).identity()  # never shares a cache with the unmasked maps


def test_map_kinds_without_region_meaning_are_refused_with_the_alternative() -> None:
    with pytest.raises(UnsupportedDatasetError, match="rrw_reference.*no region meaning"):
        dataset_codec("rrw_reference", K, REGIONS)
