"""Write the nnU-Net plans of Valverde & Tohka's (2022) Table 5 network (Sec. 4.2) from the default plans, by code.

Valverde & Tohka 2022 trained its challenge model "following Isensee et al. 2017" (its ref. [36]): images resampled to a
common in-plane resolution, batches of 10 slices, 48 initial filters doubling per stage (capped like nnU-Net v1's
``Generic_UNet``, ``MAX_FILTERS_2D = 480``) and batch normalisation. Two values were lost in our text of the
paper and are our best information, to be checked against the published PDF:

- in-plane spacing 1.25 mm x 1.25 mm (Isensee et al. 2017);
- patch 320 x 320: the paper reports that 352 x 352 failed on a feature-map mismatch; 352 is not divisible by
  2^6 = 64 (a 7-stage 2D U-Net), 320 is the largest size below it that is.

Every value is a keyword (command-line option) with the paper's value as default. The new plans keep the
default plans' fingerprint-derived fields (``transpose_forward``, normalisation, resampling functions) and get
a single ``2d`` configuration:

- ``spacing`` = ``[in_plane_y, in_plane_x]`` in nnU-Net's array order after ``transpose_forward``; the first
  (slice) axis keeps its own spacing (nnU-Net's 2D preprocessing does not resample it). The slice axis must be
  the axis of largest spacing, else 2D slices would cut across the short-axis stack (refused);
- ``patch_size`` checked against the topology nnU-Net derives for it
  (``get_pool_and_conv_props``, bottleneck edge >= 4): every edge must be divisible by 2^(stages-1);
- ``architecture.arch_kwargs``: the derived ``n_stages``, ``strides`` and ``kernel_sizes``, and
  ``features_per_stage[i] = min(base_features * 2^i, max_features)``; ``norm_op`` BatchNorm2d. nnU-Net 2.8 reads
  the network from ``arch_kwargs`` only (``UNet_base_num_features`` is ignored when an ``architecture`` block
  exists), and ``nnUNetTrainerBN`` (hence ``nnUNetTrainerRRW_BN``) sets batch norm there too;
- ``batch_size``.

Usage::

    python examples/acdc/table5_plans.py -d 28 --source-plans nnUNetPlans --plans nnUNetPlansACDCTable5
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from dataclasses import asdict, dataclass
from pathlib import Path

MIN_BOTTLENECK_EDGE = 4  # nnU-Net's UNet_featuremap_min_edge_length (v1 and v2)


@dataclass(frozen=True)
class Table5Settings:
    """Valverde & Tohka 2022 Sec. 4.2 network settings; the defaults are the paper's (two of them to be checked, see
    above)."""

    in_plane_spacing: tuple[float, float] = (1.25, 1.25)  # mm, (y, x) in array order; from ref. [36]: check
    patch_size: tuple[int, int] = (320, 320)  # voxels (y, x); 352 failed in the paper: check
    batch_size: int = 10
    base_features: int = 48
    max_features: int = 480  # nnU-Net v1 Generic_UNet.MAX_FILTERS_2D
    batch_norm: bool = True


def features_per_stage(n_stages: int, base: int, maximum: int) -> list[int]:
    """``min(base * 2^i, maximum)`` for stage ``i`` = 0 .. n_stages-1 (nnU-Net v1's filter rule)."""
    return [min(base * 2**i, maximum) for i in range(n_stages)]


def topology(spacing: tuple[float, float], patch_size: tuple[int, int]) -> tuple[int, list, list]:
    """``(n_stages, strides, kernel_sizes)`` nnU-Net derives for a 2D patch; raise if the patch needs padding."""
    from nnunetv2.experiment_planning.experiment_planners.network_topology import get_pool_and_conv_props

    _, strides, kernels, padded, divisor = get_pool_and_conv_props(list(spacing), list(patch_size),
                                                                   MIN_BOTTLENECK_EDGE, 999999)
    n_stages = len(strides)
    if tuple(padded) != tuple(patch_size):
        divisors = " x ".join(str(int(d)) for d in divisor)
        raise ValueError(
            f"patch size {' x '.join(map(str, patch_size))} is not divisible by {divisors} (2^(stages-1) for the "
            f"{n_stages}-stage U-Net nnU-Net builds for it); use e.g. {' x '.join(str(int(p)) for p in padded)} or "
            f"{' x '.join(str(int(p - d)) for p, d in zip(padded, divisor, strict=True))} (PATCH_SIZE)."
        )
    return n_stages, [list(s) for s in strides], [list(k) for k in kernels]


def table5_plans(source_plans: dict, plans_name: str, settings: Table5Settings) -> dict:
    """The Table 5 plans built from nnU-Net default ``source_plans`` (see the module docstring)."""
    if "2d" not in source_plans.get("configurations", {}):
        raise ValueError("the source plans have no '2d' configuration: plan with nnU-Net's default planner first.")
    median = source_plans["original_median_spacing_after_transp"]
    if median[0] < max(median[1:]):
        raise ValueError(
            f"the source plans' first axis after transpose_forward has spacing {median[0]} mm, below the in-plane "
            f"{median[1:]}: 2D slices would not be short-axis slices; plan without -overwrite_target_spacing."
        )
    base = source_plans["configurations"]["2d"]
    n_stages, strides, kernels = topology(settings.in_plane_spacing, settings.patch_size)
    arch = json.loads(json.dumps(base["architecture"]))
    kwargs = arch["arch_kwargs"]
    kwargs.update(
        n_stages=n_stages,
        features_per_stage=features_per_stage(n_stages, settings.base_features, settings.max_features),
        kernel_sizes=kernels,
        strides=strides,
        n_conv_per_stage=[2] * n_stages,
        n_conv_per_stage_decoder=[2] * (n_stages - 1),
    )
    if settings.batch_norm:
        kwargs["norm_op"] = "torch.nn.modules.batchnorm.BatchNorm2d"
        kwargs["norm_op_kwargs"] = {"eps": 1e-5, "affine": True}
    config = {k: v for k, v in base.items() if k != "architecture"}
    config.update(
        data_identifier=f"{plans_name}_2d",
        batch_size=settings.batch_size,
        patch_size=list(settings.patch_size),
        spacing=list(settings.in_plane_spacing),
        architecture=arch,
    )
    plans = {k: v for k, v in source_plans.items() if k != "configurations"}
    plans["plans_name"] = plans_name
    plans["configurations"] = {"2d": config}
    plans["lossplug_table5_settings"] = asdict(settings)
    return plans


def summary(plans: dict) -> str:
    """The values a user checks before training, one per line."""
    config = plans["configurations"]["2d"]
    kwargs = config["architecture"]["arch_kwargs"]
    slice_spacing = plans["original_median_spacing_after_transp"][0]
    return "\n".join([
        f"  spacing (2d, array order y x): {config['spacing']} mm; slice axis kept at its own spacing "
        f"(median {slice_spacing} mm)",
        f"  patch_size: {config['patch_size']}   batch_size: {config['batch_size']}",
        f"  n_stages: {kwargs['n_stages']}   features_per_stage: {kwargs['features_per_stage']}",
        f"  norm_op: {kwargs['norm_op']}",
    ])


def main(argv: list[str] | None = None) -> int:
    defaults = Table5Settings()
    parser = argparse.ArgumentParser(
        description="Write Valverde & Tohka's (2022) Table 5 plans from nnU-Net's default plans.")
    parser.add_argument("-d", "--dataset", help="dataset folder name (DatasetNNN_ACDC)")
    parser.add_argument("--show", type=Path, default=None, metavar="PLANS_JSON",
                        help="only print the checked values of a plans file written earlier")
    parser.add_argument("--source-plans", default="nnUNetPlans", help="plans to start from (default nnUNetPlans)")
    parser.add_argument("--plans", default="nnUNetPlansACDCTable5", help="identifier of the plans to write")
    parser.add_argument("--in-plane-spacing", type=float, nargs=2, default=defaults.in_plane_spacing,
                        metavar=("Y", "X"), help="mm, array order (default 1.25 1.25; check against the paper)")
    parser.add_argument("--patch-size", type=int, nargs=2, default=defaults.patch_size, metavar=("Y", "X"),
                        help="voxels (default 320 320; check against the paper)")
    parser.add_argument("--batch-size", type=int, default=defaults.batch_size)
    parser.add_argument("--base-features", type=int, default=defaults.base_features)
    parser.add_argument("--max-features", type=int, default=defaults.max_features)
    parser.add_argument("--instance-norm", action="store_true", help="keep instance norm (paper: batch norm)")
    args = parser.parse_args(argv)
    if args.show is not None:
        print(f"{args.show}\n{summary(json.loads(args.show.read_text()))}")
        return 0
    if not args.dataset:
        parser.error("pass -d DatasetNNN_ACDC (or --show PLANS_JSON)")
    preprocessed = os.environ.get("nnUNet_preprocessed")
    if not preprocessed:
        print("table5_plans: error: set nnUNet_preprocessed.", file=sys.stderr)
        return 2
    folder = Path(preprocessed) / args.dataset
    source = folder / f"{args.source_plans}.json"
    settings = Table5Settings(tuple(args.in_plane_spacing), tuple(args.patch_size), args.batch_size,
                              args.base_features, args.max_features, not args.instance_norm)
    try:
        if not source.is_file():
            raise FileNotFoundError(f"{source} is missing: run nnU-Net's planning for {args.dataset} first.")
        if min(settings.in_plane_spacing) <= 0 or settings.batch_size < 1 or settings.base_features < 1:
            raise ValueError("spacing, batch size and base features must be positive.")
        plans = table5_plans(json.loads(source.read_text()), args.plans, settings)
    except (FileNotFoundError, ValueError) as error:
        print(f"table5_plans: error: {error}", file=sys.stderr)
        return 2
    target = folder / f"{args.plans}.json"
    text = json.dumps(plans, indent=2) + "\n"
    if target.is_file() and target.read_text() == text:
        print(f"{target} is up to date\n{summary(plans)}")  # unchanged: preprocessing need not run again
        return 0
    target.write_text(text)
    print(f"wrote {target}\n{summary(plans)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
