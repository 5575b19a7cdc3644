"""The tests' one way to import an example script (``examples/`` folders are not packages)."""

from __future__ import annotations

import importlib
import sys
from pathlib import Path
from types import ModuleType

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"
ACDC_DIR = EXAMPLES / "acdc"


def load_example(name: str, folder: Path = ACDC_DIR) -> ModuleType:
    """Import ``folder/name.py`` as the top-level module ``name`` (as nnU-Net imports trainer files), once.

    The folder goes on ``sys.path`` so that the script's own imports of its siblings work.
    """
    if str(folder) not in sys.path:
        sys.path.insert(0, str(folder))
    return importlib.import_module(name)
