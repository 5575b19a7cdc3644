"""Input handling shared by all losses: target forms, explicit refusals, mixed precision, call_loss."""

from __future__ import annotations

import pytest
import torch

from nnunet_lossplug.losses import (
    CrossEntropyLoss,
    DiceLoss,
    FocalLoss,
    LossMixture,
    OneSidedHausdorffLoss,
    RegionWiseLoss,
    RWWeightedCrossEntropyLoss,
    call_loss,
)

torch.set_num_threads(1)


def _all_losses() -> list[torch.nn.Module]:
    return [
        DiceLoss(),
        DiceLoss(batch_dice=True, do_bg=False),
        DiceLoss(squared=True, class_weights=[0.5, 1.0, 2.0]),
        CrossEntropyLoss(),
        FocalLoss(),
        RegionWiseLoss(),
        RegionWiseLoss(shift_to_nonnegative=True),
        OneSidedHausdorffLoss(),
        RWWeightedCrossEntropyLoss(),
        LossMixture(DiceLoss(), RegionWiseLoss(), schedule="equal"),
    ]


def _example(dtype: torch.dtype = torch.float32, scale: float = 1.0) -> dict[str, torch.Tensor]:
    generator = torch.Generator().manual_seed(0)
    labels = torch.randint(0, 3, (2, 1, 4, 5), generator=generator)
    labels[1] = 0  # an image without foreground
    logits = (torch.randn(2, 3, 4, 5, generator=generator) * scale).to(dtype)
    distance = torch.rand(2, 3, 4, 5, generator=generator) * 3
    return {"logits": logits, "target": labels, "rw_map": distance}


# ---- targets ----

@pytest.mark.parametrize("loss", _all_losses(), ids=lambda loss: type(loss).__name__)
def test_label_map_and_one_hot_targets_are_equivalent(loss: torch.nn.Module) -> None:
    example = _example(torch.float64)
    one_hot = torch.nn.functional.one_hot(example["target"][:, 0], 3).permute(0, 3, 1, 2)
    from_labels = call_loss(loss, example["logits"], example["target"], example["rw_map"])
    from_one_hot = call_loss(loss, example["logits"], one_hot, example["rw_map"])
    from_float_labels = call_loss(loss, example["logits"], example["target"].float(), example["rw_map"])
    assert from_labels.item() == pytest.approx(from_one_hot.item(), rel=1e-14, abs=1e-15)
    assert from_labels.item() == pytest.approx(from_float_labels.item(), rel=1e-14, abs=1e-15)


@pytest.mark.parametrize("bad_label", [255, -1, 3])
def test_ignore_label_or_out_of_range_labels_are_refused(bad_label: int) -> None:
    example = _example()
    example["target"][0, 0, 1, 1] = bad_label
    for loss in (DiceLoss(), CrossEntropyLoss(), OneSidedHausdorffLoss()):
        with pytest.raises(ValueError, match=r"\[0, 3\).*ignore label"):
            call_loss(loss, example["logits"], example["target"], example["rw_map"])


def test_region_based_targets_are_refused() -> None:
    """nnU-Net's region-based training: overlapping channels (e.g. whole tumour contains core)."""
    example = _example()
    regions = torch.zeros(2, 3, 4, 5)
    regions[:, 1, 1:3, 1:4] = 1  # "whole tumour"
    regions[:, 2, 1:2, 1:3] = 1  # "core", inside the whole tumour
    regions[:, 0] = 1 - regions[:, 1]
    for loss in (DiceLoss(), FocalLoss(), RWWeightedCrossEntropyLoss()):
        with pytest.raises(ValueError, match=r"sum to 1.*[Rr]egion-based"):
            call_loss(loss, example["logits"], regions, example["rw_map"])


def test_non_integral_label_maps_and_values_outside_unit_interval_are_refused() -> None:
    example = _example()
    with pytest.raises(ValueError, match="non-integral"):
        DiceLoss()(example["logits"], example["target"].float() + 0.5)
    one_hot = torch.nn.functional.one_hot(example["target"][:, 0], 3).permute(0, 3, 1, 2).float()
    one_hot[:, 0] *= 2
    one_hot[:, 1] -= one_hot[:, 0] / 2  # sums still 1 but values outside [0, 1]
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        CrossEntropyLoss()(example["logits"], one_hot)


def test_shape_errors_name_expected_and_received_shapes() -> None:
    example = _example()
    with pytest.raises(ValueError, match=r"\(2, 1, 4, 5\).*\(2, 3, 4, 5\).*got shape \(2, 4, 5\).*unsqueeze"):
        DiceLoss()(example["logits"], example["target"][:, 0])
    with pytest.raises(ValueError, match=r"got shape \(2, 1, 4, 4\)"):
        DiceLoss()(example["logits"], example["target"][..., :4])
    with pytest.raises(ValueError, match=r"rw_map must have the logits' shape.*\(2, 3, 4, 5\), got \(2, 3, 4, 4\)"):
        RegionWiseLoss()(example["logits"], example["rw_map"][..., :4])
    with pytest.raises(ValueError, match=r"K >= 2.*\(2, 1, 4, 5\)"):
        CrossEntropyLoss()(example["logits"][:, :1], example["target"])
    with pytest.raises(ValueError, match=r"\(B, K, \*spatial\).*\(2, 3\)"):
        CrossEntropyLoss()(torch.randn(2, 3), example["target"])
    with pytest.raises(TypeError, match="floating-point"):
        CrossEntropyLoss()(example["target"].expand(2, 3, 4, 5), example["target"])


# ---- mixed precision ----

@pytest.mark.parametrize("loss", _all_losses(), ids=lambda loss: type(loss).__name__)
@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16])
def test_low_precision_logits_of_1e4_are_computed_in_float32(loss: torch.nn.Module, dtype: torch.dtype) -> None:
    example = _example(scale=1.0)
    logits = torch.sign(example["logits"]) * 1e4  # saturated: softmax is exactly 0 / 1
    low = logits.to(dtype).requires_grad_(True)
    value = call_loss(loss, low, example["target"], example["rw_map"])
    assert value.dtype == torch.float32
    assert bool(torch.isfinite(value))
    value.backward()
    assert low.grad is not None and low.grad.dtype == dtype and bool(torch.all(torch.isfinite(low.grad)))
    # the low-precision input is exactly representable: the value is the float32 computation's
    reference = call_loss(loss, low.detach().float(), example["target"], example["rw_map"])
    assert value.item() == reference.item()


@pytest.mark.parametrize("loss", _all_losses(), ids=lambda loss: type(loss).__name__)
def test_losses_under_cpu_bfloat16_autocast_compute_in_float32(loss: torch.nn.Module) -> None:
    example = _example(scale=3.0)
    reference = call_loss(loss, example["logits"], example["target"], example["rw_map"])
    for logits in (example["logits"], torch.sign(example["logits"]) * 1e4):
        with torch.autocast(device_type="cpu", dtype=torch.bfloat16):
            x = logits.clone().requires_grad_(True)
            value = call_loss(loss, x, example["target"], example["rw_map"])
        assert value.dtype == torch.float32 and bool(torch.isfinite(value))
        value.backward()
        assert bool(torch.all(torch.isfinite(x.grad)))
    with torch.autocast(device_type="cpu", dtype=torch.bfloat16):
        value = call_loss(loss, example["logits"], example["target"], example["rw_map"])
    # bfloat16 arithmetic would deviate by ~1e-3 relative; float32 agrees to float32 rounding
    assert value.item() == pytest.approx(reference.item(), rel=1e-6, abs=1e-7)


def test_autocast_network_output_feeds_the_loss_in_float32() -> None:
    torch.manual_seed(1)
    network = torch.nn.Conv2d(1, 3, kernel_size=1)
    image = torch.randn(2, 1, 4, 5)
    labels = torch.randint(0, 3, (2, 1, 4, 5))
    with torch.autocast(device_type="cpu", dtype=torch.bfloat16):
        logits = network(image)
        assert logits.dtype == torch.bfloat16
        value = DiceLoss(batch_dice=True)(logits, labels) + CrossEntropyLoss()(logits, labels)
    assert value.dtype == torch.float32
    value.backward()
    assert all(bool(torch.all(torch.isfinite(p.grad))) for p in network.parameters())


# ---- call_loss ----

def test_call_loss_dispatches_by_the_inputs_attribute() -> None:
    example = _example(torch.float64)
    logits, target, rw_map = example["logits"], example["target"], example["rw_map"]
    assert DiceLoss.inputs == ("target",)
    assert RegionWiseLoss.inputs == ("rw_map",)
    assert OneSidedHausdorffLoss.inputs == ("target", "rw_map")
    assert RWWeightedCrossEntropyLoss.inputs == ("target", "rw_map")
    assert call_loss(RegionWiseLoss(), logits, target, rw_map).item() == pytest.approx(
        (torch.softmax(logits, 1) * rw_map).mean().item(), rel=1e-14
    )
    # a user's loss without `inputs` gets the target
    class LogitMean(torch.nn.Module):
        def forward(self, logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
            return logits.mean() + 0 * target.float().mean()

    assert call_loss(LogitMean(), logits, target).item() == pytest.approx(logits.mean().item())


def test_call_loss_names_the_missing_input() -> None:
    example = _example()
    with pytest.raises(ValueError, match=r"RegionWiseLoss needs 'rw_map'"):
        call_loss(RegionWiseLoss(), example["logits"], example["target"])
    with pytest.raises(ValueError, match=r"DiceLoss needs 'target'"):
        call_loss(DiceLoss(), example["logits"], rw_map=example["rw_map"])

    class Bad(torch.nn.Module):
        inputs = ("weights",)

    with pytest.raises(ValueError, match="vocabulary|distinct names"):
        call_loss(Bad(), example["logits"], example["target"])
