"""The loss base class: every exported loss subclasses it, its protocol flags cannot be forgotten or misspelt.

``SegmentationLoss`` declares the five protocol flags with their defaults; a subclass declares only the flags it
changes, and a flag of the wrong type or a misspelt one is refused when the class is created. A plain
``nn.Module`` keeps working with the same defaults.
"""

from __future__ import annotations

import inspect
import re
from pathlib import Path

import pytest
import torch
from torch import Tensor, nn

import nnunet_lossplug.losses as losses
from nnunet_lossplug.losses import (
    INPUT_VOCABULARY,
    PROTOCOL_FLAGS,
    CrossEntropyLoss,
    DeepSupervisionLoss,
    DiceLoss,
    LossMixture,
    RegionWiseLoss,
    SegmentationLoss,
    call_loss,
)

torch.set_num_threads(1)

CONVENTIONS = Path(__file__).resolve().parents[2] / "docs" / "conventions.md"
EXPORTED_LOSSES = [
    value for name in losses.__all__
    if isinstance(value := getattr(losses, name), type) and issubclass(value, nn.Module)
    and value is not SegmentationLoss
]


def build(cls: type[nn.Module]) -> nn.Module:
    """An instance of an exported loss class with its default settings (wrappers around a Dice loss)."""
    if cls is LossMixture:
        return LossMixture(DiceLoss(), RegionWiseLoss())
    if cls is DeepSupervisionLoss:
        return DeepSupervisionLoss(DiceLoss(), "nnunet", num_outputs=2)
    return cls()


def check_flag_value(name: str, value: object) -> None:
    assert isinstance(value, PROTOCOL_FLAGS[name]), f"{name}={value!r}"
    if name == "inputs":
        assert len(set(value)) == len(value) and set(value) <= set(INPUT_VOCABULARY), value


# ------------------------------------------------------------------------------------------ declarations
def test_exported_losses_are_found() -> None:
    names = {cls.__name__ for cls in EXPORTED_LOSSES}
    assert {"DiceLoss", "RegionWiseLoss", "LossMixture", "DeepSupervisionLoss"} <= names
    assert "RectifiedMap" not in names  # a map, not a loss


@pytest.mark.parametrize("cls", EXPORTED_LOSSES, ids=lambda cls: cls.__name__)
def test_every_exported_loss_subclasses_the_base(cls: type[nn.Module]) -> None:
    assert issubclass(cls, SegmentationLoss)


def test_every_flag_is_declared_on_the_base_with_its_type_and_documented() -> None:
    annotated = {name for name, kind in SegmentationLoss.__annotations__.items() if "ClassVar" in str(kind)}
    assert annotated == set(PROTOCOL_FLAGS)
    for name in PROTOCOL_FLAGS:
        value = vars(SegmentationLoss)[name]
        check_flag_value(name, value)
        assert SegmentationLoss.__doc__.count(f"- ``{name}`` (``") == 1, f"{name} is documented once"
    assert SegmentationLoss.inputs == ("target",)
    assert not any(getattr(SegmentationLoss, name) for name in PROTOCOL_FLAGS if name != "inputs")


@pytest.mark.parametrize("cls", EXPORTED_LOSSES, ids=lambda cls: cls.__name__)
def test_every_loss_reports_every_flag_with_its_type(cls: type[nn.Module]) -> None:
    loss = build(cls)
    for name in PROTOCOL_FLAGS:
        check_flag_value(name, getattr(loss, name))


@pytest.mark.parametrize("cls", EXPORTED_LOSSES, ids=lambda cls: cls.__name__)
def test_losses_declare_only_flags_that_differ_from_the_default(cls: type[nn.Module]) -> None:
    for name in PROTOCOL_FLAGS.keys() & vars(cls).keys():
        value = vars(cls)[name]
        assert isinstance(value, property) or value != getattr(SegmentationLoss, name), f"{cls.__name__}.{name}"


def test_the_flags_of_the_papers_losses() -> None:
    assert RegionWiseLoss.inputs == ("rw_map",) and RegionWiseLoss.accepts_rectified
    assert not RegionWiseLoss().nonnegative and RegionWiseLoss(shift_to_nonnegative=True).nonnegative
    assert DiceLoss.nonnegative and DiceLoss.accepts_mask and DiceLoss.supports_regions
    assert not DiceLoss.accepts_rectified
    assert LossMixture(DiceLoss(), RegionWiseLoss()).inputs == ("target", "rw_map")
    assert not LossMixture.supports_regions and not DeepSupervisionLoss.accepts_mask


# ------------------------------------------------------------------------------ refusals at class creation
@pytest.mark.parametrize(("name", "value"), [
    ("inputs", "target"),
    ("inputs", ["target"]),
    ("nonnegative", 1),
    ("accepts_mask", "yes"),
    ("accepts_rectified", None),
    ("supports_regions", 0),
])
def test_a_flag_of_the_wrong_type_is_refused(name: str, value: object) -> None:
    with pytest.raises(TypeError, match=rf"BadLoss\.{name} must be a {PROTOCOL_FLAGS[name].__name__}"):
        type("BadLoss", (SegmentationLoss,), {name: value})


@pytest.mark.parametrize("inputs", [("target", "label"), ("target", "target"), ("mask",)])
def test_inputs_outside_the_vocabulary_are_refused(inputs: tuple[str, ...]) -> None:
    with pytest.raises(ValueError, match=r"BadLoss\.inputs must list distinct names"):
        type("BadLoss", (SegmentationLoss,), {"inputs": inputs})


@pytest.mark.parametrize(("name", "meant"), [
    ("accept_mask", "accepts_mask"),
    ("accepts_masks", "accepts_mask"),
    ("supports_region", "supports_regions"),
    ("non_negative", "nonnegative"),
    ("input", "inputs"),
    ("accepts_rectify", "accepts_rectified"),
])
def test_a_misspelt_flag_is_refused_naming_the_flag(name: str, meant: str) -> None:
    with pytest.raises(TypeError, match=rf"TypoLoss\.{name} looks like a misspelt protocol flag .*'{meant}'"):
        type("TypoLoss", (SegmentationLoss,), {name: True})


def test_an_unknown_name_with_a_flag_prefix_is_refused() -> None:
    with pytest.raises(TypeError, match=r"TypoLoss\.supports_ddp .*prefix 'supports_' is reserved"):
        type("TypoLoss", (SegmentationLoss,), {"supports_ddp": True})


def test_ordinary_attributes_properties_and_subclasses_of_losses_are_accepted() -> None:
    class WeightedLoss(SegmentationLoss):
        accepts_mask = True
        weight_scale = 2.0
        _inputs = ("private",)

        @property
        def nonnegative(self) -> bool:
            return self.weight_scale > 0

        def shift_to_nonnegative(self) -> None:
            """A method whose name contains a flag is not a flag."""

    class ShiftedRegionWise(RegionWiseLoss):
        inputs = ("target", "rw_map")

    loss = WeightedLoss()
    assert (loss.inputs, loss.nonnegative, loss.accepts_mask, loss.accepts_rectified) == (
        ("target",), True, True, False)
    assert ShiftedRegionWise.accepts_rectified and ShiftedRegionWise.inputs == ("target", "rw_map")


# ---------------------------------------------------------------------------------- regions, repr, calling
def test_regions_is_taken_once_and_refused_without_a_region_mode() -> None:
    assert CrossEntropyLoss(regions=True).regions and not CrossEntropyLoss().regions

    class SoftmaxOnly(SegmentationLoss):
        pass

    with pytest.raises(ValueError, match=r"SoftmaxOnly has no region \(sigmoid\) mode"):
        SoftmaxOnly(regions=True)
    assert SoftmaxOnly().regions is False


def test_extra_repr_shows_the_constructor_settings() -> None:
    class Scaled(SegmentationLoss):
        supports_regions = True

        def __init__(self, inner: nn.Module, scale: float = 1.0, table: Tensor | None = None,
                     regions: bool = False) -> None:
            super().__init__(regions=regions)
            self.inner, self.scale = inner, scale
            self.table = table

    small = Scaled(CrossEntropyLoss(), 0.5, torch.tensor([1.0, 2.0]), regions=True)
    assert small.extra_repr() == "scale=0.5, table=[1.0, 2.0], regions=True"
    assert "(inner): CrossEntropyLoss(regions=False)" in repr(small)
    assert Scaled(CrossEntropyLoss(), table=torch.zeros(3, 8)).extra_repr() == (
        "scale=1.0, table=<tensor of shape (3, 8)>, regions=False")
    assert repr(DiceLoss(class_weights=[1, 2])) == (
        "DiceLoss(batch_dice=False, do_bg=True, smooth=0.0, squared=False, class_weights=[1.0, 2.0], ddp=None, "
        "regions=False)")
    assert DeepSupervisionLoss(DiceLoss(), "trainable", 3).extra_repr() == (
        "weights='trainable', num_outputs=3, sigma_limit=3.0")
    mixture = LossMixture(DiceLoss(), RegionWiseLoss(), "gradual")
    mixture.set_epoch(4)
    assert mixture.extra_repr() == "schedule='gradual', epoch=4, inputs=('target', 'rw_map')"


class MaskedLogitMean(SegmentationLoss):
    """``mean(logits · m)`` over the annotated voxels; a user's loss written against the base class."""

    accepts_mask = True

    def forward(self, logits: Tensor, target: Tensor, mask: Tensor | None = None) -> Tensor:
        if mask is None:
            return logits.mean()
        return (logits * mask).sum() / (mask.sum() * logits.shape[1])


class PlainLogitMean(nn.Module):
    """The same loss as a plain module, without any protocol flag."""

    def forward(self, logits: Tensor, target: Tensor) -> Tensor:
        return logits.mean()


def test_a_subclass_and_a_plain_module_are_called_with_the_same_defaults() -> None:
    logits = torch.arange(2 * 3 * 2 * 2, dtype=torch.float64).reshape(2, 3, 2, 2)
    target = torch.zeros(2, 1, 2, 2)
    mask = torch.zeros(2, 1, 2, 2, dtype=torch.bool)
    mask[:, :, 0, 0] = True
    assert call_loss(MaskedLogitMean(), logits, target).item() == call_loss(PlainLogitMean(), logits, target).item()
    expected = logits[:, :, 0, 0].mean().item()
    assert call_loss(MaskedLogitMean(), logits, target, mask=mask).item() == pytest.approx(expected)
    with pytest.raises(ValueError, match="PlainLogitMean cannot skip ignored voxels"):
        call_loss(PlainLogitMean(), logits, target, mask=mask)


def test_trainable_weights_refuse_a_subclass_that_does_not_declare_nonnegative() -> None:
    with pytest.raises(ValueError, match="MaskedLogitMean declares nonnegative=False"):
        DeepSupervisionLoss(MaskedLogitMean(), "trainable", num_outputs=2)
    DeepSupervisionLoss(PlainLogitMean(), "trainable", num_outputs=2)  # no flag: checked at run time instead


# ------------------------------------------------------------------------------------------- docstrings
@pytest.mark.parametrize("cls", EXPORTED_LOSSES + [SegmentationLoss], ids=lambda cls: cls.__name__)
def test_one_docstring_layout_for_every_loss(cls: type[nn.Module]) -> None:
    doc = inspect.getdoc(cls)
    sections = [match.group(1) for match in re.finditer(r"^(Args|Shape|Returns):$", doc, flags=re.MULTILINE)]
    assert sections == ["Args", "Shape", "Returns"], sections
    assert not re.search(r"SPEC|§|paper 00\d", doc, flags=re.IGNORECASE)
    if cls is not SegmentationLoss:
        assert re.search(r"[A-Z][a-z]+ (et al\.|& [A-Z][a-z]+) 20\d\d", doc), "cites a paper by author and year"


@pytest.mark.parametrize("cls", [cls for cls in EXPORTED_LOSSES if cls.supports_regions],
                         ids=lambda cls: cls.__name__)
def test_region_losses_link_the_one_regions_and_ignore_mask_text(cls: type[nn.Module]) -> None:
    assert '"Regions and ignore mask"' in inspect.getdoc(cls)
    assert "exactly zero gradient" not in inspect.getdoc(cls)  # the text stands on the base class only


def test_the_base_class_links_existing_convention_sections() -> None:
    assert "**Regions and ignore mask**" in SegmentationLoss.__doc__
    linked = re.search(r'docs/conventions\.md``, sections "([^"]+)" and "([^"]+)"', SegmentationLoss.__doc__)
    assert linked is not None
    headings = re.findall(r"^## (.+)$", CONVENTIONS.read_text(), flags=re.MULTILINE)
    assert set(linked.groups()) <= set(headings), (linked.groups(), headings)
