"""Label setups: region-based datasets and ignore labels are accepted (docs/conventions.md#regions); what stays
refused says why."""

from __future__ import annotations

import pytest
import torch
from nnunetv2.utilities.label_handling.label_handling import LabelManager

from nnunet_lossplug.losses import DiceLoss, LossMixture, RegionWiseLoss
from nnunet_lossplug.nnunet.map_cache.source import UnsupportedDatasetError, check_label_setup
from nnunet_lossplug.nnunet.trainer.label_setup import LabelSetup

BRATS_LIKE = {"background": 0, "whole tumour": [1, 2, 3], "core": [2, 3], "enhancing": 3}


class PlainLoss(torch.nn.Module):
    inputs = ("target",)

    def forward(self, logits, target):
        return logits.mean()


def test_region_based_and_ignore_label_datasets_pass():
    check_label_setup(LabelManager(BRATS_LIKE, regions_class_order=[1, 2, 3]))
    check_label_setup(LabelManager({"background": 0, "heart": 1, "ignore": 2}, regions_class_order=None))
    check_label_setup(LabelManager({**BRATS_LIKE, "ignore": 4}, regions_class_order=[1, 2, 3]))
    check_label_setup(LabelManager({"background": 0, "RV": 1, "MYO": 2, "LV": 3}, regions_class_order=None))


def test_label_setup_reads_nnunets_label_manager():
    setup = LabelSetup.from_label_manager(LabelManager({**BRATS_LIKE, "ignore": 4}, regions_class_order=[1, 2, 3]))
    assert setup == LabelSetup(regions=3, ignore_label=4)
    assert setup.describe() == "3 sigmoid regions, ignore label 4 masked"


def test_an_ignore_label_that_is_not_the_label_count_is_refused_naming_the_fix():
    labels = LabelManager({"background": 0, "heart": 1, "lung": 5, "ignore": 6}, regions_class_order=None)
    with pytest.raises(UnsupportedDatasetError, match="ignore label 6") as err:
        check_label_setup(labels)
    assert "Renumber the labels" in str(err.value)


def test_split_gives_the_losses_target_and_the_annotation_mask():
    labels = torch.tensor([[[[0, 1, 4], [2, 4, 3]]]])
    target, mask = LabelSetup(ignore_label=4).split(labels)
    assert target.tolist() == [[[[0, 1, 0], [2, 0, 3]]]]
    assert mask.tolist() == [[[[True, True, False], [True, False, True]]]]
    regions = torch.tensor([[[[1, 0]], [[1, 0]], [[0, 1]]]])  # 2 regions and the ignore channel
    target, mask = LabelSetup(regions=2, ignore_label=4).split(regions)
    assert target.shape == (1, 2, 1, 2) and mask.tolist() == [[[[True, False]]]]


def test_region_mode_is_switched_on_and_losses_without_it_are_refused():
    mixture = LossMixture(DiceLoss(), RegionWiseLoss())
    LabelSetup(regions=3).configure_loss(mixture, "T")
    assert mixture.first.regions and mixture.second.regions
    with pytest.raises(UnsupportedDatasetError, match="PlainLoss has no region"):
        LabelSetup(regions=3).configure_loss(PlainLoss(), "T")
    with pytest.raises(UnsupportedDatasetError, match="PlainLoss cannot skip the voxels of the ignore label 4"):
        LabelSetup(ignore_label=4).configure_loss(PlainLoss(), "T")


def test_map_placements_that_need_a_bare_label_map_are_refused():
    with pytest.raises(UnsupportedDatasetError, match="map_placement='worker'.*precomputed"):
        LabelSetup(regions=3).check_placement("worker", True, "nnUNetTrainerRRWOnline")
    with pytest.raises(UnsupportedDatasetError, match="map_placement='loss'"):
        LabelSetup(ignore_label=4).check_placement("loss", True, "T")
    LabelSetup(ignore_label=4).check_placement("worker", True, "T")  # the ignore codec encodes per patch
    LabelSetup(regions=3).check_placement("loss", False, "T")  # no map: nothing to compute
