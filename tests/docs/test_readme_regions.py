"""The README's "RW maps for regions and sparse labels" example runs as printed."""

from __future__ import annotations

import re
from pathlib import Path

README = Path(__file__).resolve().parents[2] / "README.md"


def _section() -> str:
    text = README.read_text()
    start = text.index("## RW maps for regions and sparse labels")
    return text[start: text.index("\n## ", start + 1)]


def test_readme_region_example_runs():
    blocks = re.findall(r"```python\n(.*?)```", _section(), flags=re.S)
    assert len(blocks) == 1
    exec(compile(blocks[0], "README.md", "exec"), {})  # its own assert checks the zero gradient


def test_readme_region_json_is_what_nnunet_reads(tmp_path):
    import json

    from nnunetv2.utilities.label_handling.label_handling import LabelManager

    from nnunet_lossplug.evaluation.label_setup import evaluation_labels

    block = re.findall(r"```json\n(.*?)```", _section(), flags=re.S)[0]
    content = json.loads("{" + block.strip() + "}")
    manager = LabelManager(content["labels"], content["regions_class_order"])
    assert manager.has_regions and manager.ignore_label == 4 and len(manager.foreground_regions) == 3
    path = tmp_path / "dataset.json"
    path.write_text(json.dumps(content))
    setup = evaluation_labels(path)
    assert setup.regions == {1: (1, 2, 3), 2: (2, 3), 3: (3,)} and setup.ignore_label == 4
