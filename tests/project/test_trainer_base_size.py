"""``LossPlugTrainer``'s module stays small: behaviour goes into the helper modules of ``nnunet/trainer/``."""

from __future__ import annotations

from pathlib import Path

BASE = Path(__file__).resolve().parents[2] / "nnunet_lossplug" / "nnunet" / "trainer" / "base.py"
MAX_LINES = 250


def test_the_trainer_base_module_has_at_most_250_lines():
    lines = len(BASE.read_text().splitlines())
    assert lines <= MAX_LINES, (
        f"{BASE.name} has {lines} lines (at most {MAX_LINES}): move a cohesive piece into a helper module of "
        f"nnunet_lossplug/nnunet/trainer/ (a mixin such as epoch_hooks.EpochHooks, or a helper object) instead.")
