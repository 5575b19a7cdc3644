"""The arguments that name one preprocessed nnU-Net dataset: ``-d``, ``-c``, ``-p`` (shared by subcommands)."""

from __future__ import annotations

import argparse


def add_dataset_arguments(parser: argparse.ArgumentParser) -> None:
    """``-d/--dataset``, ``-c/--configuration`` and ``-p/--plans``, as nnU-Net's own commands spell them."""
    parser.add_argument("-d", "--dataset", required=True, help="dataset name or id")
    parser.add_argument("-c", "--configuration", required=True, help="nnU-Net configuration, e.g. 2d or 3d_fullres")
    parser.add_argument("-p", "--plans", default="nnUNetPlans", help="plans identifier (default: nnUNetPlans)")
