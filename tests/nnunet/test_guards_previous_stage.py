"""The cascade's start-up check: every case of the fold needs the previous stage's prediction (real files)."""

from __future__ import annotations

from types import SimpleNamespace

import pytest

from nnunet_lossplug.nnunet.errors import PreviousStageMissingError
from nnunet_lossplug.nnunet.trainer.guards import check_previous_stage


def cascade_trainer(folder, cascaded: bool = True) -> SimpleNamespace:
    return SimpleNamespace(
        folder_with_segs_from_previous_stage=str(folder), is_cascaded=cascaded, configuration_name="3d_cascade_fullres",
        do_split=lambda: (["case_0", "case_1"], ["case_2"]),
        configuration_manager=SimpleNamespace(previous_stage_name="3d_lowres"),
        plans_manager=SimpleNamespace(dataset_name="Dataset993_Tiny"))


def test_a_missing_prediction_is_named_with_the_command(tmp_path):
    for case in ("case_0", "case_2"):
        (tmp_path / f"{case}.npz").write_bytes(b"")
    with pytest.raises(PreviousStageMissingError, match=r"1 are missing \(e\.g\. case_1\).*"
                                                        r"nnUNetv2_train Dataset993_Tiny 3d_lowres all -tr"):
        check_previous_stage(cascade_trainer(tmp_path))


def test_complete_predictions_and_other_configurations_pass(tmp_path):
    for case in ("case_0", "case_1", "case_2"):
        (tmp_path / f"{case}.npz").write_bytes(b"")
    check_previous_stage(cascade_trainer(tmp_path))
    check_previous_stage(cascade_trainer(tmp_path / "absent", cascaded=False))
    with pytest.raises(PreviousStageMissingError, match="3 are missing"):
        check_previous_stage(cascade_trainer(tmp_path / "absent"))
