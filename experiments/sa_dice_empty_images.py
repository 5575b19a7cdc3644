"""Experiment 3 -- SA Dice vs per-image Dice on batches with no-target images (Nguyen et al. 2019, Sec. III-B/C).

Claim (Nguyen et al. 2019): with the per-image ("stochastic") Dice loss, eq. (1), an image without target gives a
flat loss (its Dice is 0 whatever the prediction, eq. 3), so it sends no gradient and the network is not
taught to predict nothing there; smoothing does not cure it. The Stochastic Aggregated Dice (SA Dice),
eq. (4), sums intersections and volumes over the batch before the ratio, so a no-target image in a batch
with targets still gets a gradient: its false positives enlarge the aggregated denominator.

Here: a generated binary 2D dataset (:func:`experiments.common.generators.binary_with_empty_images`) in
which half the images hold no target, but every image holds 1-2 dimmer "confuser" blobs; a small 2D U-Net
(plain PyTorch) trained with each loss on the foreground class only (``do_bg=False``, the papers' binary
Dice), several seeds each:

- per-image Dice, ``smooth=0`` (eq. 1, :class:`~nnunet_lossplug.losses.DiceLoss` ``batch_dice=False``);
- SA Dice, ``smooth=0`` (eq. 4, ``batch_dice=True``);
- per-image Dice with ``smooth=1`` (the smoothing Nguyen et al. 2019 says does not help).

Reported on a held-out set: false-positive pixels on the empty images (mean per image, and the share of
empty images with any false positive) and the Dice on the images with a target; plus the mechanism itself,
the share of the logit-gradient norm that reaches the empty images of a batch at initialisation.

Run: ``python experiments/sa_dice_empty_images.py [--quick]``; writes
``docs/figures/sa_dice_empty_images.png`` and ``docs/figures/sa_dice_empty_images.md``.
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

from experiments.common.generators import Segmentation2d, binary_with_empty_images  # noqa: E402
from experiments.common.metrics import false_positive_voxels, per_image_dice  # noqa: E402
from experiments.common.reporting import experiment_parser, markdown_table, start_run  # noqa: E402
from experiments.common.training import (  # noqa: E402
    TrainSettings,
    label_batch_loss,
    predict_labels,
    train_model,
)
from experiments.common.unet2d import TinyUNet2d  # noqa: E402
from nnunet_lossplug.losses import DiceLoss  # noqa: E402

NAME = "sa_dice_empty_images"
ARMS = {
    "per-image Dice": dict(batch_dice=False, do_bg=False, smooth=0.0),
    "SA Dice": dict(batch_dice=True, do_bg=False, smooth=0.0),
    "per-image Dice, smooth=1": dict(batch_dice=False, do_bg=False, smooth=1.0),
}
ARM_COLOURS = {"per-image Dice": "#d95f02", "SA Dice": "#1b9e77", "per-image Dice, smooth=1": "#7570b3"}


def empty_image_gradient_share(loss_fn: DiceLoss, model: torch.nn.Module, images: torch.Tensor,
                               labels: torch.Tensor, has_target: torch.Tensor) -> float:
    """``||dL/dlogits||`` on the empty images of the batch divided by that on all images (0 = no signal)."""
    logits = model(images).detach().requires_grad_(True)
    loss_fn(logits, labels[:, None]).backward()
    grad = logits.grad
    total = float(grad.norm())
    return float(grad[~has_target].norm()) / total if total > 0 else float("nan")


def evaluate(model: torch.nn.Module, images: torch.Tensor, data: Segmentation2d) -> dict[str, float]:
    """FP pixels per empty image, share of empty images with a FP, Dice on the images with a target."""
    prediction = predict_labels(model, images)
    empty = data.groups == 0
    fp_empty = false_positive_voxels(prediction[empty], data.labels[empty])
    dice_target = per_image_dice(prediction[~empty], data.labels[~empty])
    fp_target = false_positive_voxels(prediction[~empty], data.labels[~empty])
    return {"fp_per_empty": float(fp_empty.mean()), "empty_with_fp": float(np.mean(fp_empty > 0)),
            "dice_target": float(dice_target.mean()), "fp_per_target_image": float(fp_target.mean())}


def main(argv: list[str] | None = None) -> int:
    parser = experiment_parser(__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, default=None, help="seeds per loss (default 5; quick 1)")
    args = parser.parse_args(argv)
    run = start_run(NAME, args)
    num_seeds = args.seeds or (1 if args.quick else 5)
    num_train, num_val = (32, 16) if args.quick else (160, 160)
    settings = TrainSettings(steps=5 if args.quick else 250, batch_size=8, lr=1e-3, poly_exponent=0.9)

    train = binary_with_empty_images(num_train, size=32, empty_fraction=0.5, seed=0)
    val = binary_with_empty_images(num_val, size=32, empty_fraction=0.5, seed=1)
    train_images, val_images = torch.from_numpy(train.images), torch.from_numpy(val.images)
    train_labels = torch.from_numpy(train.labels)
    has_target = torch.from_numpy(train.groups == 1)

    # the mechanism: gradient reaching the empty images of one batch, same untrained network for every loss
    torch.manual_seed(0)
    probe_model = TinyUNet2d(in_channels=1, num_classes=2)
    probe = torch.arange(settings.batch_size)
    gradient_rows = []
    for arm, options in ARMS.items():
        share = empty_image_gradient_share(DiceLoss(**options), probe_model, train_images[probe],
                                           train_labels[probe], has_target[probe])
        gradient_rows.append([arm, f"{int((~has_target[probe]).sum())}/{len(probe)}", share])

    results: dict[str, list[dict[str, float]]] = {arm: [] for arm in ARMS}
    examples: dict[str, np.ndarray] = {}
    for seed in range(num_seeds):
        for arm, options in ARMS.items():
            torch.manual_seed(seed)
            model = TinyUNet2d(in_channels=1, num_classes=2)
            loss_fn = DiceLoss(**options)
            train_model(model, train_images, label_batch_loss(loss_fn, train_labels), settings, seed=seed)
            metrics = evaluate(model, val_images, val)
            results[arm].append(metrics)
            if seed == 0:
                examples[arm] = predict_labels(model, val_images)
            print(f"seed {seed} {arm:26s} FP/empty image {metrics['fp_per_empty']:7.2f}  "
                  f"empty with FP {metrics['empty_with_fp']:.2f}  Dice (target images) "
                  f"{metrics['dice_target']:.3f}  [{run.elapsed():.0f} s]", flush=True)

    # --- tables --------------------------------------------------------------------------------------
    def spread(arm: str, key: str) -> str:
        values = np.array([m[key] for m in results[arm]])
        if len(values) == 1:
            return f"{values.mean():.3f}"
        return f"{values.mean():.3f} ± {values.std(ddof=1):.3f}"

    rows = [[arm, len(results[arm]), spread(arm, "fp_per_empty"), spread(arm, "empty_with_fp"),
             spread(arm, "dice_target"), spread(arm, "fp_per_target_image")] for arm in ARMS]
    table = markdown_table(["loss", "seeds", "FP pixels per empty image", "empty images with any FP",
                            "Dice on target images", "FP pixels per target image"], rows)
    gradient_table = markdown_table(["loss", "empty images in the batch", "share of the logit-gradient norm "
                                     "on the empty images (untrained network)"], gradient_rows)
    print(table, "\n")
    print(gradient_table)

    # --- figure --------------------------------------------------------------------------------------
    fig, axes = plt.subplots(2, 3, figsize=(14, 9.5))
    panels = [("fp_per_empty", "false-positive pixels per empty image\n(mean over held-out empty images)",
               "False positives on no-target images"),
              ("empty_with_fp", "share of empty images with any\nfalse-positive pixel",
               "False alarms on no-target images"),
              ("dice_target", "Dice on the images with a target\n(mean per image)",
               "Segmentation of the images with a target")]
    rng = np.random.default_rng(0)
    for ax, (key, ylabel, title) in zip(axes[0], panels):
        for position, arm in enumerate(ARMS):
            values = np.array([m[key] for m in results[arm]])
            ax.bar(position, values.mean(), color=ARM_COLOURS[arm], alpha=0.35, width=0.6)
            ax.scatter(position + rng.uniform(-0.12, 0.12, len(values)), values, color=ARM_COLOURS[arm], s=18,
                       zorder=3)
        ax.set_xticks(range(len(ARMS)))
        ax.set_xticklabels([arm.replace(", ", ",\n") for arm in ARMS], fontsize=9)
        ax.set_ylabel(ylabel, fontsize=9)
        ax.grid(axis="y", alpha=0.3)
        ax.set_title(f"{title}\n(bar: mean over seeds, dots: seeds)", fontsize=10)
        if key != "fp_per_empty":
            ax.set_ylim(0, 1.02)
    shown = np.concatenate([np.flatnonzero(val.groups == 0)[:2], np.flatnonzero(val.groups == 1)[:1]])
    for ax, index in zip(axes[1], shown):
        ax.imshow(val.images[index, 0], cmap="gray")
        if val.groups[index] == 1:
            ax.contour(val.labels[index], levels=[0.5], colors="yellow", linewidths=2.5, linestyles="dotted")
        for arm in ARMS:
            if examples[arm][index].any():
                ax.contour(examples[arm][index], levels=[0.5], colors=ARM_COLOURS[arm], linewidths=1.3)
        kind = "no target" if val.groups[index] == 0 else "with target"
        ax.set_title(f"held-out image {index} ({kind}): seed-0 predictions", fontsize=9)
        ax.set_xticks([])
        ax.set_yticks([])
    handles = [plt.Line2D([], [], color=ARM_COLOURS[arm], lw=2) for arm in ARMS]
    handles.append(plt.Line2D([], [], color="yellow", lw=2.5, ls="dotted"))
    axes[1, 2].legend(handles, [*ARMS, "true target"], fontsize=8, loc="lower right", framealpha=0.8)
    fig.suptitle("SA Dice vs per-image Dice with no-target images (Nguyen et al. 2019 Sec. III), synthetic binary 2D "
                 "data, 50 % empty" + (" [QUICK]" if args.quick else ""), fontsize=11)
    fig.tight_layout()
    fig.savefig(run.png_path, dpi=110)
    plt.close(fig)

    body = (
        f"Data: {num_train} training and {num_val} held-out images of 32 x 32 px "
        f"(`binary_with_empty_images`, 50 % without target, 1-2 confuser blobs in every image). "
        f"`TinyUNet2d` (2 output channels, softmax), loss on the foreground channel only (`do_bg=False`); "
        f"Adam, lr {settings.lr:g}, poly schedule, {settings.steps} steps of {settings.batch_size} images "
        f"(random batches, so most batches mix empty and target images), {num_seeds} seeds per loss, "
        f"no gradient clipping, no CE term. Mean ± sd over seeds.\n\n{table}\n\n"
        f"Mechanism, one batch of the training set, the same untrained network for each loss:\n\n"
        f"{gradient_table}"
    )
    run.write_markdown("SA Dice vs per-image Dice with no-target images (Nguyen et al. 2019 Sec. III)", body)
    print(f"\nwrote {run.png_path} and {run.md_path} in {run.elapsed():.1f} s")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
