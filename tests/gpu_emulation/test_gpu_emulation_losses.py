"""The GPU path of every shipped loss, emulated on CI's CPU: device placement, synchronisations, autocast, faults.

This tier (``tests/gpu_emulation/``) is what protects the GPU path until a GPU measures it (``benchmarks/gpu_check.py``
on a GPU prints the same synchronisation count and whether the loss ran compiled). It emulates what CUDA does
differently from a CPU with :class:`~nnunet_lossplug.nnunet.trainer.host_syncs.HostSyncCounter` in device
emulation: inputs are declared device tensors, every operation with a device input makes device outputs, a
read of a device tensor on the host counts as a synchronisation, and ``strict=True`` fails an operation mixing a
device tensor with a host tensor of one or more dimensions, as CUDA's same-device rule does.

Every shipped per-level loss (each distinct ``loss_spec`` / ``rw_map`` of the shipped trainers, built from its
declaration) in three label set-ups (classes; classes with an ignore mask; sigmoid regions with an ignore mask),
forward and backward, inside the trainer's deferred checks:

- no host tensor mixes with device tensors and no value is read on the host (0 synchronisations);
- float16 and bfloat16 logits under autocast give the float32 loss (the losses compute in float32);
- a bad target still stops: eagerly with its own ``ValueError``, deferred as a NaN loss (which the trainer names).

The training step itself is counted in ``test_gpu_emulation_trainer_syncs.py``; compilation is in
``test_gpu_emulation_compile.py``.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from helpers.shipped_losses import LABEL_SETUPS, ShippedLoss, disc_labels, loss_arguments, shipped_losses

from nnunet_lossplug.losses import RectifiedMap, call_loss, deferred_input_checks
from nnunet_lossplug.losses.regions import masked_voxel_mean
from nnunet_lossplug.nnunet.trainer.host_syncs import HostSyncCounter

COUNTS = {"classes": (9e6, 5e5, 4e5, 1e5), "regions": (1e6, 5e5, 1e5)}
SHAPE = (2, 24, 24)


def cases(setup: str) -> list[ShippedLoss]:
    return shipped_losses(setup, np.asarray(COUNTS["regions" if setup.startswith("regions") else "classes"]))


def channels(case: ShippedLoss) -> int:
    return len(COUNTS["regions"]) if case.regions else len(COUNTS["classes"])


def inputs(case: ShippedLoss, seed: int = 0) -> tuple[torch.Tensor, dict]:
    generator = torch.Generator().manual_seed(seed)
    labels = disc_labels(SHAPE[0], SHAPE[1:], (0.2, 0.1, 0.04), seed=seed)
    logits = torch.randn((SHAPE[0], channels(case), *SHAPE[1:]), generator=generator) * 2
    return logits, loss_arguments(case, labels, channels(case), generator)


def on_device(counter: HostSyncCounter, arguments: dict) -> None:
    for value in arguments.values():
        if isinstance(value, RectifiedMap):
            for part in (value.labels, value.true_value, value.other_value):
                if isinstance(part, torch.Tensor):
                    counter.mark(part)
        elif isinstance(value, torch.Tensor):
            counter.mark(value)


@pytest.mark.parametrize("setup", LABEL_SETUPS)
def test_every_loss_stays_on_the_device_and_reads_nothing_back(setup):
    problems = []
    for case in cases(setup):
        logits, arguments = inputs(case)
        logits.requires_grad_(True)
        counter = HostSyncCounter("cpu", [case.loss], strict=True)
        counter.mark(logits)
        on_device(counter, arguments)
        try:
            with counter, deferred_input_checks():
                value = call_loss(case.loss, logits, **arguments)
                value.backward()
            value = float(value.detach())
        except RuntimeError as error:
            problems.append(f"{case}: {error}")
            continue
        if counter.count or not math.isfinite(value) or logits.grad is None:
            problems.append(f"{case}: {counter.count} synchronisations {counter.events}, value {value}")
    assert not problems, "\n".join(problems)


def test_the_emulation_sees_a_host_tensor_and_a_host_read():
    """The checks above can fail: a host tensor mixed in, and an eager label check, are caught."""
    logits = torch.randn(2, 4, 8, 8)
    with HostSyncCounter("cpu", strict=True) as counter:
        counter.mark(logits)
        with pytest.raises(RuntimeError, match="same device"):
            _ = logits * torch.ones(4, 1, 1)  # created without device=: a host tensor on a GPU
        _ = logits * torch.ones(4, 1, 1, device=logits.device) * torch.tensor(2.0)  # device tensor, 0-dim host
        assert counter.count == 0
        labels = torch.zeros(2, 1, 8, 8, dtype=torch.long).to(logits.device)
        case = next(c for c in cases("classes") if c.trainer == "nnUNetTrainerDiceOnly")
        call_loss(case.loss, logits, target=labels)  # eager: the label check reads the device
    assert counter.count >= 1, counter.events


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16])
@pytest.mark.parametrize("setup", LABEL_SETUPS)
def test_low_precision_logits_under_autocast_give_the_float32_loss(setup, dtype):
    problems = []
    for case in cases(setup):
        logits, arguments = inputs(case, seed=1)
        low = logits.to(dtype)
        reference = call_loss(case.loss, low.float(), **arguments)
        with torch.autocast("cpu", dtype=dtype), deferred_input_checks():
            value = call_loss(case.loss, low, **arguments)
        if value.dtype != torch.float32 or not torch.allclose(value, reference, rtol=1e-5, atol=1e-7):
            problems.append(f"{case}: {value.dtype} {float(value)} against float32 {float(reference)}")
    assert not problems, "\n".join(problems)


@pytest.mark.parametrize("setup", LABEL_SETUPS)
def test_a_bad_target_is_refused_eagerly_and_poisons_the_loss_when_deferred(setup):
    checked = 0
    for case in cases(setup):
        logits, arguments = inputs(case)
        if "target" not in arguments or isinstance(arguments.get("rw_map"), RectifiedMap):
            continue  # with a rectified map the loss takes its labels from the map, which its codec wrote
        bad = arguments["target"].clone()
        bad[0, 0, 0, 0] = 7  # a label outside the classes / a region value other than 0 and 1
        arguments["target"] = bad
        message = "label values must lie in|region target must hold 0"
        if arguments["mask"] is not None:
            arguments["mask"][0, 0, 0, 0] = True  # annotated: an ignored voxel is not checked
        with pytest.raises(ValueError, match=message):
            call_loss(case.loss, logits, **arguments)
        with deferred_input_checks():
            assert math.isnan(float(call_loss(case.loss, logits, **arguments))), case
        checked += 1
    assert checked >= 10


def test_a_negative_distance_map_is_refused_eagerly_and_poisons_when_deferred():
    case = next(c for c in cases("classes") if c.map_kind == "distance")
    logits, arguments = inputs(case)
    arguments["rw_map"] = arguments["rw_map"].clone()
    arguments["rw_map"][0, 1, 3, 3] = -1.0
    with pytest.raises(ValueError, match="must be non-negative"):
        call_loss(case.loss, logits, **arguments)
    with deferred_input_checks():
        assert math.isnan(float(call_loss(case.loss, logits, **arguments)))


def test_a_masked_mean_without_annotated_voxels_is_zero_with_zero_gradient_and_no_read():
    values = torch.randn(2, 3, 4, 4, requires_grad=True)
    mask = torch.zeros(2, 1, 4, 4, dtype=torch.bool)
    with HostSyncCounter("cpu") as counter:
        counter.mark(values)
        counter.mark(mask)
        mean = masked_voxel_mean(values, mask)
        mean.backward()
    assert counter.count == 0 and float(mean) == 0.0 and bool(torch.all(values.grad == 0))
    mask[1, 0, :2] = True  # image 1 annotated on 8 voxels: the mean over image 1's annotated voxels only
    expected = values[1, :, :2].mean()
    torch.testing.assert_close(masked_voxel_mean(values, mask), expected)
