"""The regions and ignore-label page's examples work as printed: its PyTorch example runs (its own assert checks
the zero gradient on ignored voxels) and its dataset.json excerpt is what nnU-Net and ``evaluate`` read. The page's
parts are addressed by heading anchor (``docs/regions_and_ignore_labels.md#in-plain-pytorch``)."""

from __future__ import annotations

import json

from helpers.project_documents import DOCS, code_blocks, section

PAGE = DOCS / "regions_and_ignore_labels.md"


def test_readme_region_example_runs():
    blocks = code_blocks(section(PAGE, "in-plain-pytorch"), "python")
    assert len(blocks) == 1
    exec(compile(blocks[0], str(PAGE), "exec"), {})  # its own assert checks the zero gradient


def test_readme_region_json_is_what_nnunet_reads(tmp_path):
    from nnunetv2.utilities.label_handling.label_handling import LabelManager

    from nnunet_lossplug.evaluation.label_setup import evaluation_labels

    block = code_blocks(section(PAGE, "what-nnu-net-calls-regions-and-ignore-labels"), "json")[0]
    content = json.loads("{" + block.strip() + "}")
    manager = LabelManager(content["labels"], content["regions_class_order"])
    assert manager.has_regions and manager.ignore_label == 4 and len(manager.foreground_regions) == 3
    path = tmp_path / "dataset.json"
    path.write_text(json.dumps(content))
    setup = evaluation_labels(path)
    assert setup.regions == {1: (1, 2, 3), 2: (2, 3), 3: (3,)} and setup.ignore_label == 4
