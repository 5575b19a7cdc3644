"""The lines a plugin trainer writes about its loss at start: the sign of the RW loss and its stray components."""

from __future__ import annotations

from nnunet_lossplug.losses import CrossEntropyLoss, DeepSupervisionLoss, LossMixture, RegionWiseLoss
from nnunet_lossplug.nnunet.trainer.start_notes import log_start_notes, stray_components_note
from nnunet_lossplug.trainers import nnUNetTrainerRRW, nnUNetTrainerRRWCEGradual


def test_the_rw_loss_alone_gets_the_post_processing_line_and_a_mixture_does_not() -> None:
    assert "post-processing" in stray_components_note(RegionWiseLoss())
    assert stray_components_note(LossMixture(CrossEntropyLoss(), RegionWiseLoss(), schedule="gradual")) is None
    assert stray_components_note(CrossEntropyLoss()) is None


def test_the_trainers_log_it_once_at_start() -> None:
    lines: list[str] = []
    rrw = DeepSupervisionLoss(RegionWiseLoss(), weights=(1.0, 0.5), num_outputs=2)
    log_start_notes(nnUNetTrainerRRW, rrw, lines.append)
    assert sum("post-processing" in line for line in lines) == 1
    assert any("negative by design" in line for line in lines)
    lines.clear()
    mixture = LossMixture(CrossEntropyLoss(), RegionWiseLoss(), schedule="gradual")
    gradual = DeepSupervisionLoss(mixture, weights=(1.0, 0.5), num_outputs=2)
    log_start_notes(nnUNetTrainerRRWCEGradual, gradual, lines.append)
    assert not any("post-processing" in line for line in lines)
