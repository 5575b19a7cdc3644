"""The base class of the losses: the calling protocol declared once, with its defaults, and checked.

:func:`~nnunet_lossplug.losses.call_loss` and the nnU-Net glue decide what to pass a loss, and whether it fits a
dataset, from five class attributes, the *protocol flags*. :class:`SegmentationLoss` declares each of them with
its default and documents it; a subclass declares only the flags it changes. When a subclass is created,
:meth:`SegmentationLoss.__init_subclass__` refuses a flag of the wrong type and a class attribute that looks
like a misspelt flag, so a new loss cannot silently lose a declaration to a typo. A plain ``nn.Module`` without
the flags keeps working: the readers of the flags fall back to the defaults declared here.
"""

from __future__ import annotations

import difflib
import inspect
from collections.abc import Iterable
from typing import Any, ClassVar

from torch import Tensor, nn

__all__ = ["INPUT_VOCABULARY", "PROTOCOL_FLAGS", "SegmentationLoss", "check_inputs"]

#: the names a loss may list in ``inputs``, in the order ``forward`` takes them after the logits
INPUT_VOCABULARY: tuple[str, ...] = ("target", "rw_map")

#: every protocol flag and the type of its value (a subclass may also compute a flag as a ``property``)
PROTOCOL_FLAGS: dict[str, type] = {
    "inputs": tuple,
    "nonnegative": bool,
    "accepts_mask": bool,
    "accepts_rectified": bool,
    "supports_regions": bool,
}

#: name prefixes reserved for protocol flags: an attribute with one of them that is not a flag is a typo
_FLAG_PREFIXES = ("accepts_", "supports_")
#: difflib similarity from which a class attribute counts as a misspelling of a flag ("accept_mask", "input")
_MISSPELLING_SIMILARITY = 0.85
#: a tensor setting with at most this many entries is shown by value in ``extra_repr``, a larger one by shape
_REPR_TENSOR_ENTRIES = 16


def check_inputs(owner: str, inputs: Iterable[str]) -> tuple[str, ...]:
    """Return ``inputs`` as a tuple; raise ``ValueError`` unless it lists distinct names of the vocabulary."""
    inputs = tuple(inputs)
    unknown = [name for name in inputs if name not in INPUT_VOCABULARY]
    if unknown or len(set(inputs)) != len(inputs):
        raise ValueError(f"{owner}.inputs must list distinct names from {INPUT_VOCABULARY}, got {inputs}.")
    return inputs


class SegmentationLoss(nn.Module):
    """Base class of every loss of :mod:`nnunet_lossplug.losses`: protocol flags, ``regions``, ``extra_repr``.

    A loss maps raw logits ``(B, K, *spatial)`` and the inputs named by ``inputs`` to a scalar to minimise.
    The protocol flags below are class attributes; a subclass declares those it changes, as a class attribute
    of the stated type or as a ``property`` where the value depends on the constructor's arguments (e.g. the
    ``nonnegative`` of ``RegionWiseLoss(shift_to_nonnegative=True)``). The defaults are the cautious answers:
    a loss that declares nothing is given the target only and is refused where a guarantee is needed.

    - ``inputs`` (``tuple[str, ...]``, default ``("target",)``): the positional arguments ``forward`` takes
      after the logits, in order, as distinct names of :data:`INPUT_VOCABULARY`: ``"target"``, a label map
      ``(B, 1, *spatial)`` or one-hot ``(B, K, *spatial)``; ``"rw_map"``, a per-voxel float map
      ``(B, K, *spatial)`` precomputed from the ground truth (an RW map, or the distance map of the one-sided
      Hausdorff loss).
    - ``nonnegative`` (``bool``, default ``False``): the value is never negative. Trainable deep-supervision
      weights (``DeepSupervisionLoss(weights="trainable")``) refuse a loss that does not declare ``True``.
    - ``accepts_mask`` (``bool``, default ``False``): ``forward`` takes the keyword ``mask=`` (below); a loss
      without it is refused on datasets with an ignore label.
    - ``accepts_rectified`` (``bool``, default ``False``): ``forward`` takes a
      :class:`~nnunet_lossplug.losses.RectifiedMap` (the ``O(N)`` form of RRW, AC and Cao maps) as
      ``rw_map``; every other loss is handed the dense ``(B, K, *spatial)`` map by ``call_loss``.
    - ``supports_regions`` (``bool``, default ``False``): the loss has a region mode, ``regions=True``; a loss
      without it is refused on region-based datasets.

    A subclass attribute that is not a flag but starts with ``accepts_`` or ``supports_`` or nearly spells a
    flag (``accept_mask``, ``input``) is refused when the class is created, as is a flag of the wrong type.

    **Regions and ignore mask** (``docs/conventions.md``, sections "Regions" and "Ignore labels"):

    - ``regions=True`` takes logits ``(B, R, *spatial)`` with one sigmoid logit ``x_r`` per region of nnU-Net's
      region-based datasets and a binary target ``(B, R, *spatial)``. Each region is the two-class softmax
      problem with logits ``(0, x_r)``, whose inside probability is ``p_r = sigmoid(x_r)``, so a loss becomes
      its two-class form averaged over the regions (each loss states it). A map for the regions is their
      two-class maps, dense ``(B, R, 2, *spatial)`` (channel 0 outside, channel 1 inside) or a
      ``RectifiedMap`` of the ``B·R`` two-class problems.
    - ``forward(..., mask=m)`` with ``m`` ``(B, 1, *spatial)``, ``True`` at annotated voxels: voxel means run
      over the annotated voxels of each image, then over the images that have any, and Dice sums leave the
      ignored voxels out. Ignored voxels get exactly zero gradient.

    Args:
        regions: region (sigmoid) mode, above. Default ``False``. ``True`` is refused unless the class declares
            ``supports_regions = True``. Stored as ``self.regions``; losses that wrap other losses keep it
            ``False`` and leave region mode to their components.

    Shape:
        ``logits`` ``(B, K, *spatial)`` (2D or 3D), raw: the loss applies the softmax (the sigmoid per region
        in region mode) itself; then the inputs named by ``inputs``.

    Returns:
        A scalar tensor. The package's losses compute in float32 (float64 for float64 logits), also under
        autocast.
    """

    inputs: ClassVar[tuple[str, ...]] = ("target",)
    nonnegative: ClassVar[bool] = False
    accepts_mask: ClassVar[bool] = False
    accepts_rectified: ClassVar[bool] = False
    supports_regions: ClassVar[bool] = False

    def __init_subclass__(cls, **kwargs: Any) -> None:
        """Refuse a protocol flag of the wrong type and an attribute that looks like a misspelt flag."""
        super().__init_subclass__(**kwargs)
        for name, value in vars(cls).items():
            if name in PROTOCOL_FLAGS:
                _check_flag(cls.__name__, name, value)
            elif (flag := _misspelt_flag(name)) is not None:
                raise TypeError(
                    f"{cls.__name__}.{name} looks like a misspelt protocol flag ({flag}); the flags are "
                    f"{tuple(PROTOCOL_FLAGS)}. Rename it, or give it a name without the prefixes {_FLAG_PREFIXES}."
                )

    def __init__(self, regions: bool = False) -> None:
        super().__init__()
        if regions and not self.supports_regions:
            raise ValueError(
                f"{type(self).__name__} has no region (sigmoid) mode (supports_regions = False), got regions=True."
            )
        self.regions = bool(regions)

    def constructor_settings(self) -> dict[str, object]:
        """The constructor's arguments that the loss stores under their own names, in signature order.

        Arguments that are modules (the components of a mixture) are left out: ``repr`` shows them as children.
        A subclass that stores a setting under another name, or wants state shown, extends this method.
        """
        settings: dict[str, object] = {}
        for name, parameter in inspect.signature(type(self).__init__).parameters.items():
            if name == "self" or parameter.kind in (parameter.VAR_POSITIONAL, parameter.VAR_KEYWORD):
                continue
            if hasattr(self, name) and not isinstance(value := getattr(self, name), nn.Module):
                settings[name] = value
        return settings

    def extra_repr(self) -> str:
        """``name=value`` for every entry of :meth:`constructor_settings`."""
        return ", ".join(f"{name}={_format_setting(value)}" for name, value in self.constructor_settings().items())


def _check_flag(owner: str, name: str, value: object) -> None:
    if isinstance(value, property):
        return
    expected = PROTOCOL_FLAGS[name]
    if not isinstance(value, expected):
        raise TypeError(
            f"{owner}.{name} must be a {expected.__name__} (or a property computing one), got "
            f"{type(value).__name__} {value!r}."
        )
    if name == "inputs":
        check_inputs(owner, value)


def _misspelt_flag(name: str) -> str | None:
    """The flag (or flag prefix) that the attribute ``name`` looks like a misspelling of, else ``None``."""
    if name.startswith("_") or name in PROTOCOL_FLAGS:
        return None
    close = difflib.get_close_matches(name, PROTOCOL_FLAGS, n=1, cutoff=_MISSPELLING_SIMILARITY)
    if close:
        return f"did you mean {close[0]!r}?"
    prefix = next((prefix for prefix in _FLAG_PREFIXES if name.startswith(prefix)), None)
    return f"the prefix {prefix!r} is reserved for flags" if prefix is not None else None


def _format_setting(value: object) -> str:
    if isinstance(value, Tensor):
        if value.numel() <= _REPR_TENSOR_ENTRIES:
            return repr(value.tolist())
        return f"<tensor of shape {tuple(value.shape)}>"
    return repr(value)
