"""``nnunet-lossplug precompute``: the dataset preprocessing hook, run after nnUNetv2_plan_and_preprocess."""

from __future__ import annotations

import argparse
import contextlib
import os
import signal
from collections.abc import Iterator

from nnunet_lossplug.cli.dataset_args import add_dataset_arguments
from nnunet_lossplug.cli.map_args import map_kinds_help


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "precompute",
        help="compute RW maps and class statistics for a preprocessed dataset (run after planning)",
        description=(
            "For every preprocessed case of DATASET / CONFIGURATION, compute the requested RW maps on the whole "
            "3D case with its preprocessed spacing, and the class voxel counts, and store them beside nnU-Net's "
            "data (nnUNet_preprocessed/DatasetXXX/lossplug_cache/). Valid caches are reused, stale ones rebuilt. "
            "Trainers run this themselves when needed; running it ahead keeps the first epoch fast."
        ),
    )
    add_dataset_arguments(parser)
    parser.add_argument("--maps", default="rrw",
                        help="comma-separated map kinds, or 'none' for class statistics only (default: rrw). Kinds: "
                             f"{map_kinds_help()}; or a kind you registered")
    parser.add_argument("-np", "--num-processes", type=int, default=min(2, os.cpu_count() or 1),
                        help="worker processes (default: 2)")
    parser.add_argument("--force", action="store_true", help="recompute every case even if the cache is valid")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from nnunet_lossplug.nnunet.codecs.chooser import source_codec
    from nnunet_lossplug.nnunet.map_cache.cache import precompute_caches
    from nnunet_lossplug.nnunet.map_cache.source import PreprocessedSource

    source = PreprocessedSource.from_names(args.dataset, args.configuration, args.plans)
    kinds = [k.strip() for k in args.maps.split(",") if k.strip() and k.strip() != "none"]
    codecs = [None] + [source_codec(kind, source) for kind in kinds]  # statistics always
    with sigterm_interrupts():
        precompute_caches(source, codecs, num_processes=args.num_processes, force=args.force)
    return 0


@contextlib.contextmanager
def sigterm_interrupts() -> Iterator[None]:
    """Within the block, SIGTERM (``kill PID``, a job scheduler) ends the run like Ctrl-C: workers stopped, lock
    released, one line saying what was kept (see :func:`nnunet_lossplug.cli.errors.run_subcommand`)."""
    from nnunet_lossplug.nnunet.errors import BuildInterrupted

    def interrupt(signum: int, _frame) -> None:
        raise BuildInterrupted("", signum)

    previous = signal.signal(signal.SIGTERM, interrupt)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)
