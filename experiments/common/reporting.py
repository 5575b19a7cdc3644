"""Command line, output files and Markdown tables shared by the experiment scripts."""

from __future__ import annotations

import argparse
import os
import platform
import time
from collections.abc import Sequence
from pathlib import Path

import torch

__all__ = [
    "FIGURES_DIR",
    "ExperimentRun",
    "experiment_parser",
    "format_value",
    "markdown_table",
    "start_run",
]

FIGURES_DIR = Path(__file__).resolve().parents[2] / "docs" / "figures"
"""Default output folder of the PNG figures and Markdown tables (``docs/figures`` of the repository)."""


def experiment_parser(description: str) -> argparse.ArgumentParser:
    """Parser with the options every experiment takes: ``--quick``, ``--out-dir``, ``--threads``."""
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("--quick", action="store_true",
                        help="seconds-long smoke run (tiny data, few steps and seeds); not meaningful")
    parser.add_argument("--out-dir", type=Path, default=FIGURES_DIR,
                        help=f"folder for <name>.png and <name>.md (default: {FIGURES_DIR})")
    parser.add_argument("--threads", type=int, default=1, choices=(1, 2),
                        help="torch CPU threads (default 1: the machine is shared; 2 at most)")
    return parser


def format_value(value: object, digits: int = 3) -> str:
    """A table cell: floats with ``digits`` decimals, everything else ``str``."""
    if isinstance(value, float):
        return f"{value:.{digits}f}"
    return str(value)


def markdown_table(headers: Sequence[str], rows: Sequence[Sequence[object]], digits: int = 3) -> str:
    """A GitHub Markdown table; floats rounded to ``digits`` decimals; every row needs len(headers) cells."""
    for row in rows:
        if len(row) != len(headers):
            raise ValueError(f"a row has {len(row)} cells but there are {len(headers)} headers: {row!r}.")
    lines = ["| " + " | ".join(headers) + " |", "|" + "|".join("---" for _ in headers) + "|"]
    lines += ["| " + " | ".join(format_value(cell, digits) for cell in row) + " |" for row in rows]
    return "\n".join(lines)


class ExperimentRun:
    """Output paths, wall clock and the Markdown report of one experiment run (see :func:`start_run`)."""

    def __init__(self, name: str, out_dir: Path, quick: bool, threads: int) -> None:
        self.name = name
        self.out_dir = Path(out_dir)
        self.quick = quick
        self.threads = threads
        self.started = time.perf_counter()
        self.out_dir.mkdir(parents=True, exist_ok=True)

    @property
    def png_path(self) -> Path:
        return self.out_dir / f"{self.name}.png"

    @property
    def md_path(self) -> Path:
        return self.out_dir / f"{self.name}.md"

    def elapsed(self) -> float:
        """Seconds since the run started."""
        return time.perf_counter() - self.started

    def write_markdown(self, title: str, body: str) -> Path:
        """Write ``<name>.md``: title, the body (tables, settings), and how and where it was produced."""
        mode = "quick (smoke test, not meaningful)" if self.quick else "full"
        command = f"python experiments/{self.name}.py" + (" --quick" if self.quick else "")
        load = os.getloadavg()[1] if hasattr(os, "getloadavg") else float("nan")
        footer = (
            f"\n\nProduced by `{command}` ({mode} mode) in {self.elapsed():.0f} s wall time on "
            f"{platform.machine()} ({os.cpu_count()} cores, load average over the last 5 min at the end: "
            f"{load:.1f}) with {self.threads} torch thread(s), torch {torch.__version__}.\n"
        )
        self.md_path.write_text(f"# {title}\n\n{body.strip()}{footer}")
        return self.md_path


def start_run(name: str, args: argparse.Namespace) -> ExperimentRun:
    """Set torch's thread count (at most 2) and start the clock of the experiment ``name``."""
    if args.threads not in (1, 2):
        raise ValueError(f"--threads must be 1 or 2 (the machine is shared); got {args.threads}.")
    torch.set_num_threads(args.threads)
    return ExperimentRun(name, args.out_dir, args.quick, args.threads)
