"""The map cache's key for configurations that inherit from another: ``3d_cascade_fullres``.

nnU-Net's plans store the cascade's second stage as ``{"inherits_from": "3d_fullres", "previous_stage": ...}``:
its spacing, patch and data identifier are 3d_fullres's. The key must change when those change.
"""

from __future__ import annotations

import copy
from pathlib import Path

from nnunet_lossplug.nnunet.map_cache.source import PreprocessedSource

PLANS = {
    "dataset_name": "Dataset993_X",
    "plans_name": "nnUNetPlans",
    "transpose_forward": [0, 1, 2],
    "configurations": {
        "3d_fullres": {"data_identifier": "nnUNetPlans_3d_fullres", "spacing": [2.0, 1.5, 1.5],
                       "patch_size": [12, 24, 20]},
        "3d_lowres": {"data_identifier": "nnUNetPlans_3d_lowres", "spacing": [2.7, 2.0, 2.0],
                      "patch_size": [12, 24, 20], "next_stage": "3d_cascade_fullres"},
        "3d_cascade_fullres": {"inherits_from": "3d_fullres", "previous_stage": "3d_lowres"},
    },
}
for _configuration in PLANS["configurations"].values():  # what nnU-Net's ConfigurationManager reads on creation
    if "inherits_from" not in _configuration:
        _configuration["architecture"] = {"network_class_name": "PlainConvUNet", "arch_kwargs": {},
                                          "_kw_requires_import": []}
DATASET_JSON = {"labels": {"background": 0, "a": 1}}


def _fingerprint(plans: dict, configuration: str) -> str:
    return PreprocessedSource("Dataset993_X", "nnUNetPlans", configuration, Path("/nonexistent"), plans,
                              DATASET_JSON).plans_fingerprint


def test_the_cascade_key_follows_the_spacing_it_inherits():
    replanned = copy.deepcopy(PLANS)
    replanned["configurations"]["3d_fullres"]["spacing"] = [1.0, 1.0, 1.0]
    assert _fingerprint(replanned, "3d_cascade_fullres") != _fingerprint(PLANS, "3d_cascade_fullres")
    # the lowres stage does not inherit: a re-planned 3d_fullres leaves its key alone
    assert _fingerprint(replanned, "3d_lowres") == _fingerprint(PLANS, "3d_lowres")


def test_each_configuration_has_its_own_key():
    keys = {c: _fingerprint(PLANS, c) for c in PLANS["configurations"]}
    assert len(set(keys.values())) == 3
