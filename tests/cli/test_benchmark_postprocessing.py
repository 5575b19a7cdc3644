"""The benchmark's use of nnU-Net's post-processing choice and of its own run records, with real files: nnU-Net's
``postprocessing.pkl`` is read without trusting it (anything but nnU-Net's component removal is refused before
``nnUNetv2_apply_postprocessing`` would unpickle it), and a finished run is reused only with the same settings."""

from __future__ import annotations

import json
import os
import pickle

import numpy as np
import pytest
from batchgenerators.utilities.file_and_folder_operations import save_pickle
from nnunetv2.postprocessing.remove_connected_components import remove_all_but_largest_component_from_segmentation

from nnunet_lossplug.benchmark.postprocessing import check_postprocessing_pickle, describe_steps
from nnunet_lossplug.benchmark.running import RUN_RECORD, differing_settings, finished_record


def test_the_choice_nnunet_writes_is_read_as_names_and_labels(tmp_path):
    choice = tmp_path / "postprocessing.pkl"
    function = remove_all_but_largest_component_from_segmentation
    save_pickle(([function, function], [{"labels_or_regions": [np.int64(1), np.int64(2)]},
                                        {"labels_or_regions": np.int64(2)}]), str(choice))  # as nnU-Net saves it
    steps = check_postprocessing_pickle(choice)
    assert steps == [(function.__name__, {"labels_or_regions": [1, 2]}), (function.__name__, {"labels_or_regions": 2})]
    text = describe_steps(steps, {"1": "organ", "2": "lesion"})
    assert text == "largest foreground component; largest component of lesion"
    assert describe_steps([], {}).startswith("nothing")


class _RunsACommand:
    def __reduce__(self):
        return (os.system, ("echo the file ran a command",))


def test_a_choice_that_would_run_code_is_refused_without_running_it(tmp_path):
    choice = tmp_path / "postprocessing.pkl"
    choice.write_bytes(pickle.dumps(([_RunsACommand()], [{}])))
    with pytest.raises(ValueError, match=r"not a post-processing choice written by nnU-Net \(refers to posix.system"):
        check_postprocessing_pickle(choice)


def test_a_finished_run_is_reused_only_with_the_same_settings(tmp_path):
    settings = {"dataset": "Dataset501_Organ", "seed": 3, "epochs": 12}
    assert finished_record(tmp_path, settings) is None  # never finished
    (tmp_path / RUN_RECORD).write_text(json.dumps({"settings": settings, "raw": {}}))
    assert finished_record(tmp_path, settings) == {"settings": settings, "raw": {}}
    other = {**settings, "epochs": 50}
    assert finished_record(tmp_path, other) is None and differing_settings(tmp_path, other) == ["epochs"]
    (tmp_path / RUN_RECORD).write_text("{not json")
    assert finished_record(tmp_path, settings) is None
