"""Registry of map kinds: named label-map -> RW-map functions, with stable identities for caching.

A *map function* has the signature ``fn(labels, num_classes, spacing, **params) -> (K, *spatial)``
(:data:`MapFunction`). A :class:`MapKind` binds a function to a name and keyword parameters; its
:meth:`MapKind.identity` is the key under which precomputed maps are cached, so it changes whenever
the name, the parameters or the function's code change.

A registration carries everything about a kind: its function and parameters, how it is stored and rebuilt in
training (its :mod:`~nnunet_lossplug.maps.encodings` for ``K`` classes and for region-based datasets), whether
it is known to be rectified, and a one-line summary for the command-line help. The built-in kinds
(:mod:`~nnunet_lossplug.maps.builtins`) register through the same :func:`register_map_kind` call as yours::

    def my_map(labels, num_classes, spacing=None, scale=1.0):
        ...  # numpy only; return (num_classes, *labels.shape)

    register_map_kind("my_map", my_map, scale=2.0)

Define map functions at module level (not lambdas) so data-loader worker processes can pickle them.
"""

from __future__ import annotations

import dataclasses
import inspect
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from nnunet_lossplug.maps.encodings import ComputedValues, MapEncoding
from nnunet_lossplug.maps.identity import canonical_json, code_digest, qualified_name, short_sha256
from nnunet_lossplug.maps.validation import validate_labels, validate_spacing

__all__ = [
    "MapFunction",
    "MapKind",
    "available_map_kinds",
    "get_map_kind",
    "register_map_kind",
    "rw_map",
    "unregister_map_kind",
]

MapFunction = Callable[[np.ndarray, int, Sequence[float] | None], np.ndarray]
"""``(labels (*spatial), num_classes, spacing or None, **params) -> map (num_classes, *spatial)``."""

_NAME_PATTERN = re.compile(r"[A-Za-z0-9_.\-]+")


@dataclass(frozen=True)
class MapKind:
    """A named map function with bound keyword parameters and how the map is stored.

    Attributes:
        name: registry name (letters, digits, ``_ . -``).
        fn: :data:`MapFunction` called as ``fn(labels, num_classes, spacing, **params)``.
        params: keyword arguments passed to ``fn`` on every call (e.g. ``class_values`` for ``rrw_map``).
        encoding: how the map is stored per case and rebuilt in training on ``K`` exclusive classes
            (:mod:`~nnunet_lossplug.maps.encodings`); the map function's output as it is by default.
        region_encoding: the same on nnU-Net's region-based datasets (each region a two-class map); ``None``:
            the kind has no region meaning and a region-based dataset refuses it.
        rectified: ``True`` if every map of this kind is rectified (one negative logit-gradient component per
            voxel, Valverde & Tohka 2022, Sec. 3.4), ``False`` if it is known not to be or is no RW map at all
            (the trainer's start-up check is then skipped), ``None`` if unknown (the check decides).
        summary: one line for the command-line help.
        unit: the unit of the map's values where they are physical (``"mm"`` for distances), else ``""``;
            drawn on colour bars (``nnunet-lossplug show-maps``).

    The values depend on ``name``, ``fn`` and ``params`` alone, which make :meth:`identity`; the codec that
    stores them adds how they are stored to its own cache key.
    """

    name: str
    fn: MapFunction
    params: dict[str, Any] = field(default_factory=dict, hash=False)
    encoding: MapEncoding = field(default_factory=ComputedValues)
    region_encoding: MapEncoding | None = None
    rectified: bool | None = None
    summary: str = ""
    unit: str = ""

    def compute(
        self,
        labels: np.ndarray,
        num_classes: int,
        spacing: Sequence[float] | None = None,
    ) -> np.ndarray:
        """Run the map function on one label map and return a checked float32 ``(num_classes, *spatial)``.

        ``labels`` are checked first (integers in ``[0, num_classes)``, 2D or 3D) and ``spacing`` must
        have one value per axis. The output must have shape ``(num_classes, *labels.shape)``, a real
        numeric dtype and only finite values; otherwise a ``ValueError`` names this kind.
        """
        validate_labels(labels, num_classes)
        if spacing is not None:
            spacing = validate_spacing(spacing, np.ndim(labels))
        result = self.fn(labels, num_classes, spacing, **self.params)
        out = np.asarray(result)
        expected = (num_classes, *np.shape(labels))
        if out.shape != expected:
            raise ValueError(
                f"map kind {self.name!r} ({qualified_name(self.fn)}) returned shape {out.shape}; expected "
                f"(num_classes, *labels.shape) = {expected}."
            )
        if not (np.issubdtype(out.dtype, np.integer) or np.issubdtype(out.dtype, np.floating)):
            raise ValueError(
                f"map kind {self.name!r} ({qualified_name(self.fn)}) returned dtype {out.dtype}; expected a "
                f"real numeric (float or integer) array."
            )
        if not np.isfinite(out).all():
            raise ValueError(
                f"map kind {self.name!r} ({qualified_name(self.fn)}) returned NaN or inf values; RW maps "
                f"must be finite (check absent classes or classes that fill the image)."
            )
        return out.astype(np.float32, copy=False)

    def identity(self) -> str:
        """Stable string for cache keys: name, function path, code hash and sorted parameters.

        Format ``name=<name>|fn=<module.qualname>|code=<hash>|params=<sorted JSON>``. The code hash is a
        SHA-256 prefix of ``inspect.getsource(fn)`` (of the bytecode when no source is available); for the
        built-in kinds it also covers the source of the map implementation modules. Two kinds that differ
        in name, parameters or code get different identities; the same kind gets the same string in every
        process.
        """
        return "|".join(
            (
                f"name={self.name}",
                f"fn={qualified_name(self.fn)}",
                f"code={code_digest(self.fn)}",
                f"params={canonical_json(dict(self.params))}",
            )
        )

    def digest(self) -> str:
        """Short hex hash (16 characters) of :meth:`identity`, for file names."""
        return short_sha256(self.identity().encode())

    def with_params(self, **params: Any) -> MapKind:
        """This kind with ``params`` added to (or replacing) its parameters, e.g. RRW with ``class_values``.

        Everything else (name, function, encodings) is kept; the identity changes with the parameters, so the
        maps are cached apart. A parameter the function does not take raises ``ValueError`` now.
        """
        merged = {**self.params, **params}
        _check_call(self.name, self.fn, merged)
        return dataclasses.replace(self, params=merged)

    def traits(self) -> tuple[MapEncoding, MapEncoding | None, bool | None, str]:
        """What the registration declares besides the function and parameters (compared on re-registration)."""
        return self.encoding, self.region_encoding, self.rectified, self.summary, self.unit


def _check_call(name: str, fn: MapFunction, params: dict[str, Any]) -> None:
    """``ValueError`` now if ``fn(labels, num_classes, spacing, **params)`` cannot be called (a misspelt parameter)."""
    try:
        signature = inspect.signature(fn)
    except (TypeError, ValueError):
        return
    try:
        signature.bind(np.zeros((1, 1), dtype=np.uint8), 1, None, **params)
    except TypeError as err:
        raise ValueError(
            f"map kind {name!r}: {qualified_name(fn)}{signature} cannot be called as "
            f"fn(labels, num_classes, spacing, **{sorted(params)}): {err}."
        ) from err


_REGISTRY: dict[str, MapKind] = {}


def register_map_kind(
    name: str,
    fn: MapFunction,
    *,
    encoding: MapEncoding | None = None,
    region_encoding: MapEncoding | None = None,
    rectified: bool | None = None,
    summary: str = "",
    unit: str = "",
    **params: Any,
) -> MapKind:
    """Register ``fn`` with bound ``params`` under ``name`` and return the :class:`MapKind`.

    ``fn`` is called as ``fn(labels, num_classes, spacing, **params)`` and must return
    ``(num_classes, *labels.shape)``. The call signature is checked now, so a misspelt parameter fails at
    registration. ``encoding`` (default :class:`~nnunet_lossplug.maps.encodings.ComputedValues`: the values as
    computed), ``region_encoding`` (default ``None``: not available on region-based datasets), ``rectified`` and
    ``summary`` and ``unit`` are described in :class:`MapKind`; these five names cannot be parameters of ``fn``.
    Registering the same name again with an identical definition is a no-op; a different definition under a
    taken name raises ``ValueError`` (call :func:`unregister_map_kind` first to replace it).
    """
    if not isinstance(name, str) or not _NAME_PATTERN.fullmatch(name):
        raise ValueError(
            f"map kind name must be a non-empty string of letters, digits, '_', '.' or '-'; got {name!r}."
        )
    if not callable(fn):
        raise ValueError(f"map kind {name!r}: fn must be callable; got {fn!r} of type {type(fn).__name__}.")
    encoding = ComputedValues() if encoding is None else encoding
    for label, value in (("encoding", encoding), ("region_encoding", region_encoding)):
        if value is not None and not isinstance(value, MapEncoding):
            raise ValueError(f"map kind {name!r}: {label} must be an encoding of nnunet_lossplug.maps.encodings; "
                             f"got {value!r}.")
    if (rectified not in (True, False, None) or not isinstance(summary, str) or "\n" in summary
            or not isinstance(unit, str) or "\n" in unit):
        raise ValueError(f"map kind {name!r}: rectified must be True, False or None, and summary and unit one line "
                         f"of text; got rectified={rectified!r}, summary={summary!r}, unit={unit!r}.")
    _check_call(name, fn, params)
    kind = MapKind(name=name, fn=fn, params=dict(params), encoding=encoding, region_encoding=region_encoding,
                   rectified=rectified, summary=summary, unit=unit)
    existing = _REGISTRY.get(name)
    if existing is not None and (existing.identity(), existing.traits()) != (kind.identity(), kind.traits()):
        raise ValueError(
            f"map kind {name!r} is already registered as {existing.identity()} with {existing.traits()}; choose "
            f"another name or call unregister_map_kind({name!r}) first."
        )
    _REGISTRY[name] = kind
    return kind


def unregister_map_kind(name: str) -> MapKind:
    """Remove ``name`` from the registry and return its :class:`MapKind` (KeyError if unknown)."""
    kind = get_map_kind(name)
    del _REGISTRY[name]
    return kind


def get_map_kind(name: str) -> MapKind:
    """Return the registered :class:`MapKind` called ``name``; KeyError listing the known kinds otherwise."""
    try:
        return _REGISTRY[name]
    except KeyError:
        raise KeyError(
            f"unknown map kind {name!r}; known kinds: {available_map_kinds()}. Register your own with "
            f"nnunet_lossplug.maps.register_map_kind(name, fn, **params)."
        ) from None


def available_map_kinds() -> list[str]:
    """Sorted names of all registered map kinds (built-in and user)."""
    return sorted(_REGISTRY)


def rw_map(
    labels: np.ndarray,
    num_classes: int,
    kind: str | MapKind = "rrw",
    spacing: Sequence[float] | None = None,
    **params: Any,
) -> np.ndarray:
    """The map of a registered kind for one image: float32 ``(num_classes, *labels.shape)``.

    ``get_map_kind(kind).with_params(**params).compute(labels, num_classes, spacing)``; e.g.
    ``rw_map(labels, 4, "rrw", spacing=(1.5, 1.5), class_values=(1, 2, 2, 2))`` for RRW with class emphasis
    (Valverde & Tohka 2022, eq. 4 and Sec. 3.3). An unknown kind or a parameter its function does not take
    raises ``ValueError``.
    """
    try:
        map_kind = get_map_kind(kind) if isinstance(kind, str) else kind
    except KeyError as err:
        raise ValueError(err.args[0]) from None
    if params:
        map_kind = map_kind.with_params(**params)
    return map_kind.compute(labels, num_classes, spacing)
