"""Experiment 4 -- class-weighted Dice: uniform / simple / square weights x two learning rates (Shen et al. 2018).

Claim (Shen et al. 2018, Table 1, 7 abdominal organs in CT, 3D U-Net, Adam, 10 000 iterations): with an initial
learning rate of 1e-3 the uniform weights are best (average Dice 88.3 %) and the simple (74.2 %) and square
(44.0 %) weights are much worse, the large organs collapsing under square weights (liver 10 %, spleen 0 %);
with 1e-2 the simple weights become best (88.9 %) and square weights recover (78.9 %): "a strong
relationship between class balancing weights and initial learning rate".

Here: a generated imbalanced 5-class 2D dataset (:func:`experiments.common.generators.imbalanced_organs`:
background ~72 %, a large "liver" ~23 %, a "kidney" ~2.5 %, a small "vessel" ~0.8 % and a thin "duct"
~2 %), a small 2D U-Net in plain PyTorch, the multi-class Dice of Shen et al. 2018 eq. (6),
``L = (1/L) Σ_l w_l (1 - D_l)`` with background (:class:`~nnunet_lossplug.losses.DiceLoss`
``class_weights=...``, per-image Dice, ``smooth=0``), the paper's weights eq. (3)-(5) from the training-set
voxel counts (:func:`~nnunet_lossplug.losses.dice_class_weights`, ``normalize=False``: the paper's exact
values), Adam with a constant learning rate 1e-3 or 1e-2, several seeds. Reported: per-class Dice on
held-out images (mean per image), arranged like the paper's Table 1.

Run: ``python experiments/class_weighted_dice.py [--quick]``; writes
``docs/figures/class_weighted_dice.png`` and ``docs/figures/class_weighted_dice.md``.
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

from experiments.common.generators import ORGAN_NAMES, imbalanced_organs  # noqa: E402
from experiments.common.metrics import dice_per_group  # noqa: E402
from experiments.common.reporting import experiment_parser, markdown_table, start_run  # noqa: E402
from experiments.common.training import (  # noqa: E402
    TrainSettings,
    label_batch_loss,
    predict_labels,
    train_model,
)
from experiments.common.unet2d import TinyUNet2d  # noqa: E402
from nnunet_lossplug.losses import DiceLoss, dice_class_weights  # noqa: E402

NAME = "class_weighted_dice"
SCHEMES = ("uniform", "simple", "square")
LEARNING_RATES = (1e-3, 1e-2)
SCHEME_COLOURS = {"uniform": "#1b9e77", "simple": "#d95f02", "square": "#7570b3"}


def config_label(scheme: str, lr: float) -> str:
    """Column name of a configuration, as in the paper's Table 1 (``W_u, lr=0.001``)."""
    return f"{scheme}, lr={lr:g}"


def main(argv: list[str] | None = None) -> int:
    parser = experiment_parser(__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, default=None,
                        help="seeds per configuration (default 3; quick 1)")
    args = parser.parse_args(argv)
    run = start_run(NAME, args)
    num_seeds = args.seeds or (1 if args.quick else 3)
    num_train, num_val = (24, 8) if args.quick else (160, 80)
    steps = 4 if args.quick else 250
    eval_every = 2 if args.quick else 50
    size = 32
    num_classes = len(ORGAN_NAMES)

    train = imbalanced_organs(num_train, size=size, seed=0)
    val = imbalanced_organs(num_val, size=size, seed=1)
    train_images, val_images = torch.from_numpy(train.images), torch.from_numpy(val.images)
    train_labels = torch.from_numpy(train.labels)
    counts = np.bincount(train.labels.ravel(), minlength=num_classes)
    weights = {scheme: dice_class_weights(counts, scheme) for scheme in SCHEMES}

    def held_out_dice(model: torch.nn.Module) -> np.ndarray:
        prediction = predict_labels(model, val_images)
        return dice_per_group(prediction, val.labels, val.groups, classes=range(num_classes)).mean(axis=0)

    dice: dict[tuple[str, float], list[np.ndarray]] = {}
    curves: dict[tuple[str, float], list[np.ndarray]] = {}
    for lr in LEARNING_RATES:
        for scheme in SCHEMES:
            key = (scheme, lr)
            dice[key], curves[key] = [], []
            settings = TrainSettings(steps=steps, batch_size=8, lr=lr, poly_exponent=None)
            loss_fn = DiceLoss(batch_dice=False, do_bg=True, smooth=0.0, class_weights=weights[scheme])
            for seed in range(num_seeds):
                torch.manual_seed(seed)
                model = TinyUNet2d(in_channels=1, num_classes=num_classes)
                curve: list[tuple[int, float]] = []

                def record(step: int, model: torch.nn.Module = model, curve: list = curve) -> None:
                    if (step + 1) % eval_every == 0:
                        curve.append((step + 1, float(held_out_dice(model).mean())))

                train_model(model, train_images, label_batch_loss(loss_fn, train_labels), settings, seed=seed,
                            after_step=record)
                per_class = held_out_dice(model)
                dice[key].append(per_class)
                curves[key].append(np.array(curve))
                print(f"{config_label(scheme, lr):18s} seed {seed}: " + ", ".join(
                    f"{name} {value:.3f}" for name, value in zip(ORGAN_NAMES, per_class))
                    + f", AVG {per_class.mean():.3f}  [{run.elapsed():.0f} s]", flush=True)

    configs = [(scheme, lr) for lr in LEARNING_RATES for scheme in SCHEMES]
    mean_dice = np.array([np.mean(dice[key], axis=0) for key in configs]).T  # (classes, configs)
    seed_avg = {key: np.array([d.mean() for d in dice[key]]) for key in configs}

    # --- tables --------------------------------------------------------------------------------------
    headers = ["class (share of training pixels)", *[config_label(*key) for key in configs]]
    shares = counts / counts.sum()
    rows = [[f"{name} ({100 * share:.1f} %)", *[f"{100 * m:.1f} %" for m in mean_dice[c]]]
            for c, (name, share) in enumerate(zip(ORGAN_NAMES, shares))]
    rows.append(["AVG", *[f"{100 * v:.1f} %" for v in mean_dice.mean(axis=0)]])
    rows.append(["AVG, sd over seeds", *[f"{100 * seed_avg[key].std(ddof=1):.1f}" if num_seeds > 1 else "n/a"
                                         for key in configs]])
    rows.append(["MIN", *[f"{100 * v:.1f} %" for v in mean_dice.min(axis=0)]])
    table = markdown_table(headers, rows)
    weight_rows = [[name, int(counts[c]), *[f"{float(weights[s][c]):.3g}" for s in SCHEMES],
                    *[f"{float(weights[s][c] / weights[s].max()):.2g}" for s in ("simple", "square")]]
                   for c, name in enumerate(ORGAN_NAMES)]
    weight_headers = ["class", "training pixels", "w uniform", "w simple (eq. 4)", "w square (eq. 5)",
                      "simple / max", "square / max"]
    weight_table = markdown_table(weight_headers, weight_rows)
    print(table, "\n")
    print(weight_table)

    # --- figure --------------------------------------------------------------------------------------
    fig, axes = plt.subplots(1, 3, figsize=(16.5, 5.2), gridspec_kw={"width_ratios": [1.5, 1, 1]})
    ax = axes[0]
    heat = np.vstack([mean_dice, mean_dice.mean(axis=0, keepdims=True)])
    image = ax.imshow(heat, cmap="viridis", vmin=0, vmax=1, aspect="auto")
    for (r, c), value in np.ndenumerate(heat):
        ax.text(c, r, f"{100 * value:.0f}", ha="center", va="center", fontsize=9,
                color="white" if value < 0.6 else "black")
    ax.set_xticks(range(len(configs)))
    ax.set_xticklabels([config_label(*key).replace(", ", "\n") for key in configs], fontsize=9)
    ax.set_yticks(range(num_classes + 1))
    ax.set_yticklabels([f"{n} ({100 * s:.1f} %)" for n, s in zip(ORGAN_NAMES, shares)] + ["AVG"], fontsize=9)
    ax.axhline(num_classes - 0.5, color="white", lw=2)
    ax.axvline(len(SCHEMES) - 0.5, color="white", lw=2)
    fig.colorbar(image, ax=ax, fraction=0.04, label="held-out Dice (mean over images and seeds)")
    ax.set_title("Per-class Dice (%), Shen et al. 2018 Table 1 layout", fontsize=10)

    ax = axes[1]
    for scheme in SCHEMES:
        ax.semilogy(range(num_classes), weights[scheme].numpy(), marker="o", color=SCHEME_COLOURS[scheme],
                    label=scheme)
    ax.set_xticks(range(num_classes))
    ax.set_xticklabels(ORGAN_NAMES, fontsize=9)
    ax.set_ylabel("class weight w_l (log scale)")
    ax.set_xlabel("class")
    ax.grid(alpha=0.3, which="both")
    ax.legend(fontsize=9)
    ax.set_title("Weights from training-set pixel counts (eq. 3-5)", fontsize=10)

    ax = axes[2]
    for scheme, lr in configs:
        stacked = np.stack(curves[(scheme, lr)])
        ax.plot(stacked[0, :, 0], stacked[:, :, 1].mean(axis=0), color=SCHEME_COLOURS[scheme],
                ls="-" if lr == LEARNING_RATES[0] else "--", lw=2, label=config_label(scheme, lr))
    ax.set_xlabel("training step (batch of 8 images)")
    ax.set_ylabel("held-out Dice, mean of the 5 classes (mean over seeds)")
    ax.set_ylim(0, 1)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8, ncol=2, loc="lower right")
    ax.set_title("Learning curves (solid: lr 1e-3, dashed: lr 1e-2)", fontsize=10)
    title = ("Class-weighted Dice (Shen et al. 2018): uniform / simple / square weights x initial learning rate, "
             "synthetic imbalanced 5-class 2D data")
    fig.suptitle(title + (" [QUICK]" if args.quick else ""), fontsize=11)
    fig.tight_layout()
    fig.savefig(run.png_path, dpi=110)
    plt.close(fig)

    body = (
        f"Data: {num_train} training and {num_val} held-out images of {size} x {size} px "
        f"(`imbalanced_organs`). "
        f"Loss: `DiceLoss(batch_dice=False, do_bg=True, smooth=0, class_weights=w)` = Shen et al. 2018 eq. (6) with "
        f"the weights of eq. (3)-(5) computed by `dice_class_weights(counts, scheme)` from the training-set "
        f"pixel counts (paper's exact values, not normalised; eps = 1). `TinyUNet2d` (5 output channels); "
        f"Adam (eps 1e-8) with a constant learning rate, {steps} steps of 8 images, {num_seeds} seeds per "
        f"configuration; Dice per class on each held-out image, averaged over images, then over seeds.\n\n"
        f"{table}\n\nClass weights used:\n\n{weight_table}"
    )
    run.write_markdown("Class-weighted Dice x learning rate (Shen et al. 2018 Table 1 pattern)", body)
    print(f"\nwrote {run.png_path} and {run.md_path} in {run.elapsed():.1f} s")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
