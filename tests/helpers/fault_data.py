"""Helpers of the fault tests: copies of the test run's preprocessed dataset that a test may damage.

Each copy lives in its own world-readable folder under the system temporary directory (pytest's own folders are
private to the user running the tests), so a test can run a command as another, unprivileged user on it.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

import blosc2
import numpy as np

NOBODY = 65534


@dataclass(frozen=True)
class DatasetCopy:
    root: Path
    dataset_id: int
    name: str

    @property
    def folder(self) -> Path:
        return self.root / "preprocessed" / self.name

    def environ(self, **extra: str) -> dict[str, str]:
        env = dict(os.environ)
        env.update(nnUNet_raw=str(self.root / "raw"), nnUNet_preprocessed=str(self.root / "preprocessed"),
                   nnUNet_results=str(self.root / "results"), MPLCONFIGDIR=str(self.root / "mpl"),
                   nnUNet_def_n_proc="2", nnUNet_compile="f", **extra)
        return env

    def remove(self) -> None:
        shutil.rmtree(self.root, ignore_errors=True)


def copy_dataset(source_folder: Path, dataset_id: int, name: str) -> DatasetCopy:
    """Copy a preprocessed nnU-Net dataset (without the plugin's cache) under a new id and name."""
    root = Path(tempfile.mkdtemp(prefix="lossplug-faults-"))
    root.chmod(0o755)
    for sub in ("raw", "preprocessed", "results", "mpl"):
        (root / sub).mkdir()
    (root / "mpl").chmod(0o777)
    copy = DatasetCopy(root, dataset_id, f"Dataset{dataset_id}_{name}")
    shutil.copytree(source_folder, copy.folder, ignore=shutil.ignore_patterns("lossplug_cache"))
    for plans_file in copy.folder.glob("*Plans*.json"):
        plans = json.loads(plans_file.read_text())
        plans["dataset_name"] = copy.name
        plans_file.write_text(json.dumps(plans, indent=1))
    return copy


def enlarge_segmentations(folder: Path, shape: tuple[int, int, int], seed: int = 0) -> None:
    """Replace every ``*_seg.b2nd`` by a larger 4-class label volume (slow enough maps to catch a worker)."""
    rng = np.random.default_rng(seed)
    z, y, x = np.ogrid[: shape[0], : shape[1], : shape[2]]
    for path in sorted(folder.glob("*_seg.b2nd")):
        cy, cx = rng.integers(shape[1] // 3, 2 * shape[1] // 3, size=2)
        radius = (y - cy) ** 2 + (x - cx) ** 2 + ((z - shape[0] // 2) * 4) ** 2
        seg = np.zeros((1, *shape), dtype=np.int8)
        seg[0][radius < (shape[1] // 3) ** 2] = 1
        seg[0][radius < (shape[1] // 5) ** 2] = 2
        seg[0][radius < (shape[1] // 10) ** 2] = 3
        path.unlink()
        blosc2.asarray(seg, urlpath=str(path), mode="w")


def alive(pid: int) -> bool:
    """Whether process ``pid`` exists and is not a zombie (its state in ``/proc/PID/stat``)."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


def live_processes(field: str, value: int) -> list[int]:
    """PIDs of the live (not zombie) processes whose ``field`` of ``/proc/PID/stat`` is ``value``.

    ``field``: ``ppid`` (the children of a process) or ``session`` (a command started in a session of its own).
    """
    index = {"ppid": 1, "session": 3}[field]  # fields after the ")" that ends the command name: state, ppid, ...
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
            except OSError:
                continue
            if int(fields[index]) == value and fields[0] != "Z":
                found.append(int(entry.name))
    return found


def console_script(name: str) -> str:
    return str(Path(sys.executable).parent / name)


def can_run_as_nobody() -> bool:
    """Whether ``setpriv`` can drop to the unprivileged uid 65534 here (root in a container usually can) and that
    user can still run this Python with the plugin (not so for a virtual environment in a 0700 folder)."""
    if shutil.which("setpriv") is None:
        return False
    # the command the test runs, from a neutral folder (a package in the working directory would be importable)
    probe = subprocess.run(as_nobody([console_script("nnunet-lossplug"), "--help"]), capture_output=True, cwd="/")
    return probe.returncode == 0


def as_nobody(argv: list[str]) -> list[str]:
    return ["setpriv", f"--reuid={NOBODY}", f"--regid={NOBODY}", "--clear-groups", *argv]


def kill_session(sid: int) -> None:
    """SIGKILL every process of the session ``sid`` (a command started with ``start_new_session=True``)."""
    for pid in live_processes("session", sid):
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
