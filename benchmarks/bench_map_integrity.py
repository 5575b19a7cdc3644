"""Cost of the map cache's integrity checks: hashing every map file, checking values at load.

Run ``python benchmarks/bench_map_integrity.py`` with the package installed. It writes real ``.npy`` map files
(RRW and RW-Boundary encodings of generated cardiac-like volumes, with the plugin's codecs and atomic writer)
into a temporary folder, for three dataset sizes:

- ``demo``: the ``nnunet-lossplug demo`` dataset (10 cases of 10 x 64 x 64),
- ``acdc``: ACDC-like (100 cases of 10 x 256 x 216),
- ``large3d``: a large 3D case (1 case of 128 x 256 x 256),

and times, best of ``--repeat``, with the files in the page cache (the usual state right after precompute; a
cold disk adds its read time, which nnU-Net's own start-up pays for its data too):

- ``hash``: :func:`file_digest` of every map file (what ``precompute`` and every training start do per case),
- ``check``: :meth:`MapCodec.check_encoded` of every map (what the data loader does once per case and process),

and prints milliseconds per MiB and the total per dataset.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import numpy as np

from nnunet_lossplug.nnunet.codecs.softmax import codec_for
from nnunet_lossplug.nnunet.map_cache.atomic import write_npy_atomic
from nnunet_lossplug.nnunet.map_cache.integrity import file_digest

DATASETS = {"demo": (10, (10, 64, 64)), "acdc": (100, (10, 256, 216)), "large3d": (1, (128, 256, 256))}


def cardiac_like(shape: tuple[int, int, int], seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    z, y, x = np.indices(shape, dtype=np.float32)
    cy, cx = shape[1] / 2 + rng.normal(0, 5), shape[2] / 2 + rng.normal(0, 5)
    r = ((z - shape[0] / 2) / (shape[0] * 0.45)) ** 2 + ((y - cy) / (shape[1] * 0.22)) ** 2 \
        + ((x - cx) / (shape[2] * 0.22)) ** 2
    labels = np.zeros(shape, dtype=np.int16)
    labels[r < 1.6] = 1
    labels[r < 1] = 2
    labels[r < 0.45] = 3
    return labels


def best_of(repeat: int, function) -> float:
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        function()
        times.append(time.perf_counter() - start)
    return min(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--datasets", default=",".join(DATASETS))
    args = parser.parse_args()
    print(f"{'dataset':<8} {'kind':<9} {'cases':>5} {'MiB':>8} {'hash ms':>9} {'ms/MiB':>7} {'check ms':>9} "
          f"{'ms/MiB':>7}")
    for name in args.datasets.split(","):
        cases, shape = DATASETS[name]
        for kind in ("rrw", "boundary"):
            codec = codec_for(kind, 4)
            with tempfile.TemporaryDirectory() as tmp:
                paths = []
                for case in range(cases):
                    path = Path(tmp) / f"case_{case:03d}.npy"
                    write_npy_atomic(path, codec.encode(cardiac_like(shape, case), (10.0, 1.5, 1.5)))
                    paths.append(path)
                mib = sum(p.stat().st_size for p in paths) / 2**20
                hash_s = best_of(args.repeat, lambda: [file_digest(p) for p in paths])  # noqa: B023
                check_s = best_of(args.repeat, lambda: [codec.check_encoded(np.load(p, mmap_mode="r"))  # noqa: B023
                                                        for p in paths])  # noqa: B023
                print(f"{name:<8} {kind:<9} {cases:>5} {mib:>8.1f} {hash_s * 1e3:>9.1f} {hash_s * 1e3 / mib:>7.2f} "
                      f"{check_s * 1e3:>9.1f} {check_s * 1e3 / mib:>7.2f}")


if __name__ == "__main__":
    main()
