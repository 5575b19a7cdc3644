"""``nnunet-lossplug show-maps``: the plotted map is the cached map decoded as training decodes it.

The expected values are rebuilt here from the files alone: the cache's ``.npy`` read with numpy, the
segmentation read with blosc2, and the codec's documented formula (RRW: ``z_k = q - 1`` inside class k,
1 elsewhere; RW-Boundary: ``-|D_k|`` inside, ``+|D_k|`` outside), not by calling the code under test.
On a region-based and an ignore-label dataset (preprocessed by nnU-Net) the map is the dataset's codec's decode of
the cache with the target nnU-Net's own transforms build, and the map kind's numpy map
(docs/conventions.md#regions) within float16.
"""

from __future__ import annotations

import json

import blosc2
import matplotlib.pyplot as plt
import numpy as np
import pytest
import torch
from batchgeneratorsv2.transforms.utils.seg_to_regions import ConvertSegmentationToRegionsTransform
from helpers.label_datasets import write_label_dataset
from helpers.nnunet_runs import DATASET_ID, PreprocessedDataset, run_cli

from nnunet_lossplug.cli import main, show_maps
from nnunet_lossplug.maps import compute_with_ignore, region_maps
from nnunet_lossplug.nnunet.codecs import IgnoreLabelCodec, RegionCodec, dataset_codec
from nnunet_lossplug.nnunet.map_cache.case_view import CaseMaps, read_case_maps
from nnunet_lossplug.nnunet.map_cache.source import PreprocessedSource

NUM_CLASSES = 4


def _expected(kind: str, cache_folder: str, data_folder, identifier: str):
    seg = np.asarray(blosc2.open(str(data_folder / f"{identifier}_seg.b2nd"), mode="r")[:])[0].astype(np.int64)
    seg[seg < 0] = 0
    image = np.asarray(blosc2.open(str(data_folder / f"{identifier}.b2nd"), mode="r")[:])[0]
    stored = np.load(f"{cache_folder}/{identifier}.npy").astype(np.float32)
    inside = np.stack([seg == k for k in range(NUM_CLASSES)])
    if kind == "rrw":
        z = np.where(inside, stored[0][None] - 1.0, 1.0)
    else:
        z = np.where(inside, -np.abs(stored), np.abs(stored))
    return image, seg, z


@pytest.mark.parametrize("kind, verdict", [("rrw", "(rectified)"), ("boundary", "NOT rectified")])
def test_plotted_arrays_are_the_cached_decoded_map(preprocessed_dataset, kind, verdict):
    identifier = "heart_001"
    fig, maps, _, _ = show_maps.render(str(DATASET_ID), "2d", kind=kind, case=identifier, slices=3)
    data_folder = preprocessed_dataset.preprocessed_folder / "nnUNetPlans_2d"
    image, seg, z = _expected(kind, maps.cache_folder, data_folder, identifier)
    axes = np.array(fig.axes[:-1]).reshape(-1, 2 + NUM_CLASSES)  # the last axes is the colour bar
    assert len(axes) == 3
    for row in axes:
        index = int(row[0].get_ylabel().split()[-1])
        assert seg[index].max() > 0  # slices with foreground are shown
        np.testing.assert_allclose(row[0].images[0].get_array(), image[index], rtol=1e-6)
        np.testing.assert_array_equal(row[1].images[0].get_array(), seg[index])
        for k in range(NUM_CLASSES):
            np.testing.assert_allclose(row[2 + k].images[0].get_array(), z[k, index], atol=1e-6)
    assert verdict in fig._suptitle.get_text()
    plt.close(fig)


def test_command_writes_a_png(preprocessed_dataset, tmp_path, capsys):
    out = tmp_path / "maps.png"
    assert main(["show-maps", "-d", str(DATASET_ID), "-c", "2d", "--case", "heart_002", "-o", str(out)]) == 0
    assert out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and out.stat().st_size > 10_000
    assert "rectification check: 0.00% unstable voxels" in capsys.readouterr().out


@pytest.mark.parametrize("extra, needle", [(["--case", "nope"], "No preprocessed case 'nope'"),
                                           (["--maps", "nope"], "unknown map kind 'nope'"),
                                           (["--kind", "nope"], "unknown map kind 'nope'")])  # the old name
def test_bad_case_or_kind_is_one_line_naming_it(preprocessed_dataset, tmp_path, capsys, extra, needle):
    assert main(["show-maps", "-d", str(DATASET_ID), "-c", "2d", "-o", str(tmp_path / "x.png"), *extra]) == 2
    err = capsys.readouterr().err
    assert needle in err and len(err.strip().splitlines()) == 1 and "Traceback" not in err
    assert not (tmp_path / "x.png").exists()


def test_a_dataset_of_255_classes_draws_eight_maps_unless_classes_chooses_others():
    """255 classes gave a 59 190-pixel-wide PNG; now the first 8 classes, a line naming the rest, and --classes."""
    rng = np.random.default_rng(0)
    labels = (np.arange(2 * 16 * 16) % 255).reshape(2, 16, 16).astype(np.int16)  # every label present
    case = CaseMaps("many", rng.normal(size=(1, 2, 16, 16)).astype(np.float32), labels,
                    rng.uniform(-1, 1, size=(255, 2, 16, 16)).astype(np.float32), (1.0, 1.0, 1.0), "cache")
    names = {0: "background", **{k: f"organ{k}" for k in range(1, 255)}}
    chosen, note = show_maps.choose_classes(list(range(255)), None)
    assert chosen == list(range(8))
    assert note == ("drawing the maps of classes 0-7 of 0-254 (the first 8); choose others with --classes, "
                    "e.g. --classes 254")
    fig = show_maps.draw(case, [names[k] for k in range(255)], "rrw", 0.0, [0, 1], chosen, names)
    assert fig.get_size_inches()[0] * 100 < 2500  # pixels at the command's 100 dpi
    assert [ax.get_title() for ax in fig.axes[2:10]] == [f"z: class {k} ({names[k]})" for k in range(8)]
    legend = next(ax.get_legend() for ax in fig.axes if ax.get_legend() is not None)  # under the labels panel
    key = [text.get_text() for text in legend.get_texts()]
    assert key[:3] == ["0 background", "1 organ1", "2 organ2"] and key[-1] == "247 other labels"
    plt.close(fig)
    picked = show_maps.parse_classes(["200", "3-4"])
    assert picked == [3, 4, 200] and show_maps.choose_classes(list(range(255)), picked) == (picked, None)
    fig = show_maps.draw(case, [names[k] for k in range(255)], "rrw", 0.0, [0], picked, names)
    assert [ax.get_title() for ax in fig.axes[2:5]] == ["z: class 3 (organ3)", "z: class 4 (organ4)",
                                                        "z: class 200 (organ200)"]
    plt.close(fig)
    with pytest.raises(ValueError, match=r"--classes 300: no such class \(this dataset has 0-254\)"):
        show_maps.choose_classes(list(range(255)), [300])
    assert show_maps.choose_classes(list(range(1, 11)), None, "region", 4) == (
        [1, 2, 3, 4], "drawing the maps of regions 1-4 of 1-10 (the first 4); choose others with --classes, "
                      "e.g. --classes 10")


def test_distance_maps_get_a_colour_bar_in_mm_with_even_ticks():
    assert show_maps.even_ticks(-41.3, 52.0) == [-40.0, -20.0, 0.0, 20.0, 40.0]
    rng = np.random.default_rng(1)
    labels = np.zeros((1, 8, 8), np.int16)
    labels[0, 2:5, 2:5] = 1
    case = CaseMaps("one", rng.normal(size=(1, 1, 8, 8)).astype(np.float32), labels,
                    np.stack([np.full((1, 8, 8), -3.0), np.linspace(-7.0, 23.0, 64).reshape(1, 8, 8)]).astype(
                        np.float32), (1.0, 1.0, 1.0), "cache")
    fig = show_maps.draw(case, ["background", "organ"], "boundary", 1.0, [0])
    bar = fig.axes[-1]
    assert bar.get_ylabel() == "map value in mm (negative: own class)"
    assert list(bar.get_yticks()) == [-6.0, -4.0, -2.0, 0.0, 10.0, 20.0]  # even steps on each side of 0
    plt.close(fig)


def test_show_maps_output_and_classes_option(preprocessed_dataset, tmp_path, capsys):
    """--classes picks the columns; -o replaces only a PNG show-maps drew, never a link or another picture."""
    out = tmp_path / "maps.png"
    common = ["show-maps", "-d", str(DATASET_ID), "-c", "2d", "--case", "heart_002"]
    for _ in range(2):  # the second run replaces the first run's picture
        assert main([*common, "--classes", "2", "-o", str(out)]) == 0
    from PIL import Image

    with Image.open(out) as image:
        assert image.info["Software"] == "nnunet-lossplug show-maps"
    capsys.readouterr()
    assert main([*common, "--classes", "9", "-o", str(tmp_path / "x.png")]) == 2
    assert "--classes 9: no such class (this dataset has 0-3)" in capsys.readouterr().err
    plt.figure().savefig(tmp_path / "mine.png")
    (tmp_path / "link.png").symlink_to(out)
    mine, drawn = (tmp_path / "mine.png").read_bytes(), out.read_bytes()
    for name, needle in (("mine.png", "is not an earlier image drawn by `nnunet-lossplug show-maps`"),
                         ("link.png", "is a symbolic link")):
        assert main([*common, "-o", str(tmp_path / name)]) == 2
        err = capsys.readouterr().err
        assert needle in err and len(err.strip().splitlines()) == 1
    assert (tmp_path / "mine.png").read_bytes() == mine and out.read_bytes() == drawn


def test_maps_is_the_option_of_precompute_and_show_maps_and_kind_stays_hidden():
    from nnunet_lossplug.cli import build_parser

    parser = build_parser()
    for command in ("precompute", "show-maps"):
        assert parser.parse_args([command, "-d", "1", "-c", "2d", "--maps", "boundary"]).maps == "boundary"
    assert parser.parse_args(["show-maps", "-d", "1", "-c", "2d", "--kind", "ac"]).maps == "ac"


def test_labels_of_the_dataset_name_the_map_columns(preprocessed_dataset):
    labels = json.loads((preprocessed_dataset.raw_folder / "dataset.json").read_text())["labels"]
    fig, _, _, _ = show_maps.render(str(DATASET_ID), "2d", kind="rrw", case="heart_001", slices=1)
    titles = [ax.get_title() for ax in fig.axes[2:2 + NUM_CLASSES]]
    assert titles == [f"z: class {v} ({k})" for k, v in sorted(labels.items(), key=lambda item: item[1])]
    plt.close(fig)


# ---------------------------------------------------------------------------------------------------------------
# region-based and ignore-label datasets: the map training uses (docs/conventions.md#regions), from
# nnU-Net-preprocessed data
REGIONS = ((1, 2, 3), (2, 3), (3,))  # dataset.json of test_integration_regions_ignore: whole, core, enhancing
IGNORE = 4
LABEL_DATASETS = {"regions": (988, True, False), "ignore": (989, False, True)}  # ids no other test uses
FLOAT16_ATOL = 2.0**-10  # the cache stores float16 values in [0, 2]


@pytest.fixture(scope="module", params=list(LABEL_DATASETS))
def label_dataset(request, nnunet_folders):
    """The region-only or ignore-only dataset of the region/ignore integration test, planned and preprocessed."""
    dataset_id, regions, ignore = LABEL_DATASETS[request.param]
    name = f"ShowMaps{request.param.capitalize()}"
    write_label_dataset(nnunet_folders.raw, dataset_id, name, regions, ignore)
    run_cli(["nnUNetv2_plan_and_preprocess", "-d", str(dataset_id), "-c", "2d", "-np", "2", "-npfp", "2"],
            nnunet_folders.environ())
    return request.param, PreprocessedDataset(nnunet_folders, dataset_id, f"Dataset{dataset_id:03d}_{name}")


def _segmentation(dataset, identifier: str) -> np.ndarray:
    """The preprocessed segmentation read with blosc2, -1 (outside the crop) -> 0 as nnU-Net's RemoveLabelTansform."""
    data_folder = dataset.preprocessed_folder / "nnUNetPlans_2d"
    seg = np.asarray(blosc2.open(str(data_folder / f"{identifier}_seg.b2nd"), mode="r")[:])[0].astype(np.int16)
    seg[seg < 0] = 0
    return seg


def _nnunet_region_target(seg: np.ndarray) -> torch.Tensor:
    """nnU-Net's training target of a region dataset: its ConvertSegmentationToRegionsTransform, ignore channel last."""
    transform = ConvertSegmentationToRegionsTransform([list(region) for region in REGIONS], channel_in_seg=0)
    return transform(segmentation=torch.from_numpy(seg[None].copy()))["segmentation"][None]


@pytest.mark.parametrize("kind", ["rrw", "boundary"])
def test_map_is_the_datasets_codec_decode_of_the_cache(label_dataset, kind):
    setup, dataset = label_dataset
    source = PreprocessedSource.from_names(dataset.dataset_id, "2d")
    identifier = source.identifiers()[0]
    maps = read_case_maps(source, kind, identifier)
    seg = _segmentation(dataset, identifier)
    stored = torch.from_numpy(np.load(f"{maps.cache_folder}/{identifier}.npy").astype(np.float32))[None]
    spacing = source.case_spacing(identifier)
    if setup == "regions":
        codec = dataset_codec(kind, NUM_CLASSES, REGIONS)
        assert isinstance(codec, RegionCodec)
        decoded = codec.decode(stored, _nnunet_region_target(seg))
        decoded = decoded if isinstance(decoded, torch.Tensor) else decoded.dense()
        assert maps.z.shape == (len(REGIONS), 2, *seg.shape) and maps.regions == REGIONS
        np.testing.assert_array_equal(maps.z, decoded.reshape(len(REGIONS), 2, *seg.shape).numpy())
        expected = region_maps(kind, seg, REGIONS, spacing)  # the map kind's own numpy maps, (R, 2, *spatial)
        annotated = np.ones(expected.shape, dtype=bool)
    else:
        assert (seg == IGNORE).any()
        codec = dataset_codec(kind, NUM_CLASSES, None, IGNORE)
        assert isinstance(codec, IgnoreLabelCodec)
        decoded = codec.decode(stored, torch.from_numpy(seg.astype(np.int64))[None, None])
        decoded = decoded if isinstance(decoded, torch.Tensor) else decoded.dense()
        assert maps.z.shape == (NUM_CLASSES, *seg.shape) and maps.regions is None
        np.testing.assert_array_equal(maps.z, decoded[0].numpy())
        expected = compute_with_ignore(kind, seg, NUM_CLASSES, spacing, IGNORE)
        annotated = np.broadcast_to(seg != IGNORE, expected.shape)
    tolerance = {"atol": FLOAT16_ATOL} if kind == "rrw" else {"atol": 0.02, "rtol": 2e-3}
    np.testing.assert_allclose(maps.z[annotated], expected[annotated], **tolerance)


def test_columns_are_each_regions_or_classs_map_with_its_dataset_name(label_dataset):
    setup, dataset = label_dataset
    labels = json.loads((dataset.raw_folder / "dataset.json").read_text())["labels"]
    fig, maps, fraction, _ = show_maps.render(str(dataset.dataset_id), "2d", kind="rrw", slices=2)
    if setup == "regions":
        names = {tuple(np.atleast_1d(v).tolist()): k for k, v in labels.items()}
        columns = [column for i, r in enumerate(REGIONS)
                   for column in ((f"z_in: {names[r]} {list(r)}", maps.z[i, 1]),
                                  (f"z_out: not {names[r]} {list(r)}", maps.z[i, 0]))]
        scope = "rectification check (two-class maps per region, region mask as labels): 0.00% of voxels"
    else:
        names = {v: k for k, v in labels.items()}
        columns = [(f"z: class {k} ({names[k]})", maps.z[k]) for k in range(NUM_CLASSES)]
        scope = "rectification check: 0.00% of annotated voxels"
    axes = np.array(fig.axes[:-1]).reshape(-1, 2 + len(columns))
    assert [ax.get_title() for ax in axes[0, 2:]] == [title for title, _ in columns]
    for row in axes:
        index = int(row[0].get_ylabel().split()[-1])
        assert ((maps.labels[index] > 0) & (maps.labels[index] != IGNORE)).any()  # annotated foreground shown
        for ax, (_, z) in zip(row[2:], columns):
            np.testing.assert_array_equal(ax.images[0].get_array(), z[index])
    assert fraction == 0 and scope in fig._suptitle.get_text() and "(rectified)" in fig._suptitle.get_text()
    plt.close(fig)


def test_command_draws_a_region_or_ignore_dataset(label_dataset, tmp_path):
    """The CLI, as a user runs it: a PNG and rc 0; the old one-line refusal of region datasets is gone."""
    _, dataset = label_dataset
    out = tmp_path / "maps.png"
    result = run_cli(["nnunet-lossplug", "show-maps", "-d", str(dataset.dataset_id), "-c", "2d", "-o", str(out)],
                     dataset.folders.environ())  # fails the test with the output unless rc 0
    assert out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and out.stat().st_size > 10_000
    assert "rectification check: 0.00% unstable voxels" in result.stdout
    assert "does not draw" not in result.stdout + result.stderr
