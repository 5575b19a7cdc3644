"""Input checks shared by the map functions: label arrays, class counts, spacings, class values.

Every check raises ``ValueError`` with a message that names what was expected, what was received and
how to fix it. The functions return normalised copies (contiguous unsigned label arrays, float tuples)
so the map code downstream never has to re-check.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

__all__ = [
    "label_dtype",
    "validate_class_values",
    "validate_labels",
    "validate_num_classes",
    "validate_spacing",
]

_MAX_LISTED = 10


def validate_num_classes(num_classes: int) -> int:
    """Return ``num_classes`` as a Python int after checking it is an integer >= 1 (background included)."""
    if isinstance(num_classes, bool) or not isinstance(num_classes, (int, np.integer)):
        raise ValueError(
            f"num_classes must be an integer >= 1 (the number of classes, background included); "
            f"got {num_classes!r} of type {type(num_classes).__name__}."
        )
    if num_classes < 1:
        raise ValueError(
            f"num_classes must be >= 1 (the number of classes, background included); got {num_classes}."
        )
    return int(num_classes)


def label_dtype(num_classes: int) -> np.dtype:
    """Smallest unsigned dtype that holds the values ``0 .. num_classes`` (one spare value for a +1 shift)."""
    for dtype in (np.uint8, np.uint16, np.uint32):
        if num_classes < np.iinfo(dtype).max:
            return np.dtype(dtype)
    return np.dtype(np.uint64)


def _describe(values: np.ndarray) -> str:
    uniq = np.unique(values)
    listed = ", ".join(repr(v.item()) for v in uniq[:_MAX_LISTED])
    more = f" and {uniq.size - _MAX_LISTED} more" if uniq.size > _MAX_LISTED else ""
    return f"[{listed}]{more}"


def validate_labels(
    labels: np.ndarray,
    num_classes: int,
    *,
    allowed_ndims: tuple[int, ...] = (2, 3),
) -> np.ndarray:
    """Check a label map and return it as a C-contiguous unsigned integer array.

    ``labels`` holds one class index per voxel, shape ``(*spatial)``. It must be integer-valued (an
    integer or boolean dtype, or a float dtype whose values are all whole numbers) with every value in
    ``[0, num_classes)``. nnU-Net's preprocessed segmentations contain ``-1`` outside the nonzero crop;
    callers must map it to background (0) first, and ignore labels are not supported by the maps.
    The returned dtype is :func:`label_dtype` ``(num_classes)``, which leaves room for a ``+1`` shift.
    """
    num_classes = validate_num_classes(num_classes)
    arr = np.asarray(labels)
    if arr.ndim not in allowed_ndims:
        raise ValueError(
            f"labels must have {' or '.join(str(n) for n in allowed_ndims)} dimensions "
            f"(spatial axes only, one class index per voxel); got shape {arr.shape}. "
            f"Remove batch/channel axes (e.g. labels[0]) or pass one image at a time."
        )
    if arr.size == 0:
        raise ValueError(f"labels must not be empty; got shape {arr.shape}.")
    if arr.dtype == np.bool_:
        arr = arr.astype(np.uint8)
    elif np.issubdtype(arr.dtype, np.floating):
        finite = np.isfinite(arr)
        if not finite.all():
            raise ValueError(
                f"labels must be finite class indices; found {_describe(arr[~finite])}. "
                f"Replace NaN/inf voxels by a valid class index (0 for background)."
            )
        fractional = arr != np.round(arr)
        if fractional.any():
            raise ValueError(
                f"labels must be integer-valued class indices; found non-integer values "
                f"{_describe(arr[fractional])}. Pass a segmentation, not probabilities or an interpolated "
                f"map (resample labels with nearest-neighbour interpolation)."
            )
    elif not np.issubdtype(arr.dtype, np.integer):
        raise ValueError(
            f"labels must be an integer, boolean or integer-valued float array; got dtype {arr.dtype}."
        )
    lo, hi = arr.min(), arr.max()
    if lo < 0 or hi >= num_classes:
        bad = arr[(arr < 0) | (arr >= num_classes)]
        hint = ""
        if lo < 0:
            hint = (
                " nnU-Net's preprocessed segmentations use -1 outside the nonzero crop: map it to background "
                "first (labels = np.where(labels < 0, 0, labels)); ignore labels are not supported."
            )
        raise ValueError(
            f"labels must lie in [0, num_classes) = [0, {num_classes}); found out-of-range values "
            f"{_describe(bad)}.{hint} If the values are real classes, increase num_classes."
        )
    return np.ascontiguousarray(arr, dtype=label_dtype(num_classes))


def validate_spacing(spacing: Sequence[float] | None, ndim: int) -> tuple[float, ...]:
    """Return the voxel spacing as a tuple of ``ndim`` positive floats; ``None`` means unit spacing.

    The spacing is given per array axis, in the same order as the axes of ``labels`` (for nnU-Net
    that is the order of the preprocessed array, e.g. ``(z, y, x)`` in mm).
    """
    if spacing is None:
        return (1.0,) * ndim
    try:
        values = tuple(float(v) for v in np.asarray(spacing, dtype=np.float64).reshape(-1))
        given_shape = np.shape(spacing)
    except (TypeError, ValueError) as err:
        raise ValueError(
            f"spacing must be a sequence of {ndim} positive numbers (one per axis of labels) or None; "
            f"got {spacing!r}."
        ) from err
    if len(given_shape) != 1 or len(values) != ndim:
        raise ValueError(
            f"spacing must have one entry per axis of labels: expected {ndim} values, got {spacing!r}. "
            f"Pass e.g. spacing=({', '.join(['1.0'] * ndim)}) or None for unit spacing."
        )
    if not all(np.isfinite(v) and v > 0 for v in values):
        raise ValueError(f"spacing values must be finite and > 0; got {spacing!r}.")
    return values


def validate_class_values(class_values: Sequence[float], num_classes: int) -> np.ndarray:
    """Return class emphasis values as a float32 array of length ``num_classes``, all finite and > 0."""
    try:
        values = np.asarray(class_values, dtype=np.float64)
    except (TypeError, ValueError) as err:
        raise ValueError(
            f"class_values must be a sequence of {num_classes} positive numbers; got {class_values!r}."
        ) from err
    if values.shape != (num_classes,):
        raise ValueError(
            f"class_values must hold one value per class: expected shape ({num_classes},), got shape "
            f"{values.shape} from {class_values!r}."
        )
    if not (np.isfinite(values).all() and (values > 0).all()):
        raise ValueError(
            f"class_values must be finite and > 0 (the value of the non-true components; 1 = no emphasis); "
            f"got {class_values!r}."
        )
    return values.astype(np.float32)
