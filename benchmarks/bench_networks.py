"""Parameter counts, FLOPs and CPU time per training iteration: our two networks vs nnU-Net's PlainConvUNet.

All three networks are built from the same typical nnU-Net ``2d`` plan (6 stages, features
32-64-128-256-512-512, 3x3 kernels, strides 1-2-2-2-2-2, instance norm, leaky ReLU), with deep supervision
on, and timed for one forward + backward pass on a batch of 2 patches of 128x128 (one input channel, 4
classes, the ACDC setting). PlainConvUNet is built by nnU-Net's own ``get_network_from_plans``; the
unified U-Net and the RDD network by our builders from the same ``arch_kwargs``. FLOPs are counted with
``torch.utils.flop_counter.FlopCounterMode`` (forward + backward, convolutions and matrix products).

Usage::

    python benchmarks/bench_networks.py                 # 2 threads, 3 timed iterations (< 1 minute idle)
    python benchmarks/bench_networks.py --threads 1 --iterations 3 --patch 128 160
"""

from __future__ import annotations

import argparse
import statistics
import time
from collections.abc import Callable

import torch
from torch import nn
from torch.utils.flop_counter import FlopCounterMode

from nnunet_lossplug.networks import build_rdd_net, build_unified_unet

PLAN_2D = {
    "n_stages": 6,
    "features_per_stage": [32, 64, 128, 256, 512, 512],
    "conv_op": "torch.nn.modules.conv.Conv2d",
    "kernel_sizes": [[3, 3]] * 6,
    "strides": [[1, 1], [2, 2], [2, 2], [2, 2], [2, 2], [2, 2]],
    "n_conv_per_stage": [2] * 6,
    "n_conv_per_stage_decoder": [2] * 5,
    "conv_bias": True,
    "norm_op": "torch.nn.modules.instancenorm.InstanceNorm2d",
    "norm_op_kwargs": {"eps": 1e-05, "affine": True},
    "dropout_op": None,
    "dropout_op_kwargs": None,
    "nonlin": "torch.nn.LeakyReLU",
    "nonlin_kwargs": {"inplace": True},
}
REQ_IMPORT = ["conv_op", "norm_op", "dropout_op", "nonlin"]
PLAIN_CLASS = "dynamic_network_architectures.architectures.unet.PlainConvUNet"


def build_plain_conv_unet(in_channels: int, classes: int) -> nn.Module:
    """nnU-Net's default network for this plan, built the way nnU-Net builds it."""
    from nnunetv2.utilities.get_network_from_plans import get_network_from_plans

    return get_network_from_plans(
        PLAIN_CLASS, PLAN_2D, REQ_IMPORT, in_channels, classes, deep_supervision=True
    )


def builders() -> dict[str, Callable[[int, int], nn.Module]]:
    """Name -> ``(input_channels, classes) -> network`` for the three networks compared."""
    return {
        "PlainConvUNet (nnU-Net)": build_plain_conv_unet,
        "UnifiedUNet (Nguyen et al. 2019)": lambda c, k: build_unified_unet(PLAIN_CLASS, PLAN_2D, REQ_IMPORT, c, k),
        "RDDNet (Liu & Fu 2018)": lambda c, k: build_rdd_net(PLAIN_CLASS, PLAN_2D, REQ_IMPORT, c, k),
    }


def training_step(network: nn.Module, x: torch.Tensor) -> None:
    """One forward + backward pass with a loss on every deep-supervision output."""
    outputs = network(x)
    outputs = outputs if isinstance(outputs, list | tuple) else [outputs]
    loss = sum(o.float().square().mean() for o in outputs)
    loss.backward()
    network.zero_grad(set_to_none=True)


def measure(network: nn.Module, x: torch.Tensor, iterations: int, warmup: int) -> tuple[float, int, int]:
    """(median seconds per step, parameters, forward+backward FLOPs of one step)."""
    parameters = sum(p.numel() for p in network.parameters())
    with FlopCounterMode(display=False) as counter:
        training_step(network, x)
    for _ in range(warmup):
        training_step(network, x)
    times = []
    for _ in range(iterations):
        start = time.perf_counter()
        training_step(network, x)
        times.append(time.perf_counter() - start)
    return statistics.median(times), parameters, counter.get_total_flops()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--threads", type=int, default=2, help="torch CPU threads (default 2)")
    parser.add_argument("--iterations", type=int, default=3, help="timed iterations (median reported)")
    parser.add_argument("--warmup", type=int, default=1, help="untimed iterations before timing")
    parser.add_argument("--batch", type=int, default=2)
    parser.add_argument("--patch", type=int, nargs=2, default=[128, 128])
    parser.add_argument("--classes", type=int, default=4)
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    x = torch.randn(args.batch, 1, *args.patch)

    rows = []
    for name, build in builders().items():
        network = build(1, args.classes).train()
        seconds, parameters, flops = measure(network, x, args.iterations, args.warmup)
        rows.append((name, parameters, flops, seconds))
        del network

    _, base_params, base_flops, base_seconds = rows[0]
    print(
        f"forward+backward, batch {args.batch} x 1 x {args.patch[0]}x{args.patch[1]}, "
        f"{args.classes} classes, deep supervision on, CPU, {args.threads} threads, "
        f"median of {args.iterations}; torch {torch.__version__}"
    )
    ratio = f"{'x plain':>9}"
    header = f"{'network':<26}{'params (M)':>12}{ratio}{'GFLOP/step':>12}{ratio}{'s/step':>9}{ratio}"
    print(header)
    print("-" * len(header))
    for name, parameters, flops, seconds in rows:
        print(
            f"{name:<26}{parameters / 1e6:>12.2f}{parameters / base_params:>9.2f}"
            f"{flops / 1e9:>12.1f}{flops / base_flops:>9.2f}{seconds:>9.3f}{seconds / base_seconds:>9.2f}"
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
