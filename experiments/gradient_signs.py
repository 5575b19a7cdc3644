"""Experiment 1 -- gradient signs of the RW loss over the probability simplex (Valverde & Tohka 2022, Sec. 3.4, Fig. 2).

Claim (Valverde & Tohka 2022): with RW-Boundary maps (eq. 3) and three or more classes, the logit gradient of the RW
loss ``g_k = s_k (z_k - Σ_j s_j z_j)`` (eq. 2) can have several negative components, so several softmax
values are pushed up at once ("more than half" of the softmax vectors for the voxel of Fig. 2); with RRW
maps (eq. 4) exactly one component, the true class, is negative for every softmax vector.

What this script measures (no training, numpy only, seconds):

1. Fig. 2 in miniature: for one voxel of true class 2 in a generated 3-class label image, the number of
   negative gradient components at every point of a fine lattice on the simplex
   (:func:`~nnunet_lossplug.maps.simplex_grid`, :func:`~nnunet_lossplug.maps.gradient_sign_counts`), for
   its RW-Boundary and its RRW values; the share of softmax vectors with more than one negative component,
   checked against the closed form ``(b - a) / (b - c)`` for ``z = (a, b, c)``, ``c < a < b``.
2. The same question over whole maps: :func:`~nnunet_lossplug.maps.rectification_report` (share of voxels
   at which SOME softmax vector gives more than one negative component, an exact criterion) and the share
   of softmax vectors with more than one negative component averaged over all voxels (simplex lattice),
   for RW-Boundary, RRW, AC and Cao maps of the 3-class image and of synthetic cardiac data (4 classes),
   per 2D slice and per 3D volume (anisotropic spacing).

Run: ``python experiments/gradient_signs.py [--quick]``; writes ``docs/figures/gradient_signs.png`` and
``docs/figures/gradient_signs.md``.
"""

from __future__ import annotations

import sys
from pathlib import Path

if __package__ in (None, ""):  # run as a script: make the repository root importable
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
from matplotlib.colors import BoundaryNorm, ListedColormap  # noqa: E402
from matplotlib.tri import Triangulation  # noqa: E402

from experiments.common.generators import ellipse_mask  # noqa: E402
from experiments.common.reporting import experiment_parser, markdown_table, start_run  # noqa: E402
from nnunet_lossplug.demo.synthetic import SyntheticSpec, synthetic_case  # noqa: E402
from nnunet_lossplug.maps import (  # noqa: E402
    gradient_sign_counts,
    max_negative_components,
    rectification_report,
    rw_map,
    simplex_grid,
)

NAME = "gradient_signs"
MAP_KINDS = ("boundary", "rrw", "ac", "cao")
MAP_TITLES = {
    "boundary": "RW-Boundary (eq. 3)", "rrw": "RRW (eq. 4)", "ac": "AC (1 - y)", "cao": "Cao (1 - 2y)"
}
# colours for 0, 1, 2, 3 negative gradient components
COUNT_COLOURS = ListedColormap(["#bbbbbb", "#4daf4a", "#e41a1c", "#7b3294"])


def three_class_image(size: int = 48) -> np.ndarray:
    """A 3-class 2D label image: background (0), a large ellipse (1) and a smaller one (2) touching it."""
    shape = (size, size)
    labels = np.zeros(shape, dtype=np.int64)
    labels[ellipse_mask(shape, (0.5 * size, 0.38 * size), (0.3 * size, 0.22 * size), 0.3)] = 1
    small = ellipse_mask(shape, (0.52 * size, 0.72 * size), (0.16 * size, 0.14 * size), 0.0)
    labels[small & (labels == 0)] = 2
    return labels


def unstable_softmax_share(z_voxels: np.ndarray, grid: np.ndarray) -> np.ndarray:
    """Per voxel, the share of lattice softmax vectors with more than one negative component.

    ``z_voxels`` ``(V, K)``; uses the library's :func:`gradient_sign_counts` voxel by voxel.
    """
    return np.array([np.mean(gradient_sign_counts(z, grid) > 1) for z in z_voxels])


def closed_form_share(z: np.ndarray, true_class: int) -> float:
    """Exact area share of the 3-class simplex with two negative components for ``z`` (true class minimum).

    For ``z = (a, b, c)`` with the true value ``c`` the smallest and ``a < b`` the others, components
    ``c`` and ``a`` are both negative iff ``z̄ > a``; the area of that region is ``(b - a) / (b - c)``
    (Valverde & Tohka 2022 Fig. 2 geometry; derived independently of the library).
    """
    others = np.delete(z, true_class)
    low, high = np.sort(others)
    if high == low:
        return 0.0
    return float((high - low) / (high - z[true_class]))


def map_statistics(labels: np.ndarray, num_classes: int, spacing, grid: np.ndarray,
                   rng: np.random.Generator, max_voxels: int) -> dict[str, tuple[float, float]]:
    """For each map kind: (share of unstable voxels, mean share of unstable softmax vectors over voxels).

    The second value averages :func:`unstable_softmax_share` over all voxels; voxels that the exact
    criterion reports as stable contribute 0, and at most ``max_voxels`` of the unstable ones are sampled.
    """
    stats = {}
    for kind in MAP_KINDS:
        z = rw_map(labels, num_classes, kind, spacing=spacing)
        report = rectification_report(z, labels, batch=False)
        z_voxels = np.moveaxis(z, 0, -1).reshape(-1, num_classes).astype(np.float64)
        candidates = np.flatnonzero(max_negative_components(z_voxels, axis=1) >= 2)
        sample = candidates
        if len(candidates) > max_voxels:
            sample = rng.choice(candidates, size=max_voxels, replace=False)
        mean_share = 0.0
        if len(sample):
            share_on_unstable = unstable_softmax_share(z_voxels[sample], grid).mean()
            mean_share = float(share_on_unstable * len(candidates) / len(z_voxels))
        stats[kind] = (report.fraction_unstable, mean_share)
    return stats


def mean_statistics(per_map: list[dict[str, tuple[float, float]]]) -> dict[str, tuple[float, float]]:
    """Average the two statistics of :func:`map_statistics` over several maps, per map kind."""
    return {
        kind: (float(np.mean([m[kind][0] for m in per_map])), float(np.mean([m[kind][1] for m in per_map])))
        for kind in MAP_KINDS
    }


def ternary_xy(points: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Barycentric ``(s1, s2, s3)`` to 2D: vertices class 1 at (0, 0), class 2 at (1, 0), class 3 at top."""
    x = points[:, 1] + 0.5 * points[:, 2]
    y = np.sqrt(3) / 2 * points[:, 2]
    return x, y


def draw_ternary(ax, grid: np.ndarray, counts: np.ndarray, z: np.ndarray, title: str) -> None:
    """Colour the simplex by the number of negative gradient components (Valverde & Tohka 2022 Fig. 2 style)."""
    x, y = ternary_xy(grid)
    triangulation = Triangulation(x, y)
    per_triangle = np.max(counts[triangulation.triangles], axis=1)  # a triangle is red if any corner is
    ax.tripcolor(triangulation, facecolors=per_triangle, cmap=COUNT_COLOURS,
                 norm=BoundaryNorm([-0.5, 0.5, 1.5, 2.5, 3.5], COUNT_COLOURS.N), edgecolors="none")
    ax.plot([0, 1, 0.5, 0], [0, 0, np.sqrt(3) / 2, 0], color="black", lw=1)
    labels = [f"class 0\nz={z[0]:.2f}", f"class 1\nz={z[1]:.2f}", f"class 2 (true)\nz={z[2]:.2f}"]
    ax.text(-0.03, -0.03, labels[0], ha="right", va="top", fontsize=8)
    ax.text(1.03, -0.03, labels[1], ha="left", va="top", fontsize=8)
    ax.text(0.5, np.sqrt(3) / 2 + 0.03, labels[2], ha="center", va="bottom", fontsize=8)
    share = np.mean(counts > 1)
    ax.set_title(f"{title}\n{100 * share:.1f} % of softmax vectors: >1 negative component", fontsize=9)
    ax.set_xlim(-0.25, 1.25)
    ax.set_ylim(-0.2, 1.05)
    ax.set_aspect("equal")
    ax.axis("off")


def main(argv: list[str] | None = None) -> int:
    parser = experiment_parser(__doc__.splitlines()[0])
    args = parser.parse_args(argv)
    run = start_run(NAME, args)
    rng = np.random.default_rng(0)
    steps3, steps4 = (40, 8) if args.quick else (200, 36)
    num_cases = 2 if args.quick else 10
    max_voxels = 200 if args.quick else 4000
    grid3 = simplex_grid(3, steps3)
    grid4 = simplex_grid(4, steps4)

    # --- 1. one voxel, Fig. 2 -----------------------------------------------------------------------
    labels3 = three_class_image()
    boundary3 = rw_map(labels3, 3, "boundary")
    rrw3 = rw_map(labels3, 3, "rrw")
    true2 = np.argwhere(labels3 == 2)
    shares = np.array([closed_form_share(boundary3[:, r, c], 2) for r, c in true2])
    # the voxel whose exact share is the median of the class-2 voxels: a typical voxel, not a chosen extreme
    pick = int(np.argsort(shares)[len(shares) // 2])
    row, col = true2[pick]
    z_boundary, z_rrw = boundary3[:, row, col].astype(np.float64), rrw3[:, row, col].astype(np.float64)
    counts_boundary = gradient_sign_counts(z_boundary, grid3)
    counts_rrw = gradient_sign_counts(z_rrw, grid3)
    voxel_rows = []
    for kind, z, counts in (("RW-Boundary", z_boundary, counts_boundary), ("RRW", z_rrw, counts_rrw)):
        voxel_rows.append([kind, "(" + ", ".join(f"{v:.2f}" for v in z) + ")", float(np.mean(counts > 1)),
                           closed_form_share(z, 2), int(counts.max())])

    # --- 2. whole maps ------------------------------------------------------------------------------
    spec = SyntheticSpec()
    cases = [synthetic_case(rng, (8, 40, 40))[1].astype(np.int64) for _ in range(num_cases)]
    map_rows = []
    results: dict[str, dict[str, tuple[float, float]]] = {}
    results["3-class image (2D)"] = map_statistics(labels3, 3, None, grid3, rng, max_voxels)
    slice_stats = []
    for volume in cases:
        for slice_labels in volume:
            if slice_labels.any():
                stats = map_statistics(slice_labels, 4, (1.5, 1.5), grid4, rng, max_voxels // 20 + 1)
                slice_stats.append(stats)
    results["cardiac, 2D slices (4 classes)"] = mean_statistics(slice_stats)
    volume_stats = [map_statistics(volume, 4, spec.spacing, grid4, rng, max_voxels // 4) for volume in cases]
    results["cardiac, 3D volumes (4 classes)"] = mean_statistics(volume_stats)
    for data_name, stats in results.items():
        for kind in MAP_KINDS:
            map_rows.append([data_name, MAP_TITLES[kind], stats[kind][0], stats[kind][1]])

    # --- figure -------------------------------------------------------------------------------------
    fig, axes = plt.subplots(2, 3, figsize=(13, 8.5))
    ax = axes[0, 0]
    ax.imshow(labels3, cmap=ListedColormap(["#f0f0f0", "#377eb8", "#ff7f00"]), interpolation="nearest")
    ax.plot(col, row, marker="x", color="black", markersize=10, mew=2)
    ax.set_title("Generated 3-class label image\n(x: the voxel of the two simplices)", fontsize=9)
    ax.set_xlabel("column (px)")
    ax.set_ylabel("row (px)")
    draw_ternary(axes[0, 1], grid3, counts_boundary, z_boundary, "RW-Boundary map")
    draw_ternary(axes[0, 2], grid3, counts_rrw, z_rrw, "RRW map")
    handles = [plt.Rectangle((0, 0), 1, 1, color=COUNT_COLOURS(i)) for i in (1, 2)]
    axes[0, 2].legend(handles, ["1 negative component (true class only)", "2 negative components"],
                      loc="lower center", bbox_to_anchor=(0.5, -0.12), fontsize=8, frameon=False)

    share_map = np.zeros(labels3.shape)
    flat_z = np.moveaxis(boundary3, 0, -1).reshape(-1, 3).astype(np.float64)
    share_map.ravel()[:] = unstable_softmax_share(flat_z, simplex_grid(3, 30 if args.quick else 60))
    ax = axes[1, 0]
    image = ax.imshow(share_map, cmap="magma", vmin=0, vmax=1, interpolation="nearest")
    ax.contour(labels3, levels=[0.5, 1.5], colors="white", linewidths=0.7)
    fig.colorbar(image, ax=ax, fraction=0.046, label="share of softmax vectors, >1 negative")
    ax.set_title("RW-Boundary, per voxel (RRW: 0 everywhere)", fontsize=9)
    ax.set_xlabel("column (px)")
    ax.set_ylabel("row (px)")

    bar_panels = (
        (axes[1, 1], 0, "share of voxels",
         "Whole maps: voxels where some softmax\ngives >1 negative component"),
        (axes[1, 2], 1, "share of softmax vectors (mean over voxels)",
         "Whole maps: softmax vectors with\n>1 negative component"),
    )
    for ax, column, ylabel, title in bar_panels:
        names = list(results)
        width = 0.2
        for offset, kind in enumerate(MAP_KINDS):
            values = [results[name][kind][column] for name in names]
            positions = np.arange(len(names)) + (offset - 1.5) * width
            bars = ax.bar(positions, values, width, label=MAP_TITLES[kind])
            ax.bar_label(bars, labels=[f"{v:.2f}" for v in values], fontsize=6, padding=1)
        ax.set_xticks(np.arange(len(names)))
        ax.set_xticklabels([name.replace(", ", ",\n").replace(" (", "\n(") for name in names], fontsize=8)
        ax.set_ylabel(ylabel, fontsize=9)
        ax.set_ylim(0, 1.38)
        ax.set_yticks(np.linspace(0, 1, 6))
        ax.grid(axis="y", alpha=0.3)
        ax.legend(fontsize=7, loc="upper right", ncol=2)
        ax.set_title(title, fontsize=9)
    fig.suptitle("Valverde & Tohka 2022 Fig. 2: number of negative RW-loss gradient components, RW-Boundary vs RRW maps"
                 + (" [QUICK]" if args.quick else ""), fontsize=11)
    fig.tight_layout()
    fig.savefig(run.png_path, dpi=110)
    plt.close(fig)

    # --- tables -------------------------------------------------------------------------------------
    voxel_table = markdown_table(
        ["map", "z at the voxel (classes 0, 1, 2; true 2)", "share >1 negative (lattice)",
         "share (closed form)", "max negative components"], voxel_rows)
    spread_table = markdown_table(
        ["class-2 voxels", "min", "25 %", "median", "75 %", "max", "share of voxels with > 0.5"],
        [["RW-Boundary, share of softmax vectors with 2 negative components (closed form)",
          *[float(q) for q in np.quantile(shares, [0, 0.25, 0.5, 0.75, 1])], float(np.mean(shares > 0.5))]])
    map_table = markdown_table(
        ["label data", "map", "voxels that can be unstable", "softmax vectors with >1 negative (voxel mean)"],
        map_rows)
    print(voxel_table, "\n")
    print(spread_table, "\n")
    print(map_table)
    body = (
        f"One voxel of true class 2 (row {row}, column {col}; the median class-2 voxel by unstable share) "
        f"of the generated 3-class image; simplex lattice with {len(grid3)} interior points "
        f"(`simplex_grid(3, {steps3})`).\n\n{voxel_table}\n\n"
        f"How typical is that voxel: the exact share over all {len(shares)} class-2 voxels of the image.\n\n"
        f"{spread_table}\n\n"
        f"Whole maps: 'voxels that can be unstable' is `rectification_report(...).fraction_unstable` "
        f"(exact); the last column averages over voxels the share of the simplex lattice "
        f"(`simplex_grid(K, steps)`, steps {steps3} for K=3, {steps4} for K=4; at most {max_voxels} "
        f"unstable voxels sampled per map) with more than one negative component. Cardiac: {num_cases} "
        f"synthetic volumes of 8 x 40 x 40 voxels (spacing {spec.spacing} mm), 2D maps per non-empty "
        f"slice or one 3D map per volume.\n\n{map_table}"
    )
    run.write_markdown("Gradient signs of the RW loss over the probability simplex (Valverde & Tohka 2022 Fig. 2)",
                       body)
    print(f"\nwrote {run.png_path} and {run.md_path} in {run.elapsed():.1f} s")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
