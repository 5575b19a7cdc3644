"""``nnunet-lossplug show-maps``: the plotted map is the cached map decoded as training decodes it.

The expected values are rebuilt here from the files alone: the cache's ``.npy`` read with numpy, the
segmentation read with blosc2, and the codec's documented formula (RRW: ``z_k = q - 1`` inside class k,
1 elsewhere; RW-Boundary: ``-|D_k|`` inside, ``+|D_k|`` outside), not by calling the code under test.
"""

from __future__ import annotations

import json

import blosc2
import matplotlib.pyplot as plt
import numpy as np
import pytest
from conftest import DATASET_ID

from nnunet_lossplug.cli import main, show_maps

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
    fig, maps, _ = show_maps.render(str(DATASET_ID), "2d", kind=kind, case=identifier, slices=3)
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


def test_maps_is_the_option_of_precompute_and_show_maps_and_kind_stays_hidden():
    from nnunet_lossplug.cli import build_parser

    parser = build_parser()
    for command in ("precompute", "show-maps"):
        assert parser.parse_args([command, "-d", "1", "-c", "2d", "--maps", "boundary"]).maps == "boundary"
    assert parser.parse_args(["show-maps", "-d", "1", "-c", "2d", "--kind", "ac"]).maps == "ac"


def test_labels_of_the_dataset_name_the_map_columns(preprocessed_dataset):
    labels = json.loads((preprocessed_dataset.raw_folder / "dataset.json").read_text())["labels"]
    fig, _, _ = show_maps.render(str(DATASET_ID), "2d", kind="rrw", case="heart_001", slices=1)
    titles = [ax.get_title() for ax in fig.axes[2:2 + NUM_CLASSES]]
    assert titles == [f"z: class {v} ({k})" for k, v in sorted(labels.items(), key=lambda item: item[1])]
    plt.close(fig)
