"""Map-kind registry: built-ins, user kinds, output checks, cache identities."""

from __future__ import annotations

import importlib.util
import pickle
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest

from nnunet_lossplug.maps import (
    MapKind,
    available_map_kinds,
    distance_to_boundary,
    get_map_kind,
    register_map_kind,
    rrw_map,
    rrw_reference_map,
    rw_map,
    unregister_map_kind,
)

LABELS = np.array([[0, 0, 1, 1, 2], [0, 1, 1, 2, 2], [0, 0, 1, 2, 2]])
SPACING = (2.0, 0.5)


@pytest.fixture
def registered():
    """Register user kinds in a test and remove them afterwards."""
    names = []

    def _register(name, fn, **params):
        kind = register_map_kind(name, fn, **params)
        names.append(name)
        return kind

    yield _register
    for name in names:
        unregister_map_kind(name)


def scaled_ac(labels, num_classes, spacing=None, scale=1.0):
    """User map: scale * (1 - y)."""
    return scale * (1.0 - np.eye(num_classes, dtype=np.float32)[labels].transpose(2, 0, 1))


def wrong_shape(labels, num_classes, spacing=None):
    return np.zeros(labels.shape)


def with_nan(labels, num_classes, spacing=None):
    out = np.zeros((num_classes, *labels.shape))
    out[0, 0, 0] = np.nan
    return out


def as_strings(labels, num_classes, spacing=None):
    return np.full((num_classes, *labels.shape), "x")


def test_builtins_are_registered_and_match_the_functions():
    assert {"rrw", "rrw_reference", "boundary", "ac", "cao", "distance"} <= set(available_map_kinds())
    for name, kind in [("rrw", "rrw"), ("boundary", "boundary"), ("ac", "ac"), ("cao", "cao")]:
        got = get_map_kind(name).compute(LABELS, 3, SPACING)
        assert got.dtype == np.float32
        np.testing.assert_array_equal(got, rw_map(LABELS, 3, kind, spacing=SPACING))
    np.testing.assert_array_equal(
        get_map_kind("rrw_reference").compute(LABELS, 3), rrw_reference_map(LABELS, 3)
    )
    np.testing.assert_array_equal(
        get_map_kind("distance").compute(LABELS, 3, SPACING), distance_to_boundary(LABELS, 3, SPACING)
    )


def test_user_kind_with_params(registered):
    kind = registered("test_scaled_ac", scaled_ac, scale=3.0)
    assert get_map_kind("test_scaled_ac") is kind
    expected = 3.0 * (LABELS[None] != np.arange(3)[:, None, None])
    np.testing.assert_array_equal(kind.compute(LABELS, 3), expected.astype(np.float32))
    emphasis = registered("test_rrw_emph", rrw_map, class_values=(1.0, 2.0, 4.0))
    np.testing.assert_array_equal(
        emphasis.compute(LABELS, 3, SPACING), rw_map(LABELS, 3, spacing=SPACING, class_values=(1, 2, 4))
    )


def test_identity_changes_with_params_and_name():
    a = MapKind("emph", rrw_map, {"class_values": (1.0, 2.0, 3.0)})
    b = MapKind("emph", rrw_map, {"class_values": (1.0, 2.0, 4.0)})
    c = MapKind("emph2", rrw_map, {"class_values": (1.0, 2.0, 3.0)})
    same = MapKind("emph", rrw_map, {"class_values": (1.0, 2.0, 3.0)})
    assert a.identity() != b.identity() and a.identity() != c.identity()
    assert a.identity() == same.identity() and a.digest() == same.digest()
    assert len(a.digest()) == 16
    # parameter order does not matter, array parameters are hashed by content
    p = MapKind("k", scaled_ac, {"scale": 2.0, "extra": np.arange(3)})
    q = MapKind("k", scaled_ac, {"extra": np.arange(3), "scale": 2.0})
    r = MapKind("k", scaled_ac, {"extra": np.arange(1, 4), "scale": 2.0})
    assert p.identity() == q.identity() != r.identity()


def _load_module(path: Path, source: str, module_name: str):
    path.write_text(textwrap.dedent(source))
    spec = importlib.util.spec_from_file_location(module_name, path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_identity_changes_with_code(tmp_path):
    # same module name, function name and params; only the function body differs
    v1 = _load_module(
        tmp_path / "v1.py", "def my_map(labels, num_classes, spacing=None):\n    return 1\n", "umap"
    )
    v2 = _load_module(
        tmp_path / "v2.py", "def my_map(labels, num_classes, spacing=None):\n    return 2\n", "umap"
    )
    k1, k2 = MapKind("mine", v1.my_map), MapKind("mine", v2.my_map)
    assert "fn=umap.my_map" in k1.identity()
    assert k1.identity() != k2.identity()
    # functions without retrievable source fall back to their bytecode
    namespace: dict = {}
    exec("def f(labels, num_classes, spacing=None):\n    return labels + 1\n", namespace)
    exec("def g(labels, num_classes, spacing=None):\n    return labels + 2\n", namespace)
    namespace["g"].__qualname__ = "f"
    ident_f, ident_g = MapKind("x", namespace["f"]).identity(), MapKind("x", namespace["g"]).identity()
    assert "bytecode-" in ident_f and ident_f != ident_g


def test_builtin_identity_is_stable_across_processes_and_maps_import_no_torch():
    code = (
        "import sys; from nnunet_lossplug.maps import get_map_kind; print(get_map_kind('rrw').identity()); "
        "print(sorted(m for m in ('torch', 'nnunetv2') if m in sys.modules))"
    )
    root = Path(__file__).resolve().parents[2]
    identity, heavy = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=root
    ).stdout.split("\n")[:2]
    assert identity == get_map_kind("rrw").identity()
    assert "0x" not in identity  # no memory addresses
    assert heavy == "[]"  # architecture: maps is pure numpy/scipy/edt


def test_compute_checks_output(registered):
    for name, fn, match in [
        ("test_wrong_shape", wrong_shape, r"'test_wrong_shape'.*shape \(3, 5\).*\(3, 3, 5\)"),
        ("test_nan", with_nan, r"'test_nan'.*NaN or inf"),
        ("test_strings", as_strings, r"'test_strings'.*dtype"),
    ]:
        kind = registered(name, fn)
        with pytest.raises(ValueError, match=match):
            kind.compute(LABELS, 3)


def test_compute_checks_inputs():
    kind = get_map_kind("ac")
    with pytest.raises(ValueError, match=r"-1.*background"):
        kind.compute(LABELS - 1, 3)
    with pytest.raises(ValueError, match=r"expected 2 values"):
        kind.compute(LABELS, 3, (1.0, 1.0, 1.0))


def test_registry_errors(registered):
    with pytest.raises(KeyError, match=r"unknown map kind 'nope'.*'rrw'"):
        get_map_kind("nope")
    with pytest.raises(ValueError, match="already registered"):
        register_map_kind("rrw", scaled_ac)
    registered("test_same", scaled_ac, scale=2.0)
    assert register_map_kind("test_same", scaled_ac, scale=2.0).params == {"scale": 2.0}  # idempotent
    with pytest.raises(ValueError, match="already registered"):
        register_map_kind("test_same", scaled_ac, scale=5.0)
    with pytest.raises(ValueError, match=r"cannot be called.*scael"):
        register_map_kind("test_typo", scaled_ac, scael=2.0)
    with pytest.raises(ValueError, match="name"):
        register_map_kind("bad name/with slash", scaled_ac)
    with pytest.raises(ValueError, match="callable"):
        register_map_kind("test_not_callable", 3)
    assert "test_typo" not in available_map_kinds()


def test_kinds_pickle_for_worker_processes(registered):
    for kind in (get_map_kind("rrw"), registered("test_pickled", scaled_ac, scale=2.0)):
        clone = pickle.loads(pickle.dumps(kind))
        assert clone.identity() == kind.identity()
        np.testing.assert_array_equal(clone.compute(LABELS, 3), kind.compute(LABELS, 3))
