"""Stable identities of map functions and parameters, the material of a map kind's cache key.

:func:`code_digest` hashes a function's source (its bytecode without one); a built-in function's digest also
covers the source of the modules its helpers live in, so that any change to them invalidates cached maps.
:func:`canonical_json` writes parameters the same way in every process. Used by
:meth:`~nnunet_lossplug.maps.registry.MapKind.identity`.
"""

from __future__ import annotations

import functools
import hashlib
import inspect
import json
from collections.abc import Callable
from typing import Any

import numpy as np

from nnunet_lossplug.maps import distances, rw_maps, validation

__all__ = ["canonical_json", "code_digest", "qualified_name", "short_sha256"]

_PACKAGE = "nnunet_lossplug.maps"
# Built-in map functions call helpers in these modules; their sources enter the built-ins' identity so
# that a change to any helper invalidates cached maps.
_IMPLEMENTATION_MODULES = (validation, distances, rw_maps)


def short_sha256(data: bytes) -> str:
    """The first 16 hex characters of the SHA-256 of ``data``."""
    return hashlib.sha256(data).hexdigest()[:16]


@functools.lru_cache(maxsize=1)
def _implementation_digest() -> str:
    sources = "".join(inspect.getsource(module) for module in _IMPLEMENTATION_MODULES)
    return short_sha256(sources.encode())


def code_digest(fn: Callable[..., Any]) -> str:
    """Hash of the function's source (``inspect.getsource``), else of its bytecode, else ``'unknown'``.

    A function of this package also gets the hash of the map implementation modules (a changed helper changes it).
    """
    if isinstance(fn, functools.partial):
        bound = canonical_json({"args": list(fn.args), "keywords": dict(fn.keywords)})
        return f"partial({code_digest(fn.func)},{short_sha256(bound.encode())})"
    target = fn if inspect.isroutine(fn) or inspect.isclass(fn) else type(fn)
    try:
        digest = short_sha256(inspect.getsource(target).encode())
    except (OSError, TypeError):
        code = getattr(target, "__code__", None)
        if code is None:
            return "unknown"
        digest = "bytecode-" + short_sha256(code.co_code + repr(code.co_consts).encode())
    module = getattr(fn, "__module__", "") or ""
    if module.startswith(_PACKAGE):
        digest += "+" + _implementation_digest()
    return digest


def _json_default(value: Any) -> Any:
    if isinstance(value, np.ndarray):
        return {"ndarray": str(value.dtype), "shape": list(value.shape), "sha": short_sha256(value.tobytes())}
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, (set, frozenset)):
        return sorted(value, key=repr)
    return repr(value)


def canonical_json(params: dict[str, Any]) -> str:
    """``params`` as JSON with sorted keys; arrays by dtype, shape and content hash, sets sorted, others by ``repr``."""
    return json.dumps(params, sort_keys=True, default=_json_default, separators=(",", ":"))


def qualified_name(fn: Callable[..., Any]) -> str:
    """``module.qualname`` of a function (of its type for a callable object)."""
    module = getattr(fn, "__module__", None) or type(fn).__module__
    qualname = getattr(fn, "__qualname__", None) or type(fn).__qualname__
    return f"{module}.{qualname}"
