"""Time RW-map computation: one-pass multi-label ``edt`` vs the reference per-class scipy loop.

Run ``python benchmarks/bench_maps.py`` with the package installed (``pip install -e .``, or
``PYTHONPATH=.`` from the repository root); it takes under a minute on one core. For each generated
3D label volume it times

- ``rrw``: :func:`nnunet_lossplug.maps.rw_map` (``kind="rrw"``, one multi-label ``edt`` pass) against the
  reference recipe (``scipy.ndimage.distance_transform_edt`` once per class, then ``-d / max d``);
- ``boundary``: ``rw_map(kind="boundary")`` (one multi-label pass + one binary ``edt`` per present
  class) against scipy with two EDTs per class (inside and outside, as Kervadec's Boundary loss code),

and prints the best-of-N wall time, the ratio scipy/edt and the largest absolute difference between the
two maps (float32 rounding only; volumes here have no class filling the whole array).

A second table times the precompute hook's RRW **encoding** of one large case (``--encode-shape``, default
80x320x320, blobs with K = 4, 20, 100 classes) against the bare multi-label EDT it is built on:
``RRWCodec.encode`` (the own-class depth from one EDT pass and a per-class maximum, ``rrw_true_class_values``)
and the former path (the K-channel ``rrw_map``, then the true-class channel picked). Peak memory is the
``tracemalloc`` peak of numpy allocations above the labels; the K-channel path is skipped where its map
alone would exceed ``--max-dense-gb``. Targets: encode time <= 1.5x the bare EDT, peak memory
independent of K.
"""

from __future__ import annotations

import argparse
import functools
import time
import tracemalloc
from collections.abc import Callable

import numpy as np
from scipy.ndimage import distance_transform_edt, gaussian_filter

from nnunet_lossplug.maps import rw_map
from nnunet_lossplug.maps.distances import distance_to_other_label
from nnunet_lossplug.maps.validation import validate_labels
from nnunet_lossplug.nnunet.codecs.softmax import codec_for


def acdc_like_volume(shape: tuple[int, int, int]) -> np.ndarray:
    """Nested ellipsoids like a short-axis cardiac MRI: background, RV, myocardium, LV cavity (4 classes)."""
    z, y, x = np.indices(shape, dtype=np.float32)
    cz, cy, cx = (s / 2 for s in shape)
    rz, ry, rx = shape[0] * 0.45, shape[1] * 0.22, shape[2] * 0.22
    r_lv = ((z - cz) / rz) ** 2 + ((y - cy) / ry) ** 2 + ((x - cx) / rx) ** 2
    r_rv = ((z - cz) / rz) ** 2 + ((y - cy) / (ry * 1.2)) ** 2 + ((x - cx + rx * 1.6) / (rx * 0.8)) ** 2
    labels = np.zeros(shape, dtype=np.uint8)
    labels[r_rv < 1] = 1
    labels[r_lv < 1] = 2
    labels[r_lv < 0.45] = 3
    return labels


def blob_volume(shape: tuple[int, int, int], num_classes: int, seed: int) -> np.ndarray:
    """Smoothed noise quantised into ``num_classes`` classes: many irregular boundaries."""
    field = gaussian_filter(np.random.default_rng(seed).random(shape, dtype=np.float32), (1, 6, 6))
    edges = np.quantile(field, np.linspace(0, 1, num_classes + 1)[1:-1])
    return np.digitize(field, edges).astype(np.uint8)


def scipy_rrw(labels: np.ndarray, num_classes: int, spacing: tuple[float, ...]) -> np.ndarray:
    """Reference recipe: per class, scipy EDT of the mask, ``-d / max d`` inside, 1 outside."""
    out = np.ones((num_classes, *labels.shape), dtype=np.float32)
    for k in range(num_classes):
        mask = labels == k
        if mask.any():
            d = distance_transform_edt(mask, sampling=spacing)
            out[k][mask] = -d[mask] / d.max()
    return out


def scipy_boundary(labels: np.ndarray, num_classes: int, spacing: tuple[float, ...]) -> np.ndarray:
    """Signed distance per class with two scipy EDTs (outside minus inside); absent class 0."""
    out = np.zeros((num_classes, *labels.shape), dtype=np.float32)
    for k in range(num_classes):
        mask = labels == k
        if mask.any():
            out[k] = distance_transform_edt(~mask, sampling=spacing) - distance_transform_edt(
                mask, sampling=spacing
            )
    return out


def best_time(fn: Callable[[], np.ndarray], repeats: int) -> tuple[float, np.ndarray]:
    best, result = float("inf"), None
    for _ in range(repeats):
        start = time.perf_counter()
        result = fn()
        best = min(best, time.perf_counter() - start)
    return best, result


def timed_peak(fn: Callable[[], object], repeats: int) -> tuple[float, float]:
    """Best wall time over ``repeats`` calls and the tracemalloc peak (MB) of one call."""
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - start)
    tracemalloc.start()
    fn()
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    return best, peak / 1e6


def encode_table(shape: tuple[int, int, int], spacing: tuple[float, ...], repeats: int, max_dense_gb: float) -> None:
    print()
    print(f"RRW encoding of one case {shape[0]}x{shape[1]}x{shape[2]} ({np.prod(shape) / 1e6:.1f} M voxels), "
          f"best of {repeats}; peak = tracemalloc peak of one call")
    header = f"{'K':>4} {'method':<34} {'ms':>9} {'x EDT':>7} {'peak MB':>9}"
    print(header)
    print("-" * len(header))
    for num_classes in (4, 20, 100):
        labels = validate_labels(blob_volume(shape, num_classes, seed=num_classes), num_classes)
        codec = codec_for("rrw", num_classes)

        def dense_then_pick(labels=labels, num_classes=num_classes):
            z = rw_map(labels, num_classes, "rrw", spacing=spacing)
            return (1.0 + np.take_along_axis(z, labels[None].astype(np.intp), axis=0)).astype(np.float16)

        methods = {
            "bare multi-label EDT": lambda labels=labels: distance_to_other_label(
                labels, spacing),
            "RRWCodec.encode": lambda codec=codec, labels=labels: codec.encode(
                labels, spacing),
        }
        dense_gb = num_classes * labels.size * 4 / 1e9
        if dense_gb <= max_dense_gb:
            methods["former: K-channel map, then pick"] = dense_then_pick
        base = None
        for label, fn in methods.items():
            seconds, peak = timed_peak(fn, repeats)
            base = seconds if base is None else base
            print(f"{num_classes:>4} {label:<34} {seconds * 1e3:>9.1f} {seconds / base:>6.2f}x {peak:>9.0f}")
        if dense_gb > max_dense_gb:
            print(f"{num_classes:>4} {'former: K-channel map, then pick':<34} skipped: the map alone is "
                  f"{dense_gb:.1f} GB")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=3, help="timings per method; the best is shown")
    parser.add_argument("--encode-shape", type=int, nargs=3, default=[80, 320, 320],
                        help="shape of the case of the encoding table (z y x)")
    parser.add_argument("--max-dense-gb", type=float, default=3.0,
                        help="skip the former K-channel path where its map alone would exceed this")
    args = parser.parse_args()

    spacing = (10.0, 1.5625, 1.5625)  # ACDC-like: thick slices, fine in-plane resolution
    cases = [
        ("acdc-like 10x256x216", acdc_like_volume((10, 256, 216)), 4),
        ("blobs 10x256x216", blob_volume((10, 256, 216), 4, seed=0), 4),
        ("blobs 32x160x160", blob_volume((32, 160, 160), 3, seed=1), 3),
    ]
    scipy_fns = {"rrw": scipy_rrw, "boundary": scipy_boundary}
    header = (
        f"{'volume':<22} {'K':>2} {'kind':<9} {'edt ms':>9} {'scipy ms':>9} {'ratio':>7} {'max |diff|':>11}"
    )
    print(f"spacing {spacing}, best of {args.repeats}, one thread")
    print(header)
    print("-" * len(header))
    for name, labels, num_classes in cases:
        for kind, scipy_fn in scipy_fns.items():
            ours_fn = functools.partial(rw_map, labels, num_classes, kind, spacing=spacing)
            t_edt, ours = best_time(ours_fn, args.repeats)
            t_ref, ref = best_time(functools.partial(scipy_fn, labels, num_classes, spacing), args.repeats)
            diff = float(np.abs(ours - ref).max())
            print(
                f"{name:<22} {num_classes:>2} {kind:<9} {t_edt * 1e3:>9.1f} {t_ref * 1e3:>9.1f} "
                f"{t_ref / t_edt:>6.1f}x {diff:>11.2e}"
            )
    encode_table(tuple(args.encode_shape), spacing, args.repeats, args.max_dense_gb)


if __name__ == "__main__":
    main()
