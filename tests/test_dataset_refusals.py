"""Datasets the softmax losses cannot train on are refused when a trainer starts, with the reason and a way out."""

from __future__ import annotations

import pytest
from nnunetv2.utilities.label_handling.label_handling import LabelManager

from nnunet_lossplug.nnunet.source import UnsupportedDatasetError, check_label_setup


def test_region_based_dataset_is_refused_naming_the_alternative():
    regions = LabelManager({"background": 0, "whole tumour": [1, 2, 3], "core": [2, 3], "enhancing": 3},
                           regions_class_order=[1, 2, 3])
    with pytest.raises(UnsupportedDatasetError, match="region-based") as err:
        check_label_setup(regions)
    assert "nnUNetTrainer" in str(err.value) and "exclusive classes" in str(err.value)


def test_ignore_label_is_refused_naming_the_fix():
    with pytest.raises(UnsupportedDatasetError, match="ignore label \\(2\\)") as err:
        check_label_setup(LabelManager({"background": 0, "heart": 1, "ignore": 2}, regions_class_order=None))
    assert "dataset.json" in str(err.value)


def test_ordinary_labels_pass():
    check_label_setup(LabelManager({"background": 0, "RV": 1, "MYO": 2, "LV": 3}, regions_class_order=None))
