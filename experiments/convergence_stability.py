"""Experiment 2 -- convergence stability of RW-Boundary vs RRW maps over seeds (Valverde & Tohka 2022 Sec. 4.3, Fig. 5).

Claim (Valverde & Tohka 2022): trained with the RW loss alone, RW-Boundary maps (eq. 3, = Boundary loss) sometimes
reach a sub-optimal minimum (Dice around 0.5) because their gradients can push several softmax values up
at once; all models trained with RRW maps (eq. 4) converge (Dice >= 0.9 on ACDC17 with nnU-Net, 50 models
each, 50 epochs). The figure is the empirical CDF of the validation Dice of the models.

Here, at CPU scale: a generated 4-class 2D dataset (:func:`experiments.common.generators.cardiac_like_images`,
32 x 32 images, 10 % without heart), a small 2D U-Net in plain PyTorch (no deep supervision), the RW loss
``mean(softmax * z)`` (:class:`~nnunet_lossplug.losses.RegionWiseLoss`) with maps computed once per
training image by :func:`~nnunet_lossplug.maps.rw_map` (2D, pixel spacing 1.5 mm). For each seed (the
network initialisation and the batch order; the data are fixed) one model is trained with each map kind
under identical settings. Reported: the validation Dice (per class over the whole validation set, mean of
the three foreground classes) after training, its empirical CDF, the per-class Dice and the validation
Dice during training, and a paired permutation test (library, paired by seed).

Run: ``python experiments/convergence_stability.py [--quick]``; writes
``docs/figures/convergence_stability.png`` and ``docs/figures/convergence_stability.md``.
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
import torch  # noqa: E402

from experiments.common.generators import Segmentation2d, cardiac_like_images  # noqa: E402
from experiments.common.metrics import dice_per_group  # noqa: E402
from experiments.common.plots import per_class_dots  # noqa: E402
from experiments.common.reporting import experiment_parser, markdown_table, start_run  # noqa: E402
from experiments.common.training import (  # noqa: E402
    TrainSettings,
    map_batch_loss,
    predict_labels,
    train_model,
)
from experiments.common.unet2d import TinyUNet2d  # noqa: E402
from nnunet_lossplug.evaluation import paired_permutation_test  # noqa: E402
from nnunet_lossplug.losses import RegionWiseLoss  # noqa: E402
from nnunet_lossplug.maps import rw_map  # noqa: E402

NAME = "convergence_stability"
NUM_CLASSES = 4
CLASS_NAMES = ("RV", "MYO", "LV")
MAP_KINDS = ("boundary", "rrw")
KIND_LABELS = {"boundary": "RW-Boundary (eq. 3)", "rrw": "RRW (eq. 4)"}
KIND_COLOURS = {"boundary": "#d95f02", "rrw": "#1b9e77"}
PIXEL_SPACING = (1.5, 1.5)


def validation_dice(model: torch.nn.Module, images: torch.Tensor, data: Segmentation2d) -> np.ndarray:
    """Per-class Dice (RV, MYO, LV) of the arg-max prediction over the whole validation set, ``(3,)``."""
    prediction = predict_labels(model, images)
    one_group = np.zeros(len(data), dtype=np.int64)
    return dice_per_group(prediction, data.labels, one_group, classes=(1, 2, 3))[0]


def train_one(kind: str, seed: int, train_images: torch.Tensor, maps: torch.Tensor, val_images: torch.Tensor,
              val: Segmentation2d, settings: TrainSettings, eval_every: int) -> dict:
    """Train one U-Net with the RW loss and ``maps`` from initialisation ``seed``; returns its record."""
    torch.manual_seed(seed)
    model = TinyUNet2d(in_channels=1, num_classes=NUM_CLASSES)
    loss_fn = RegionWiseLoss()
    curve: list[tuple[int, float]] = []

    def record(step: int) -> None:
        if (step + 1) % eval_every == 0 and step + 1 < settings.steps:
            curve.append((step + 1, float(validation_dice(model, val_images, val).mean())))

    losses = train_model(model, train_images, map_batch_loss(loss_fn, maps), settings, seed=seed,
                         after_step=record)
    per_class = validation_dice(model, val_images, val)
    curve.append((len(losses), float(per_class.mean())))
    return {"kind": kind, "seed": seed, "per_class": per_class, "dice": float(per_class.mean()),
            "curve": curve, "diverged": not np.isfinite(losses[-1])}


def empirical_cdf(values: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Valverde & Tohka 2022 eq. 8: ``F(x) = (1/n) Σ_i 1[d_i <= x]``, as step coordinates over ``[0, 1]``."""
    ordered = np.sort(values)
    x = np.concatenate([[0.0], np.repeat(ordered, 2), [1.0]])
    y = np.concatenate([[0.0, 0.0], np.repeat(np.arange(1, len(ordered) + 1) / len(ordered), 2)])
    return x, y


def summary_rows(records: list[dict]) -> list[list[object]]:
    """One table row per map kind: spread of the final Dice, failures, per-class means."""
    rows = []
    for kind in MAP_KINDS:
        dice = np.array([r["dice"] for r in records if r["kind"] == kind])
        per_class = np.array([r["per_class"] for r in records if r["kind"] == kind])
        sd = float(dice.std(ddof=1)) if len(dice) > 1 else float("nan")
        rows.append([KIND_LABELS[kind], len(dice), float(dice.mean()), sd, float(np.median(dice)),
                     float(dice.min()), float(dice.max()),
                     f"{int(np.sum(dice < 0.5))}/{len(dice)}", f"{int(np.sum(dice < 0.8))}/{len(dice)}",
                     *[float(v) for v in per_class.mean(axis=0)]])
    return rows


def draw_figure(records: list[dict], path: Path, title_suffix: str, test_line: str) -> None:
    """CDF of the final Dice (Fig. 5), validation Dice during training, per-class final Dice."""
    fig, axes = plt.subplots(1, 3, figsize=(15, 4.6))
    ax = axes[0]
    for kind in MAP_KINDS:
        dice = np.array([r["dice"] for r in records if r["kind"] == kind])
        x, y = empirical_cdf(dice)
        ax.plot(x, y, color=KIND_COLOURS[kind], lw=2, label=f"{KIND_LABELS[kind]} (n={len(dice)})")
    ax.set_xlabel("validation Dice after training (mean of RV, MYO, LV)")
    ax.set_ylabel("fraction of models with Dice <= x (empirical CDF)")
    ax.set_xlim(0, 1)
    ax.set_ylim(0, 1.02)
    ax.grid(alpha=0.3)
    ax.legend(loc="upper left", fontsize=9)
    ax.text(0.02, 0.62, test_line.replace(": ", ":\n", 1), transform=ax.transAxes, fontsize=8, va="top")
    ax.set_title("Empirical CDF of the final Dice (Valverde & Tohka 2022 Fig. 5)", fontsize=10)

    ax = axes[1]
    for kind in MAP_KINDS:
        curves = [np.array(r["curve"]) for r in records if r["kind"] == kind]
        for curve in curves:
            ax.plot(curve[:, 0], curve[:, 1], color=KIND_COLOURS[kind], alpha=0.25, lw=0.8)
        if curves and all(len(c) == len(curves[0]) for c in curves):
            median = np.median(np.stack([c[:, 1] for c in curves]), axis=0)
            ax.plot(curves[0][:, 0], median, color=KIND_COLOURS[kind], lw=2.5,
                    label=f"{KIND_LABELS[kind]}, median")
    ax.set_xlabel("training step (batch of 8 images)")
    ax.set_ylabel("validation Dice (mean of RV, MYO, LV)")
    ax.set_ylim(0, 1)
    ax.grid(alpha=0.3)
    ax.legend(loc="lower right", fontsize=9)
    ax.set_title("Validation Dice during training (thin: one seed each)", fontsize=10)

    groups = [(KIND_LABELS[kind], KIND_COLOURS[kind], np.array([r["per_class"] for r in records if r["kind"] == kind]))
              for kind in ("boundary", "rrw")]
    per_class_dots(axes[2], groups, CLASS_NAMES, (-0.17, 0.17), jitter=0.07, bar=0.12,
                   ylabel="validation Dice after training (one dot per seed)")
    axes[2].set_xlabel("class")
    fig.suptitle("RW loss alone, RW-Boundary vs RRW maps: convergence over seeds, 4-class synthetic 2D data"
                 + title_suffix, fontsize=11)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def main(argv: list[str] | None = None) -> int:
    parser = experiment_parser(__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, default=None, help="seeds per map kind (default 20; quick 2)")
    args = parser.parse_args(argv)
    run = start_run(NAME, args)
    num_seeds = args.seeds or (2 if args.quick else 20)
    num_train, num_val = (32, 16) if args.quick else (160, 64)
    settings = TrainSettings(steps=6 if args.quick else 250, batch_size=8, lr=3e-3, poly_exponent=0.9)
    eval_every = 3 if args.quick else 50

    train = cardiac_like_images(num_train, size=32, seed=0)
    val = cardiac_like_images(num_val, size=32, seed=1)
    train_images, val_images = torch.from_numpy(train.images), torch.from_numpy(val.images)
    maps = {kind: torch.from_numpy(np.stack([rw_map(lab, NUM_CLASSES, kind, spacing=PIXEL_SPACING)
                                             for lab in train.labels])) for kind in MAP_KINDS}
    records = []
    for seed in range(num_seeds):
        for kind in MAP_KINDS:
            record = train_one(kind, seed, train_images, maps[kind], val_images, val, settings, eval_every)
            records.append(record)
            print(f"seed {seed:2d} {kind:8s} Dice {record['dice']:.3f} "
                  f"(RV {record['per_class'][0]:.3f}, MYO {record['per_class'][1]:.3f}, "
                  f"LV {record['per_class'][2]:.3f})  [{run.elapsed():.0f} s]", flush=True)

    dice = {kind: np.array([r["dice"] for r in records if r["kind"] == kind]) for kind in MAP_KINDS}
    test = paired_permutation_test(dice["rrw"], dice["boundary"])
    test_line = (f"paired permutation test RRW vs RW-Boundary: mean difference {test.mean_difference:+.3f}, "
                 f"p = {test.p_value:.3g}")
    draw_figure(records, run.png_path, " [QUICK]" if args.quick else "", test_line)

    headers = ["map", "seeds", "mean Dice", "sd", "median", "min", "max", "Dice < 0.5", "Dice < 0.8",
               *[f"{name} (mean)" for name in CLASS_NAMES]]
    table = markdown_table(headers, summary_rows(records))
    seed_rows = [[r["seed"], KIND_LABELS[r["kind"]], r["dice"], *[float(v) for v in r["per_class"]]]
                 for r in sorted(records, key=lambda r: (r["kind"], r["seed"]))]
    seed_table = markdown_table(["seed", "map", "Dice (mean)", *CLASS_NAMES], seed_rows)
    print(table)
    print(test_line)
    body = (
        f"RW loss alone (`RegionWiseLoss`, no Dice/CE term), {num_seeds} seeds per map kind; data: "
        f"{num_train} training and {num_val} validation images of 32 x 32 px "
        f"(`cardiac_like_images`, 4 classes, 10 % without heart), maps from "
        f"`rw_map(..., spacing=(1.5, 1.5))` "
        f"computed once per training image; `TinyUNet2d` (base 8, 3 levels, instance norm, no deep "
        f"supervision); Adam, initial lr {settings.lr:g}, nnU-Net poly schedule (exponent 0.9), "
        f"{settings.steps} steps of {settings.batch_size} images, no augmentation. Dice: per class over the "
        f"whole validation set (arg-max labels), mean of RV, MYO, LV.\n\n{table}\n\n{test_line} "
        f"(`nnunet_lossplug.evaluation.paired_permutation_test`, paired by seed).\n\n"
        f"<details><summary>Every run</summary>\n\n{seed_table}\n\n</details>"
    )
    run.write_markdown("Convergence stability: RW-Boundary vs RRW maps over seeds (Valverde & Tohka 2022 Fig. 5)", body)
    print(f"\nwrote {run.png_path} and {run.md_path} in {run.elapsed():.1f} s")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
