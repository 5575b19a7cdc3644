"""CPU-scale re-measurements of the papers' claims: one script per experiment, see README.md.

The scripts run as ``python experiments/<name>.py [--quick]`` from the repository root; their shared
building blocks (a small 2D U-Net, 2D dataset generators, a training loop, metrics and table writers) live
in :mod:`experiments.common`.
"""
