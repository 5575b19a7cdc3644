"""The shipped losses under ``torch.compile``, as the trainer compiles them where nnU-Net compiles its loss.

nnU-Net's ``_build_loss`` compiles its Dice loss when ``_do_i_compile()`` (on CUDA, unless ``nnUNet_compile`` says
no); the plugin's ``_build_loss`` then compiles its per-level losses the same way
(:func:`~nnunet_lossplug.nnunet.trainer.loss.compile_loss_parts`). Checked on a CPU, part of the GPU-emulation
tier that protects the GPU path until a GPU measures it:

- every shipped loss in every label set-up traces in one graph (``torch._dynamo.explain``: 0 graph breaks; a
  host read such as ``bool(tensor)`` in a loss would break it);
- compiled with inductor (CPU code), every shipped loss gives the eager value and gradient;
- a trainer whose ``_do_i_compile()`` says yes compiles its loss parts, one that says no does not.

Marked ``compile`` (inductor compiles C++ on a CPU: minutes); the fast tier leaves it out with
``-m "not integration and not compile"``.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
from helpers.shipped_losses import LABEL_SETUPS, ShippedLoss, disc_labels, loss_arguments, shipped_losses
from helpers.trainer_steps import trainer_class

from nnunet_lossplug.losses import call_loss
from nnunet_lossplug.nnunet.trainer.loss import compile_loss_parts, loss_is_compiled

pytestmark = pytest.mark.compile

COUNTS = {"classes": (9e6, 5e5, 4e5, 1e5), "regions": (1e6, 5e5, 1e5)}
SHAPE = (2, 20, 20)


def cases(setup: str) -> list[ShippedLoss]:
    return shipped_losses(setup, np.asarray(COUNTS["regions" if setup.startswith("regions") else "classes"]))


def inputs(case: ShippedLoss) -> tuple[torch.Tensor, dict]:
    channels = len(COUNTS["regions" if case.regions else "classes"])
    generator = torch.Generator().manual_seed(0)
    labels = disc_labels(SHAPE[0], SHAPE[1:], (0.2, 0.1, 0.05))
    logits = torch.randn((SHAPE[0], channels, *SHAPE[1:]), generator=generator) * 2
    return logits, loss_arguments(case, labels, channels, generator)


@pytest.fixture(autouse=True)
def _fresh_dynamo():
    torch._dynamo.reset()
    yield
    torch._dynamo.reset()


@pytest.mark.parametrize("setup", LABEL_SETUPS)
def test_every_shipped_loss_traces_without_a_graph_break(setup):
    broken = []
    for case in cases(setup):
        logits, arguments = inputs(case)
        for leaf in leaves(case.loss):
            torch._dynamo.reset()
            explanation = torch._dynamo.explain(lambda x, leaf=leaf, kw=arguments: call_loss(leaf, x, **kw))(logits)
            if explanation.graph_break_count:
                reasons = "; ".join(str(b.reason).splitlines()[0] for b in explanation.break_reasons)
                broken.append(f"{case} / {type(leaf).__name__}: {explanation.graph_break_count} breaks ({reasons})")
    assert not broken, "\n".join(broken)


def leaves(loss: torch.nn.Module) -> list[torch.nn.Module]:
    """The modules ``compile_loss_parts`` compiles (a mixture's components; else the loss itself)."""
    components = [m for m in loss.modules() if hasattr(m, "inputs") and type(m).__name__ != "LossMixture"]
    return components or [loss]


def test_compiled_losses_give_the_eager_value_and_gradient():
    mismatches = []
    chosen = cases("classes") + [c for c in cases("regions_ignore") if c.trainer in REGION_SUBSET]
    for case in chosen:
        logits, arguments = inputs(case)
        eager_x = logits.clone().requires_grad_(True)
        eager = call_loss(case.loss, eager_x, **arguments)
        eager.backward()
        compiled_names = compile_loss_parts(case.loss)
        assert compiled_names and loss_is_compiled(case.loss), case
        compiled_x = logits.clone().requires_grad_(True)
        compiled = call_loss(case.loss, compiled_x, **arguments)
        compiled.backward()
        try:
            torch.testing.assert_close(compiled.detach(), eager.detach(), rtol=1e-5, atol=1e-6)
            torch.testing.assert_close(compiled_x.grad, eager_x.grad, rtol=1e-4, atol=1e-7)
        except AssertionError as error:
            mismatches.append(f"{case}: {str(error).splitlines()[0]}")
    assert not mismatches, "\n".join(mismatches)


#: on regions with an ignore mask, one trainer per loss body (RW rectified and dense, wCE, HD, Dice + CE, focal)
REGION_SUBSET = ("nnUNetTrainerRRW", "nnUNetTrainerRWBoundary", "nnUNetTrainerCERRWWeighted", "nnUNetTrainerHD",
                 "nnUNetTrainerSADiceWMLACE", "nnUNetTrainerFocal")


@pytest.mark.integration
def test_the_trainer_compiles_its_loss_parts_where_nnunet_compiles(preprocessed_dataset):
    from batchgenerators.utilities.file_and_folder_operations import load_json

    folder = preprocessed_dataset.preprocessed_folder
    plans = {**load_json(str(folder / "nnUNetPlans.json")), "continue_training": False}
    dataset_json = load_json(str(folder / "dataset.json"))
    rrw_dice = trainer_class("nnUNetTrainerRRWDiceEqual")

    class CompilingTrainer(rrw_dice):
        """nnU-Net's decision on a GPU: compile (on a CPU its _do_i_compile() is always False)."""

        def _do_i_compile(self) -> bool:
            return True

    for cls, expected in ((rrw_dice, False), (CompilingTrainer, True)):
        trainer = cls(dict(plans), "2d", 0, dataset_json, device=torch.device("cpu"))  # nnU-Net pops a key
        loss = trainer._build_loss()
        assert loss_is_compiled(loss.criterion) is expected, cls.__name__
        if expected:  # the components are compiled, the mixture and deep supervision stay eager
            mixture = loss.criterion.loss
            assert loss_is_compiled(mixture.first) and loss_is_compiled(mixture.second)
            assert getattr(mixture, "_compiled_call_impl", None) is None


def test_a_compiled_loss_s_bad_target_is_still_named_after_the_nan():
    """Compiled, a loss checks on the device (NaN); the stop's diagnosis runs it eagerly to name the label."""
    from types import SimpleNamespace

    from nnunet_lossplug.losses import DiceLoss
    from nnunet_lossplug.nnunet.trainer.guards import input_problem

    loss = DiceLoss()
    loss.compile()
    labels = torch.zeros(1, 1, 8, 8, dtype=torch.long)
    labels[0, 0, 0, 0] = 5
    logits = torch.randn(1, 3, 8, 8)
    assert torch.isnan(loss(logits, labels))
    trainer = SimpleNamespace(network=torch.nn.Identity(), loss=loss, device=torch.device("cpu"))
    problem = input_problem(trainer, {"data": logits, "target": labels})
    assert "label values must lie in [0, K) = [0, 3), found [5]" in problem, problem
