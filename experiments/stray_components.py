"""Experiment 6 -- stray components far from the target under the RW loss: is the vanishing gradient the cause?

Observation (a user's nnU-Net runs on organ + lesion volumes with empty end slices): models trained with the RW
loss and RRW maps (Valverde & Tohka 2022) keep 17-21 organ components per case, the extra ones small and in
the empty end slices; nnU-Net's default Dice + CE does not.

Hypothesis: the RW loss is linear in the softmax, so at a voxel confidently predicted as a wrong class the
logit gradient ``s_k (z_k - Σ_j s_j z_j) / numel`` (Valverde & Tohka 2022, eq. 2) vanishes as that
probability tends to 1, while cross-entropy's ``s - y`` does not.

What this script measures:

1. The gradient on the logits of one background voxel of an empty end slice, as a function of the
   probability ``p`` given to the wrong class (organ), through autograd on the real losses: ``RegionWiseLoss``
   with the voxel's RRW value from the 3D map (as the precompute hook makes it) and from a 2D per-slice map
   (as the per-patch variant makes it), ``CrossEntropyLoss``, nnU-Net's ``DC_and_CE_loss`` and its Dice term
   alone, and ``LossMixture(CE, RW, "gradual")`` as ``nnUNetTrainerRRWCEGradual`` builds it.
2. Training of the small 2D U-Net of ``experiments/common`` on the slices of :func:`organ_lesion_volumes`
   (3 x 1 x 1 mm, two empty slices at each end) with (a) the RW loss and precomputed 3D RRW maps, (b) the
   gradual CE -> RRW mixture, ``α = max((100 - epoch) / 100, 0.01)`` with an epoch = one pass over the
   training slices, (c) nnU-Net's default loss (Dice + CE, batch Dice without background as in its 2d plans),
   several seeds each; at regular steps on held-out volumes (slices stacked back into 3D): stray components
   (3D, full connectivity) per class and volume, their size, distance to the true structure (mm) and the
   share of stray voxels in empty slices; at the end also the probability the model gives to the stray
   voxels, the strays on the training volumes, and Dice / HD95 before and after keeping the largest
   component per class (nnU-Net's post-processing).

Run: ``python experiments/stray_components.py [--quick]``; writes ``docs/figures/stray_components.png`` and
``docs/figures/stray_components.md``.
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from pathlib import Path

if __package__ in (None, ""):  # run as a script: make the repository root importable
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import torch  # noqa: E402
from nnunetv2.training.loss.compound_losses import DC_and_CE_loss  # noqa: E402
from nnunetv2.training.loss.dice import MemoryEfficientSoftDiceLoss  # noqa: E402
from scipy import ndimage  # noqa: E402
from torch import Tensor  # noqa: E402

from experiments.common.components import (  # noqa: E402
    keep_largest_component_per_class,
    stray_components,
    stray_mask,
)
from experiments.common.generators import (  # noqa: E402
    ORGAN_LESION_NAMES,
    ORGAN_LESION_SPACING,
    Segmentation2d,
    organ_lesion_volumes,
)
from experiments.common.reporting import experiment_parser, markdown_table, start_run  # noqa: E402
from experiments.common.training import TrainSettings, predict_labels, train_model  # noqa: E402
from experiments.common.unet2d import TinyUNet2d  # noqa: E402
from nnunet_lossplug.evaluation import class_metrics  # noqa: E402
from nnunet_lossplug.losses import CrossEntropyLoss, LossMixture, RegionWiseLoss, gradual_alpha  # noqa: E402
from nnunet_lossplug.maps import rw_map  # noqa: E402

NAME = "stray_components"
NUM_CLASSES = 3
FOREGROUND = (1, 2)
ARMS = ("RW, RRW maps", "CE -> RRW (gradual)", "Dice + CE (nnU-Net default)", "CE alone")
ARM_COLOURS = {"RW, RRW maps": "#d95f02", "CE -> RRW (gradual)": "#7570b3", "Dice + CE (nnU-Net default)": "#1b9e77",
               "CE alone": "#1f78b4"}
NNUNET_2D_DICE = {"batch_dice": True, "smooth": 1e-5, "do_bg": False, "ddp": False}
"""The Dice settings nnU-Net's default trainer takes from a 2d plan (``_build_loss``)."""


def nnunet_default_loss() -> DC_and_CE_loss:
    """nnU-Net's default loss as ``nnUNetTrainer._build_loss`` builds it for a 2d plan without regions."""
    return DC_and_CE_loss(NNUNET_2D_DICE, {}, weight_ce=1, weight_dice=1, ignore_label=None,
                          dice_class=MemoryEfficientSoftDiceLoss)


def volume_maps(data: Segmentation2d, per_slice: bool = False) -> np.ndarray:
    """RRW maps of every slice ``(N, K, H, W)``: of each whole 3D volume with its spacing, or of each 2D slice.

    The 3D form is what the precompute hook gives ``nnUNetTrainerRRW`` (one map per case, 2D models trained on
    its slices); ``per_slice=True`` is what a map computed per 2D patch gives (``nnUNetTrainerRRWOnline``).
    """
    maps = []
    for group in np.unique(data.groups):
        volume = data.labels[data.groups == group]
        if per_slice:
            maps += [rw_map(label, NUM_CLASSES, "rrw", spacing=ORGAN_LESION_SPACING[1:]) for label in volume]
        else:
            maps += list(np.moveaxis(rw_map(volume, NUM_CLASSES, "rrw", spacing=ORGAN_LESION_SPACING), 1, 0))
    return np.stack(maps).astype(np.float32)


# --- 1. the gradient at one confidently wrong voxel ---------------------------------------------------------
def probe_logits(labels: Tensor, voxel: tuple[int, int, int], wrong_class: int, p: float,
                 margin: float = 6.0) -> Tensor:
    """Logits ``(B, K, H, W)``: every voxel right with margin ``margin``, the probe voxel wrong with probability p.

    At the probe voxel the softmax is exactly ``s_wrong = p``; the rest ``1 - p`` goes 99 % to the voxel's true
    class and 1 % to the remaining class.
    """
    logits = margin * torch.nn.functional.one_hot(labels, NUM_CLASSES).permute(0, 3, 1, 2).double()
    b, y, x = voxel
    true_class = int(labels[b, y, x])
    other = ({*range(NUM_CLASSES)} - {true_class, wrong_class}).pop()
    probs = torch.empty(NUM_CLASSES, dtype=torch.float64)
    probs[wrong_class], probs[true_class], probs[other] = p, 0.99 * (1 - p), 0.01 * (1 - p)
    logits[b, :, y, x] = probs.log()
    return logits


def probe_gradient(loss: Callable[[Tensor], Tensor], labels: Tensor, voxel: tuple[int, int, int],
                   wrong_class: int, p_values: np.ndarray) -> np.ndarray:
    """``||∂L/∂x||`` over the classes at the probe voxel, times the batch's voxel count, for each p.

    Multiplying by ``B·H·W`` undoes the mean over voxels, so cross-entropy gives ``||s - y||`` at the voxel and
    the RW loss ``||s_k (z_k - Σ_j s_j z_j)|| / K`` (its mean runs over the classes too). ``loss(logits)``
    closes over the batch's target and maps.
    """
    b, y, x = voxel
    result = []
    for p in p_values:
        logits = probe_logits(labels, voxel, wrong_class, float(p)).requires_grad_(True)
        loss(logits).backward()
        result.append(float(logits.grad[b, :, y, x].norm()) * labels.numel())
    return np.asarray(result)


def gradient_losses(labels: Tensor, maps_3d: Tensor, maps_2d: Tensor,
                    alphas: dict[str, float]) -> dict[str, Callable[[Tensor], Tensor]]:
    """The losses of the gradient panel, each as ``logits -> scalar`` on one batch (real loss classes)."""
    target = labels[:, None]
    rw, ce = RegionWiseLoss(), CrossEntropyLoss()
    dice_ce = nnunet_default_loss()
    losses: dict[str, Callable[[Tensor], Tensor]] = {
        "RW, RRW map of the 3D volume": lambda logits: rw(logits, maps_3d),
        "RW, RRW map of the 2D slice": lambda logits: rw(logits, maps_2d),
        "CE": lambda logits: ce(logits, target),
        "Dice + CE (nnU-Net default)": lambda logits: dice_ce(logits, target),
        "Dice term of it alone": lambda logits: dice_ce.dc(logits, target),
    }
    for name, alpha in alphas.items():
        mixture = LossMixture(CrossEntropyLoss(), RegionWiseLoss(), schedule="gradual")
        mixture.set_epoch(round(100 * (1 - alpha)))
        losses[name] = lambda logits, mixture=mixture: mixture(logits, target, maps_3d)
    return losses


# --- 2. training, with the stray components measured on the way -----------------------------------------------
def volumes(prediction: np.ndarray, data: Segmentation2d) -> list[tuple[np.ndarray, np.ndarray]]:
    """``(predicted volume, true volume)`` per case, the slices stacked back in order."""
    return [(prediction[data.groups == g], data.labels[data.groups == g]) for g in np.unique(data.groups)]


def stray_summary(prediction: np.ndarray, data: Segmentation2d) -> dict[str, float]:
    """Per class (``_1`` organ, ``_2`` lesion): strays and stray voxels per volume, median distance (mm), share
    of stray voxels in empty slices; and the Dice of each class (mean over volumes)."""
    pairs = volumes(prediction, data)
    summary: dict[str, float] = {}
    for label in FOREGROUND:
        strays = [s for pred, truth in pairs for s in stray_components(pred, truth, [label], ORGAN_LESION_SPACING)]
        voxels = sum(s.voxels for s in strays)
        summary[f"strays_{label}"] = len(strays) / len(pairs)
        summary[f"stray_voxels_{label}"] = voxels / len(pairs)
        summary[f"distance_{label}"] = float(np.median([s.distance_mm for s in strays])) if strays else np.nan
        summary[f"size_{label}"] = float(np.median([s.voxels for s in strays])) if strays else np.nan
        summary[f"in_empty_{label}"] = sum(s.voxels_in_empty_slices for s in strays) / voxels if voxels else np.nan
        summary[f"dice_{label}"] = float(np.mean([class_metrics(p == label, t == label, ORGAN_LESION_SPACING)["dice"]
                                                  for p, t in pairs]))
    return summary


def stray_probabilities(prediction: np.ndarray, log_probs: np.ndarray, data: Segmentation2d) -> np.ndarray:
    """The probability the model gives to the predicted class at every stray voxel (all classes, all volumes)."""
    values = []
    for group, (pred, truth) in zip(np.unique(data.groups), volumes(prediction, data)):
        probs = np.exp(log_probs[data.groups == group])
        values += [probs[:, label][stray_mask(pred, truth, label)] for label in FOREGROUND]
    return np.concatenate(values)


def final_metrics(log_probs: np.ndarray, data: Segmentation2d) -> dict[str, float]:
    """Dice and HD95 (mm) per class before and after keeping the largest component per class; strays after;
    the probability the model gives to the stray voxels; the background margin on the empty slices."""
    prediction = log_probs.argmax(axis=1)
    pairs = volumes(prediction, data)
    kept = [(keep_largest_component_per_class(pred, FOREGROUND), truth) for pred, truth in pairs]
    result: dict[str, float] = {}
    for label in FOREGROUND:
        for tag, items in (("", pairs), ("lcc_", kept)):
            metrics = [class_metrics(p == label, t == label, ORGAN_LESION_SPACING) for p, t in items]
            result[f"{tag}dice_{label}"] = float(np.mean([m["dice"] for m in metrics]))
            result[f"{tag}hd95_{label}"] = float(np.mean([m["hd95"] for m in metrics]))
        result[f"lcc_strays_{label}"] = float(np.mean([len(stray_components(p, t, [label], ORGAN_LESION_SPACING))
                                                       for p, t in kept]))
    values = stray_probabilities(prediction, log_probs, data)
    result["stray_probability"] = float(np.median(values)) if values.size else np.nan
    result["stray_probability_over_0.9"] = float(np.mean(values > 0.9)) if values.size else np.nan
    empty_slices = ~(data.labels != 0).reshape(len(data), -1).any(axis=1)
    foreground = log_probs[empty_slices, 1:].max(axis=1)
    result["empty_margin"] = float(np.median(log_probs[empty_slices, 0] - foreground))
    result["empty_foreground_over_0.1"] = float(np.mean(foreground > np.log(0.1)))
    return result


@torch.no_grad()
def predict_log_probabilities(model: torch.nn.Module, images: Tensor) -> np.ndarray:
    """Log-softmax ``(N, K, H, W)`` of ``model`` on ``images`` (exact where the softmax underflows to 0)."""
    model.eval()
    probs = torch.log_softmax(model(images), dim=1).numpy()
    model.train()
    return probs


def arm_loss(arm: str, labels: Tensor, maps: Tensor) -> tuple[Callable[[Tensor, Tensor], Tensor], LossMixture | None]:
    """``batch_loss(logits, indices)`` of an arm, and its mixture (to set the epoch) where it has one."""
    target = labels[:, None]
    if arm == "RW, RRW maps":
        rw = RegionWiseLoss()
        return (lambda logits, idx: rw(logits, maps[idx])), None
    if arm == "CE -> RRW (gradual)":
        mixture = LossMixture(CrossEntropyLoss(), RegionWiseLoss(), schedule="gradual")
        return (lambda logits, idx: mixture(logits, target[idx], maps[idx])), mixture
    if arm == "CE alone":
        ce = CrossEntropyLoss()
        return (lambda logits, idx: ce(logits, target[idx])), None
    dice_ce = nnunet_default_loss()
    return (lambda logits, idx: dice_ce(logits, target[idx])), None


def train_arm(arm: str, seed: int, train: Segmentation2d, train_maps: Tensor, val: Segmentation2d,
              settings: TrainSettings, eval_every: int) -> dict:
    """Train one model; the stray summary on the held-out volumes every ``eval_every`` steps and at the end."""
    torch.manual_seed(seed)
    model = TinyUNet2d(in_channels=1, num_classes=NUM_CLASSES)
    train_images, val_images = torch.from_numpy(train.images), torch.from_numpy(val.images)
    batch_loss, mixture = arm_loss(arm, torch.from_numpy(train.labels), train_maps)
    steps_per_epoch = len(train) // settings.batch_size
    trajectory: list[tuple[int, dict[str, float]]] = []

    def after_step(step: int) -> None:
        if mixture is not None:
            mixture.set_epoch((step + 1) // steps_per_epoch)
        if (step + 1) % eval_every == 0 or step + 1 == settings.steps:
            trajectory.append((step + 1, stray_summary(predict_labels(model, val_images), val)))

    train_model(model, train_images, batch_loss, settings, seed=seed, after_step=after_step)
    val_log_probs = predict_log_probabilities(model, val_images)
    final = final_metrics(val_log_probs, val)
    train_log_probs = predict_log_probabilities(model, train_images)
    train_prediction = train_log_probs.argmax(axis=1)
    train_summary = stray_summary(train_prediction, train)
    final.update({f"train_strays_{k}": train_summary[f"strays_{k}"] for k in FOREGROUND})
    train_values = stray_probabilities(train_prediction, train_log_probs, train)
    final["train_stray_probability"] = float(np.median(train_values)) if train_values.size else np.nan
    final.update(trajectory[-1][1])
    return {"trajectory": trajectory, "final": final, "example": val_log_probs.argmax(axis=1)}


def mean_sd(values: list[float], digits: int = 2) -> str:
    """``mean ± sd`` over seeds (sd with ddof 1; the mean alone for one seed); NaNs (no strays) left out."""
    array = np.asarray([v for v in values if np.isfinite(v)])
    if array.size == 0:
        return "-"
    if array.size == 1:
        return f"{array[0]:.{digits}f}"
    return f"{array.mean():.{digits}f} ± {array.std(ddof=1):.{digits}f}"


def main(argv: list[str] | None = None) -> int:
    parser = experiment_parser(__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, default=None, help="seeds per loss (default 8; quick 1)")
    args = parser.parse_args(argv)
    run = start_run(NAME, args)
    num_seeds = args.seeds or (1 if args.quick else 8)
    num_train, num_val = (2, 1) if args.quick else (12, 6)
    settings = TrainSettings(steps=6 if args.quick else 1500, batch_size=8, lr=3e-3, poly_exponent=0.9)
    eval_every = 3 if args.quick else 100
    train = organ_lesion_volumes(num_train, seed=0)
    val = organ_lesion_volumes(num_val, seed=1)
    steps_per_epoch = len(train) // settings.batch_size
    last_epoch = (settings.steps - 1) // steps_per_epoch
    alpha_first, alpha_last = gradual_alpha(0), gradual_alpha(last_epoch)

    # --- 1. gradient panel ------------------------------------------------------------------------------------
    probe_case = val.groups == 0
    labels_case = torch.from_numpy(val.labels[probe_case])
    maps_3d_case = volume_maps(val.subset(probe_case))
    maps_2d_case = volume_maps(val.subset(probe_case), per_slice=True)
    middle = labels_case.shape[0] // 2
    batch = [0, middle]  # an empty end slice and a middle slice, so that the Dice term sees its structures
    labels = labels_case[batch]
    maps_3d, maps_2d = torch.from_numpy(maps_3d_case[batch]).double(), torch.from_numpy(maps_2d_case[batch]).double()
    size = labels.shape[-1]
    voxel = (0, size // 2, size // 2)  # the centre of the empty end slice, above the organ
    z_3d, z_2d = maps_3d[voxel[0], :, voxel[1], voxel[2]].tolist(), maps_2d[voxel[0], :, voxel[1], voxel[2]].tolist()
    to_organ = ndimage.distance_transform_edt(val.labels[probe_case] != 1, sampling=ORGAN_LESION_SPACING)
    organ_distance = float(to_organ[voxel])
    alphas = {f"CE -> RRW, α = {alpha_last:.2f} (last epoch here)": alpha_last,
              "CE -> RRW, α = 0.01 (epoch ≥ 99)": 0.01}
    p_values = 1.0 / (1.0 + np.exp(-np.linspace(-7, 9, 9 if args.quick else 81)))
    gradients = {name: probe_gradient(loss, labels, voxel, 1, p_values)
                 for name, loss in gradient_losses(labels, maps_3d, maps_2d, alphas).items()}
    shown_p = (0.5, 0.9, 0.99, 0.999)
    gradient_rows = []
    for name, values in gradients.items():
        at = [float(np.interp(np.log(p / (1 - p)), np.log(p_values / (1 - p_values)), values)) for p in shown_p]
        gradient_rows.append([name, *at, at[-1] / max(values)])
    gradient_table = markdown_table(
        ["loss", *[f"‖∂L/∂x‖·BHW at p = {p}" for p in shown_p], "at p = 0.999 / its maximum"], gradient_rows)
    print(gradient_table, "\n")

    # --- 2. training --------------------------------------------------------------------------------------------
    train_maps = torch.from_numpy(volume_maps(train))
    runs: dict[str, list[dict]] = {arm: [] for arm in ARMS}
    for seed in range(num_seeds):
        for arm in ARMS:
            result = train_arm(arm, seed, train, train_maps, val, settings, eval_every)
            runs[arm].append(result)
            f = result["final"]
            print(f"seed {seed} {arm:28s} strays/volume organ {f['strays_1']:.1f} lesion {f['strays_2']:.1f}  "
                  f"Dice {f['dice_1']:.3f} / {f['dice_2']:.3f}  [{run.elapsed():.0f} s]", flush=True)

    # --- tables ------------------------------------------------------------------------------------------------
    def column(arm: str, key: str, digits: int = 2) -> str:
        return mean_sd([r["final"][key] for r in runs[arm]], digits)

    stray_rows, quality_rows = [], []
    for arm in ARMS:
        for label in FOREGROUND:
            name = ORGAN_LESION_NAMES[label]
            stray_rows.append([arm, name, column(arm, f"strays_{label}"), column(arm, f"stray_voxels_{label}", 1),
                               column(arm, f"size_{label}", 1), column(arm, f"distance_{label}", 1),
                               column(arm, f"in_empty_{label}"), column(arm, f"train_strays_{label}"),
                               column(arm, f"lcc_strays_{label}")])
            quality_rows.append([arm, name, column(arm, f"dice_{label}", 3), column(arm, f"hd95_{label}", 1),
                                 column(arm, f"lcc_dice_{label}", 3), column(arm, f"lcc_hd95_{label}", 1)])
    stray_table = markdown_table(
        ["loss", "class", "strays per held-out volume", "stray voxels per volume", "median stray size (voxels)",
         "median distance to the true structure (mm)", "share of stray voxels in empty slices",
         "strays per training volume", "strays per volume after keeping the largest component"], stray_rows)
    quality_table = markdown_table(
        ["loss", "class", "Dice", "HD95 (mm)", "Dice, largest component kept", "HD95 (mm), largest component kept"],
        quality_rows)
    confidence_rows = [[arm, column(arm, "stray_probability"), column(arm, "stray_probability_over_0.9"),
                        column(arm, "empty_margin"), column(arm, "empty_foreground_over_0.1", 4)] for arm in ARMS]
    confidence_table = markdown_table(
        ["loss", "median probability of the predicted class at stray voxels", "share of stray voxels above 0.9",
         "median background margin log(s_bg / max s_fg) in empty slices",
         "share of empty-slice voxels with a foreground probability > 0.1"], confidence_rows)
    run_rows = [[arm, seed, r["final"]["strays_1"], r["final"]["stray_voxels_1"], r["final"]["train_strays_1"],
                 r["final"]["train_stray_probability"], r["final"]["dice_1"], r["final"]["dice_2"]]
                for arm in ARMS for seed, r in enumerate(runs[arm])]
    run_table = markdown_table(
        ["loss", "seed", "organ strays per held-out volume", "organ stray voxels per held-out volume",
         "organ strays per training volume", "median probability at the training volumes' stray voxels",
         "organ Dice", "lesion Dice"], run_rows, digits=2)
    print(stray_table, "\n")
    print(quality_table, "\n")
    print(confidence_table)

    # --- figure -------------------------------------------------------------------------------------------------
    fig, axes = plt.subplots(2, 3, figsize=(18, 10.5))
    ax = axes[0, 0]
    styles = ["-", "--", "-", "-", ":", "-.", "-."]
    colours = ["#d95f02", "#d95f02", "#1f78b4", "#1b9e77", "#1b9e77", "#7570b3", "#b3a2d9"]
    for (name, values), style, colour in zip(gradients.items(), styles, colours):
        ax.plot(p_values, values, style, color=colour, lw=1.8, label=name)
    ax.set_xscale("logit")
    ax.set_yscale("log")
    ax.set_ylim(1e-7, 5)  # space for the legend below the curves
    ax.set_xlabel("probability p of the wrong class (organ) at the voxel")
    ax.set_ylabel("‖∂L/∂logits‖ at the voxel × voxels in the batch")
    ax.set_title(f"Gradient at a background voxel of an empty end slice\n(z_bg = {z_3d[0]:.2f} in the 3D map, "
                 f"{z_2d[0]:.0f} in the 2D map; organ {organ_distance:.0f} mm away)", fontsize=10)
    ax.grid(alpha=0.3, which="both")
    ax.legend(fontsize=7, loc="lower left")
    steps = [step for step, _ in runs[ARMS[0]][0]["trajectory"]]
    panels = [("strays_1", "organ strays per held-out volume", axes[0, 1]),
              ("strays_2", "lesion strays per held-out volume", axes[0, 2]),
              ("dice_1", "organ Dice (held-out volumes)", axes[1, 0]),
              ("dice_2", "lesion Dice (held-out volumes)", axes[1, 1])]
    for key, title, ax in panels:
        for arm in ARMS:
            curves = np.array([[summary[key] for _, summary in r["trajectory"]] for r in runs[arm]])
            for curve in curves:
                ax.plot(steps, curve, color=ARM_COLOURS[arm], alpha=0.25, lw=0.8)
            ax.plot(steps, curves.mean(axis=0), color=ARM_COLOURS[arm], lw=2.2, label=arm)
        ax.set_xlabel("training step")
        ax.grid(alpha=0.3)
        if key == "dice_1":  # the one legend of the four panels, where the curves leave space (Dice < 0.7)
            ax.set_title(f"{title}\n(thin: seeds, thick: mean)", fontsize=10)
            ax.legend(fontsize=9, loc="lower right")
        else:
            ax.set_title(f"{title}\n(thin: seeds, thick: mean; colours as in the organ Dice panel)", fontsize=10)
        if key.startswith("dice"):
            ax.set_ylim(-0.02, 1.02)
        else:
            ax.set_yscale("symlog", linthresh=1)
    ax = axes[1, 2]
    for arm in ARMS:
        sizes, distances = [], []
        for r in runs[arm]:
            for pred, truth in volumes(r["example"], val):
                for s in stray_components(pred, truth, FOREGROUND, ORGAN_LESION_SPACING):
                    sizes.append(s.voxels)
                    distances.append(s.distance_mm)
        ax.scatter(distances, sizes, s=14, alpha=0.6, color=ARM_COLOURS[arm], label=f"{arm} ({len(sizes)})")
    ax.set_xlabel("distance to the nearest true voxel of its class (mm)")
    ax.set_ylabel("size (voxels)")
    ax.set_yscale("log")
    ax.set_title("Stray components at the end, all seeds and held-out volumes\n(count in the legend)", fontsize=10)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8, loc="upper right")
    fig.suptitle("Stray components under the RW loss: gradient at a wrong voxel and strays over training "
                 "(synthetic organ + lesion volumes, 3 x 1 x 1 mm, empty end slices)"
                 + (" [QUICK]" if args.quick else ""), fontsize=11)
    fig.tight_layout()
    fig.savefig(run.png_path, dpi=100)
    plt.close(fig)

    body = (
        f"Data: {num_train} training and {num_val} held-out volumes of 12 x 32 x 32 voxels at "
        f"{' x '.join(f'{s:g}' for s in ORGAN_LESION_SPACING)} mm (`organ_lesion_volumes`: an ellipsoid organ, a "
        f"lesion sphere of radius 2.5-3.5 mm beside it, 2 empty slices at each end, each volume z-scored). "
        f"`TinyUNet2d` (3 classes) trained on the 2D slices: Adam, lr {settings.lr:g}, poly schedule, "
        f"{settings.steps} steps of {settings.batch_size} slices ({steps_per_epoch} steps per epoch), "
        f"{num_seeds} seeds per loss; RRW maps computed once per 3D volume with its spacing. The gradual "
        f"mixture's α went from {alpha_first:.2f} to {alpha_last:.2f} (epochs 0-{last_epoch}). Strays: predicted "
        f"3D components (full connectivity) with no voxel in the true structure of their class. Mean ± sd over "
        f"seeds.\n\n"
        f"## Gradient at a confidently wrong voxel\n\nThe voxel at the centre of an empty end slice of a held-out "
        f"volume (RRW values z = ({', '.join(f'{v:.2f}' for v in z_3d)}) in the 3D map, "
        f"({', '.join(f'{v:.0f}' for v in z_2d)}) in the 2D map), its softmax set to p on the organ and the rest "
        f"right with a margin of 6 logits, in a batch with a middle slice.\n\n{gradient_table}\n\n"
        f"## Stray components at the end of training\n\n{stray_table}\n\n{quality_table}\n\n"
        f"Confidence at the stray voxels and on the empty slices of the held-out volumes:\n\n{confidence_table}\n\n"
        f"## Every run\n\n{run_table}"
    )
    run.write_markdown("Stray components under the RW loss (Valverde & Tohka 2022): gradient and training", body)
    print(f"\nwrote {run.png_path} and {run.md_path} in {run.elapsed():.1f} s")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
