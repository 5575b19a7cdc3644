"""Adding a map kind is one registration: the worked example of a new kind that no other file names.

The kind below is registered through the same ``register_map_kind`` call as the built-ins
(``nnunet_lossplug/maps/builtins.py``) and then goes, with no other edit, through the softmax codec, the
ignore-label codec, the region codec, the cache key and the command-line help. The codecs are found by the
registration's encodings, never by the kind's name, and the built-ins declare theirs the same way.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
import torch

from nnunet_lossplug.cli.map_args import map_kinds_help
from nnunet_lossplug.losses import RectifiedMap
from nnunet_lossplug.maps import (
    ComputedValues,
    FromSegmentation,
    MapEncoding,
    OwnClassDepth,
    UnsignedDistance,
    available_map_kinds,
    compute_with_ignore,
    get_map_kind,
    region_maps,
    region_masks,
    register_map_kind,
    rw_map,
    unregister_map_kind,
)
from nnunet_lossplug.nnunet.codecs import (
    CODEC_OF_ENCODING,
    REGION_CODEC_OF_ENCODING,
    IgnoreLabelCodec,
    RegionCodec,
    codec_for,
    dataset_codec,
)
from nnunet_lossplug.nnunet.errors import TrainerDeclarationError, UnsupportedDatasetError
from nnunet_lossplug.nnunet.map_cache.cache import CaseCache

K = 4
IGNORE = 4
REGIONS = ((1, 2, 3), (2, 3))
SPACING = (2.0, 1.0, 1.5)
NAME = "test_half_cao"


def half_cao_map(labels: np.ndarray, num_classes: int, spacing=None) -> np.ndarray:
    """A new kind: Cao's map halved, ``z = 0.5 - y`` (-0.5 on the true class, 0.5 elsewhere)."""
    one_hot = np.eye(num_classes, dtype=np.float32)[labels].transpose(labels.ndim, *range(labels.ndim))
    return 0.5 - one_hot


def register_half_cao():
    return register_map_kind(NAME, half_cao_map, encoding=FromSegmentation(-0.5, 0.5),
                             region_encoding=FromSegmentation(-0.5, 0.5), rectified=True,
                             summary="Cao's map halved, 0.5 - y (a test kind)")


@pytest.fixture
def half_cao():
    kind = register_half_cao()
    yield kind
    unregister_map_kind(NAME)


def _labels() -> np.ndarray:
    labels = np.zeros((5, 12, 10), dtype=np.int16)
    labels[1:4, 2:10, 2:8] = 1
    labels[2:4, 4:8, 3:6] = 2
    labels[2:3, 5:7, 4:5] = 3
    return labels


def _dense(decoded) -> np.ndarray:
    return (decoded.dense() if isinstance(decoded, RectifiedMap) else decoded).numpy()


@dataclass(frozen=True)
class _SourceNames:
    """What the cache key of a preprocessed configuration is made of (no files needed)."""

    preprocessed_base: Path
    dataset_name: str = "Dataset999_Test"
    plans_identifier: str = "nnUNetPlans"
    configuration: str = "3d_fullres"
    data_identifier: str = "nnUNetPlans_3d_fullres"
    plans_fingerprint: str = "0" * 12
    num_classes: int = K


def test_a_new_kind_goes_through_every_codec_by_its_registration(half_cao):
    labels = _labels()
    assert NAME in available_map_kinds() and get_map_kind(NAME) is half_cao
    np.testing.assert_array_equal(rw_map(labels, K, NAME), half_cao_map(labels, K))
    # softmax classes: nothing stored, rebuilt from the labels
    codec = codec_for(NAME, K)
    assert codec.channels() == 0 and codec.rectified
    encoded = torch.from_numpy(codec.encode(labels, SPACING))[None]
    decoded = codec.decode(encoded, torch.from_numpy(labels)[None, None])
    np.testing.assert_array_equal(_dense(decoded)[0], half_cao_map(labels, K))
    # an ignore label: ignored voxels count as outside every class
    with_ignore = labels.copy()
    with_ignore[:, :, 8:] = IGNORE
    ignore_codec = dataset_codec(NAME, K, None, IGNORE)
    assert isinstance(ignore_codec, IgnoreLabelCodec)
    decoded = ignore_codec.decode(torch.from_numpy(ignore_codec.encode(with_ignore, SPACING))[None],
                                  torch.from_numpy(with_ignore)[None, None])
    annotated = np.broadcast_to(with_ignore != IGNORE, (K, *labels.shape))
    expected = compute_with_ignore(NAME, with_ignore, K, SPACING, IGNORE)
    np.testing.assert_array_equal(_dense(decoded)[0][annotated], expected[annotated])
    # regions: each region's two-class map
    region_codec = dataset_codec(NAME, K, REGIONS)
    assert isinstance(region_codec, RegionCodec) and region_codec.channels() == 0 and region_codec.rectified
    target = torch.from_numpy(region_masks(labels, REGIONS).astype(np.int16))[None]
    dense = _dense(region_codec.decode(torch.from_numpy(region_codec.encode(labels, SPACING))[None], target))
    np.testing.assert_array_equal(dense.reshape(len(REGIONS), 2, *labels.shape),
                                  region_maps(NAME, labels, REGIONS, SPACING))


def test_a_new_kind_has_its_own_cache_key_and_help_line(half_cao, tmp_path):
    source = _SourceNames(tmp_path)
    folder = CaseCache(source, codec_for(NAME, K)).folder
    assert folder.name.startswith(f"nnUNetPlans__3d_fullres__{NAME}__")
    assert folder != CaseCache(source, codec_for("cao", K)).folder
    unregister_map_kind(NAME)
    register_half_cao()  # the same definition in another session: the same cache
    assert CaseCache(source, codec_for(NAME, K)).folder == folder
    assert f"{NAME}: Cao's map halved, 0.5 - y (a test kind)" in map_kinds_help()
    with pytest.raises(ValueError, match="already registered"):
        register_map_kind(NAME, half_cao_map, encoding=FromSegmentation(-1.0, 1.0),
                          region_encoding=FromSegmentation(-0.5, 0.5), rectified=True,
                          summary="Cao's map halved, 0.5 - y (a test kind)")


def test_without_a_region_encoding_a_region_dataset_refuses_the_kind_and_names_those_with_one():
    register_map_kind("test_half_cao_no_regions", half_cao_map)
    try:
        kind = get_map_kind("test_half_cao_no_regions")
        assert kind.encoding == ComputedValues() and kind.region_encoding is None and kind.rectified is None
        with pytest.raises(UnsupportedDatasetError, match=r"'test_half_cao_no_regions' has no region meaning.*'rrw'"):
            dataset_codec(kind, K, REGIONS)
        # not declared rectified: all K channels, or two values when the start-up check finds it rectified
        assert codec_for(kind, K).channels() == K and codec_for(kind, K, rectified=True).channels() == 2
    finally:
        unregister_map_kind("test_half_cao_no_regions")


def test_the_built_ins_declare_their_encodings_like_any_kind():
    declared = {name: (get_map_kind(name).encoding, get_map_kind(name).region_encoding, get_map_kind(name).rectified)
                for name in ("rrw", "rrw_reference", "boundary", "ac", "cao", "distance")}
    assert declared == {
        "rrw": (OwnClassDepth(), OwnClassDepth(), True),
        "rrw_reference": (ComputedValues(), None, None),
        "boundary": (UnsignedDistance(), UnsignedDistance(), False),
        "ac": (FromSegmentation(0.0, 1.0), FromSegmentation(0.0, 1.0), True),
        "cao": (FromSegmentation(-1.0, 1.0), FromSegmentation(-1.0, 1.0), True),
        "distance": (ComputedValues(minimum=0.0), ComputedValues(minimum=0.0), False),
    }
    assert all(get_map_kind(name).summary for name in declared)
    # a declared verdict wins over the start-up check's: distance is never stored as two values
    assert codec_for("distance", K, rectified=True).channels() == K
    assert set(CODEC_OF_ENCODING) == set(REGION_CODEC_OF_ENCODING) == {
        ComputedValues, OwnClassDepth, UnsignedDistance, FromSegmentation}


@dataclass(frozen=True)
class _UnknownEncoding(MapEncoding):
    """An encoding no codec implements."""


def test_an_encoding_without_a_codec_is_refused_naming_the_known_ones():
    register_map_kind("test_unknown_encoding", half_cao_map, encoding=_UnknownEncoding(),
                      region_encoding=_UnknownEncoding())
    try:
        with pytest.raises(TrainerDeclarationError, match=r"no codec for its encoding.*ComputedValues"):
            codec_for("test_unknown_encoding", K)
        with pytest.raises(TrainerDeclarationError, match=r"no region codec for its region_encoding.*ComputedValues"):
            dataset_codec("test_unknown_encoding", K, REGIONS)
    finally:
        unregister_map_kind("test_unknown_encoding")
    with pytest.raises(ValueError, match="encoding"):
        register_map_kind("test_not_an_encoding", half_cao_map, encoding="all_channels")
