"""Registry of map kinds: named label-map -> RW-map functions, with stable identities for caching.

A *map function* has the signature ``fn(labels, num_classes, spacing, **params) -> (K, *spatial)``
(:data:`MapFunction`). A :class:`MapKind` binds a function to a name and keyword parameters; its
:meth:`MapKind.identity` is the key under which precomputed maps are cached, so it changes whenever
the name, the parameters or the function's code change.

Built-in kinds: ``"rrw"`` (paper 002 eq. 4), ``"rrw_reference"`` (the reference code's RRW, exact
reproduction), ``"boundary"`` (eq. 3), ``"ac"`` (``1 - y``), ``"cao"`` (``1 - 2y``) and ``"distance"``
(unsigned distance to the boundary, for the one-sided HD loss). Plug in your own map with::

    def my_map(labels, num_classes, spacing=None, scale=1.0):
        ...  # numpy only; return (num_classes, *labels.shape)

    register_map_kind("my_map", my_map, scale=2.0)

Define map functions at module level (not lambdas) so data-loader worker processes can pickle them.
"""

from __future__ import annotations

import functools
import hashlib
import inspect
import json
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from nnunet_lossplug.maps import distances, rw_maps, validation
from nnunet_lossplug.maps.distances import distance_to_boundary
from nnunet_lossplug.maps.rw_maps import ac_map, boundary_map, cao_map, rrw_map, rrw_reference_map
from nnunet_lossplug.maps.validation import validate_labels, validate_spacing

__all__ = [
    "MapFunction",
    "MapKind",
    "available_map_kinds",
    "get_map_kind",
    "register_map_kind",
    "unregister_map_kind",
]

MapFunction = Callable[[np.ndarray, int, Sequence[float] | None], np.ndarray]
"""``(labels (*spatial), num_classes, spacing or None, **params) -> map (num_classes, *spatial)``."""

_NAME_PATTERN = re.compile(r"[A-Za-z0-9_.\-]+")
# Built-in map functions call helpers in these modules; their sources enter the built-ins' identity so
# that a change to any helper invalidates cached maps.
_IMPLEMENTATION_MODULES = (validation, distances, rw_maps)


def _sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()[:16]


@functools.lru_cache(maxsize=1)
def _implementation_digest() -> str:
    sources = "".join(inspect.getsource(module) for module in _IMPLEMENTATION_MODULES)
    return _sha256(sources.encode())


def _code_digest(fn: Callable[..., Any]) -> str:
    """Hash of the function's source (``inspect.getsource``), else of its bytecode, else ``'unknown'``."""
    if isinstance(fn, functools.partial):
        bound = _canonical({"args": list(fn.args), "keywords": dict(fn.keywords)})
        return f"partial({_code_digest(fn.func)},{_sha256(bound.encode())})"
    target = fn if inspect.isroutine(fn) or inspect.isclass(fn) else type(fn)
    try:
        digest = _sha256(inspect.getsource(target).encode())
    except (OSError, TypeError):
        code = getattr(target, "__code__", None)
        if code is None:
            return "unknown"
        digest = "bytecode-" + _sha256(code.co_code + repr(code.co_consts).encode())
    module = getattr(fn, "__module__", "") or ""
    if module.startswith(__name__.rsplit(".", 1)[0]):
        digest += "+" + _implementation_digest()
    return digest


def _json_default(value: Any) -> Any:
    if isinstance(value, np.ndarray):
        return {"ndarray": str(value.dtype), "shape": list(value.shape), "sha": _sha256(value.tobytes())}
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, (set, frozenset)):
        return sorted(value, key=repr)
    return repr(value)


def _canonical(params: dict[str, Any]) -> str:
    return json.dumps(params, sort_keys=True, default=_json_default, separators=(",", ":"))


def _qualified_name(fn: Callable[..., Any]) -> str:
    module = getattr(fn, "__module__", None) or type(fn).__module__
    qualname = getattr(fn, "__qualname__", None) or type(fn).__qualname__
    return f"{module}.{qualname}"


@dataclass(frozen=True)
class MapKind:
    """A named map function with bound keyword parameters.

    Attributes:
        name: registry name (letters, digits, ``_ . -``).
        fn: :data:`MapFunction` called as ``fn(labels, num_classes, spacing, **params)``.
        params: keyword arguments passed to ``fn`` on every call (e.g. ``class_values`` for ``rrw_map``).
    """

    name: str
    fn: MapFunction
    params: dict[str, Any] = field(default_factory=dict, hash=False)

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
                f"map kind {self.name!r} ({_qualified_name(self.fn)}) returned shape {out.shape}; expected "
                f"(num_classes, *labels.shape) = {expected}."
            )
        if not (np.issubdtype(out.dtype, np.integer) or np.issubdtype(out.dtype, np.floating)):
            raise ValueError(
                f"map kind {self.name!r} ({_qualified_name(self.fn)}) returned dtype {out.dtype}; expected a "
                f"real numeric (float or integer) array."
            )
        if not np.isfinite(out).all():
            raise ValueError(
                f"map kind {self.name!r} ({_qualified_name(self.fn)}) returned NaN or inf values; RW maps "
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
                f"fn={_qualified_name(self.fn)}",
                f"code={_code_digest(self.fn)}",
                f"params={_canonical(dict(self.params))}",
            )
        )

    def digest(self) -> str:
        """Short hex hash (16 characters) of :meth:`identity`, for file names."""
        return _sha256(self.identity().encode())


_REGISTRY: dict[str, MapKind] = {}


def register_map_kind(name: str, fn: MapFunction, **params: Any) -> MapKind:
    """Register ``fn`` with bound ``params`` under ``name`` and return the :class:`MapKind`.

    ``fn`` is called as ``fn(labels, num_classes, spacing, **params)`` and must return
    ``(num_classes, *labels.shape)``. The call signature is checked now, so a misspelt parameter fails at
    registration. Registering the same name again with an identical function and parameters is a no-op;
    a different definition under a taken name raises ``ValueError`` (call :func:`unregister_map_kind`
    first to replace it).
    """
    if not isinstance(name, str) or not _NAME_PATTERN.fullmatch(name):
        raise ValueError(
            f"map kind name must be a non-empty string of letters, digits, '_', '.' or '-'; got {name!r}."
        )
    if not callable(fn):
        raise ValueError(f"map kind {name!r}: fn must be callable; got {fn!r} of type {type(fn).__name__}.")
    try:
        signature = inspect.signature(fn)
    except (TypeError, ValueError):
        signature = None
    if signature is not None:
        try:
            signature.bind(np.zeros((1, 1), dtype=np.uint8), 1, None, **params)
        except TypeError as err:
            raise ValueError(
                f"map kind {name!r}: {_qualified_name(fn)}{signature} cannot be called as "
                f"fn(labels, num_classes, spacing, **{sorted(params)}): {err}."
            ) from err
    kind = MapKind(name=name, fn=fn, params=dict(params))
    existing = _REGISTRY.get(name)
    if existing is not None and existing.identity() != kind.identity():
        raise ValueError(
            f"map kind {name!r} is already registered as {existing.identity()}; choose another name or call "
            f"unregister_map_kind({name!r}) first."
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


def _register_builtins() -> None:
    register_map_kind("rrw", rrw_map)
    register_map_kind("rrw_reference", rrw_reference_map)
    register_map_kind("boundary", boundary_map)
    register_map_kind("ac", ac_map)
    register_map_kind("cao", cao_map)
    register_map_kind("distance", distance_to_boundary)


_register_builtins()
