"""``nnunet-lossplug cache list`` / ``cache prune`` on a real preprocessed dataset whose plans then change.

Prune removes the caches that today's plans no longer use and that the plugin made; it keeps valid caches, a
folder holding a file the plugin does not write, and anything behind a symbolic link (whose target is untouched).
"""

from __future__ import annotations

import json
import shutil
import subprocess

import pytest
from helpers.fault_data import console_script, copy_dataset

pytestmark = pytest.mark.integration


def _run(copy, *argv: str) -> subprocess.CompletedProcess:
    return subprocess.run([console_script("nnunet-lossplug"), *argv], env=copy.environ(), capture_output=True,
                          text=True, timeout=300, stdin=subprocess.DEVNULL)


def _rows(listing: str, state: str) -> list[str]:
    return [line for line in listing.splitlines() if f"  {state}" in line]


def test_cache_list_and_prune_remove_only_the_stale_caches_the_plugin_made(preprocessed_dataset, tmp_path):
    copy = copy_dataset(preprocessed_dataset.preprocessed_folder, 975, "Prune")
    try:
        precompute = ["precompute", "-d", str(copy.dataset_id), "-c", "2d", "--maps", "rrw", "-np", "1"]
        assert _run(copy, *precompute).returncode == 0
        again = _run(copy, *precompute)
        assert again.stdout.count("up to date (8 cases)") == 2 and "cases computed" not in again.stdout, again.stdout
        old = sorted(p for p in (copy.folder / "lossplug_cache").iterdir() if not p.name.startswith("."))

        plans_file = copy.folder / "nnUNetPlans.json"  # a new target spacing: the caches above become stale
        plans = json.loads(plans_file.read_text())
        plans["configurations"]["2d"]["spacing"] = [s * 0.9 for s in plans["configurations"]["2d"]["spacing"]]
        plans_file.write_text(json.dumps(plans, indent=1))
        assert _run(copy, *precompute).returncode == 0
        new = sorted(p for p in (copy.folder / "lossplug_cache").iterdir()
                     if not p.name.startswith(".") and p not in old)
        assert len(old) == len(new) == 2

        foreign = copy.folder / "lossplug_cache" / "nnUNetPlans__2d__rrw__0123456789ab"  # a user's file inside
        shutil.copytree(old[0], foreign)
        (foreign / "notes.txt").write_text("mine")
        victim = tmp_path / "elsewhere"  # a stale-looking cache behind a link: its target must survive
        shutil.copytree(old[1], victim)
        victim_files = {q.name: q.read_bytes() for q in victim.iterdir()}
        linked = copy.folder / "lossplug_cache" / "nnUNetPlans__2d__linked__ba9876543210"
        linked.symlink_to(victim)

        listing = _run(copy, "cache", "list", "-d", str(copy.dataset_id))
        assert listing.returncode == 0, listing.stderr
        assert len(_rows(listing.stdout, "valid")) == 2 and len(_rows(listing.stdout, "stale")) == 2, listing.stdout
        assert len(_rows(listing.stdout, "not the plugin's")) == 2, listing.stdout
        assert all(str(p) in "".join(_rows(listing.stdout, "stale")) for p in old), listing.stdout
        assert "plans_fingerprint changed" in listing.stdout and "MiB" in listing.stdout

        refused = _run(copy, "cache", "prune")  # no terminal, no --yes: nothing removed
        assert refused.returncode == 1 and "--yes" in refused.stderr and all(p.is_dir() for p in old)

        pruned = _run(copy, "cache", "prune", "--yes")
        assert pruned.returncode == 0, pruned.stderr
        assert all(str(p) in pruned.stdout for p in old) and "Removed" in pruned.stdout, pruned.stdout
        assert not any(p.exists() for p in old) and all(p.is_dir() for p in new)
        assert (foreign / "notes.txt").read_text() == "mine" and linked.is_symlink()
        assert {q.name: q.read_bytes() for q in victim.iterdir()} == victim_files
        assert not any((copy.folder / "lossplug_cache" / f".{p.name}.lock").exists() for p in old)
        after = _run(copy, "cache", "list")
        assert "0 stale" in after.stdout, after.stdout
    finally:
        copy.remove()
