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
"""

from __future__ import annotations

import argparse
import functools
import time
from collections.abc import Callable

import numpy as np
from scipy.ndimage import distance_transform_edt, gaussian_filter

from nnunet_lossplug.maps import rw_map


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


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=3, help="timings per method; the best is shown")
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


if __name__ == "__main__":
    main()
