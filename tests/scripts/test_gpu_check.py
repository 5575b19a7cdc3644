"""``benchmarks/gpu_check.py --quick``: nnU-Net's training loop per trainer on a CPU, one table row per trainer.

The script runs as a subprocess in a tmp folder: it generates a tiny dataset, preprocesses it with nnU-Net's
``nnUNetv2_plan_and_preprocess``, and times warm-up 1 + 2 iterations of every trainer with one augmentation worker
(about 70 CPU-seconds: 110 s on 2 CPU cores at a load average of 10, 170 s at 14). The speed numbers themselves
are not checked here (they belong to the benchmark); the table's structure, its finiteness column and its ratios
are.
"""

from __future__ import annotations

import importlib.util
import json
import os
import statistics
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

pytestmark = pytest.mark.integration  # runs nnU-Net's planning and training through the script (minutes)

SCRIPT = Path(__file__).resolve().parents[2] / "benchmarks" / "gpu_check.py"
# the list: four trainers in both configurations, SA Dice and one class-weighted Dice trainer in 2d only
BOTH = ("nnUNetTrainer", "nnUNetTrainerRRW", "nnUNetTrainerRRWOnline", "RRW reference placement")
EXPECTED = {("2d", t) for t in (*BOTH, "nnUNetTrainerSADice", "nnUNetTrainerDiceSimple")} | {
    ("3d_fullres", t) for t in BOTH}


def run_script(*args: str, timeout: float = 600) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, str(SCRIPT), *args], capture_output=True, text=True, timeout=timeout,
                          env=dict(os.environ))


def markdown_rows(text: str) -> list[dict[str, str]]:
    lines = [line for line in text.splitlines() if line.startswith("|")]
    columns = [c.strip() for c in lines[0].strip("|").split("|")]
    return [dict(zip(columns, (c.strip() for c in line.strip("|").split("|")))) for line in lines[2:]]


@pytest.fixture(scope="module")
def quick_run(tmp_path_factory):
    workdir = tmp_path_factory.mktemp("gpu_check")
    result = run_script("--workdir", str(workdir), "--quick", "--da-workers", "1", "--device", "cpu")
    assert result.returncode == 0, f"gpu_check.py exited {result.returncode}\n{result.stderr[-4000:]}"
    return result, workdir


def test_quick_run_has_one_finite_row_per_trainer(quick_run):
    result, workdir = quick_run
    rows = markdown_rows(result.stdout)
    assert {(r["config"], r["trainer"]) for r in rows} == EXPECTED
    assert len(rows) == len(EXPECTED)
    for row in rows:
        assert row["status"] == "ok", row
        assert row["losses finite"] == "yes", row
        assert row["peak GPU memory"] == "n/a", row  # CPU run
        assert row["compile / AMP"] == "no / no", row  # nnU-Net's own decision on a CPU
        assert row["loss compiled"] == "no", row  # compiled only where nnU-Net compiles
        assert float(row["min"]) <= float(row["s/iter median"]) <= float(row["max"]), row
    for configuration in ("2d", "3d_fullres"):
        baseline = next(r for r in rows if r["config"] == configuration and r["trainer"] == "nnUNetTrainer")
        assert baseline["× nnUNetTrainer"] == "1.00"
        assert baseline["syncs / step"] == "1"  # nnU-Net's logged loss (no GradScaler on a CPU)
        for row in rows:  # the map-in-the-loss placement copies the targets to the host by design
            if row["config"] == configuration and row["trainer"] != "RRW reference placement":
                assert int(row["syncs / step"]) <= 1, row
    # the files written after each trainer hold the same table
    assert (workdir / "gpu_check.md").read_text().strip() == result.stdout.strip()


def test_quick_run_ratios_and_timings_follow_from_the_recorded_iterations(quick_run):
    result, workdir = quick_run
    recorded = json.loads((workdir / "gpu_check.json").read_text())["rows"]
    table = {(r["config"], r["trainer"]): r for r in markdown_rows(result.stdout)}
    medians = {}
    for row in recorded:
        assert len(row["waits"]) == len(row["steps"]) == 2  # --quick: 2 timed iterations after 1 warm-up
        assert all(w >= 0 for w in row["waits"]) and all(s > 0 for s in row["steps"])
        medians[(row["configuration"], row["trainer"])] = statistics.median(
            w + s for w, s in zip(row["waits"], row["steps"]))
    for (configuration, trainer), median in medians.items():
        shown = table[(configuration, trainer)]
        assert float(shown["s/iter median"]) == pytest.approx(median, abs=6e-4)
        expected_ratio = median / medians[(configuration, "nnUNetTrainer")]
        assert float(shown["× nnUNetTrainer"]) == pytest.approx(expected_ratio, abs=6e-3)


def test_a_carried_folder_without_the_dataset_is_refused_in_one_line(tmp_path):
    carried = tmp_path / "nnUNet_preprocessed"
    carried.mkdir()
    result = run_script("--workdir", str(tmp_path / "work"), "--quick", "--preprocessed", str(carried), timeout=120)
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in result.stderr
    assert "holds no Dataset995_GpuCheckQuick" in lines[0] and "--prepare-only" in lines[0]


def write_wheel(folder: Path, name: str, version: str) -> Path:
    """A minimal pure-Python wheel holding the module ``name`` (what pip needs: WHEEL, METADATA, RECORD)."""
    dist_info = f"{name}-{version}.dist-info"
    files = {
        f"{name}/__init__.py": f"VERSION = {version!r}\n",
        f"{dist_info}/METADATA": f"Metadata-Version: 2.1\nName: {name}\nVersion: {version}\n",
        f"{dist_info}/WHEEL": "Wheel-Version: 1.0\nGenerator: test\nRoot-Is-Purelib: true\nTag: py3-none-any\n",
    }
    files[f"{dist_info}/RECORD"] = "".join(f"{path},,\n" for path in [*files, f"{dist_info}/RECORD"])
    path = folder / f"{name}-{version}-py3-none-any.whl"
    with zipfile.ZipFile(path, "w") as archive:
        for member, text in files.items():
            archive.writestr(member, text)
    return path


def test_wheels_are_installed_once_into_the_site_folder(tmp_path):
    wheels, site = tmp_path / "wheels", tmp_path / "site"
    wheels.mkdir()
    write_wheel(wheels, "gpucheck_probe", "0.1")
    args = ("--workdir", str(tmp_path / "work"), "--wheels", str(wheels), "--site", str(site), "--install-only")
    first = run_script(*args, timeout=300)
    assert first.returncode == 0, first.stderr
    assert (site / "gpucheck_probe" / "__init__.py").read_text() == "VERSION = '0.1'\n"
    assert "installing 1 wheels" in first.stderr
    assert "every module nnU-Net and the plugin import is importable" in first.stderr
    second = run_script(*args, timeout=300)  # a later call on the same machine: nothing to install
    assert second.returncode == 0 and "installing" not in second.stderr


def test_an_empty_wheel_folder_is_refused_in_one_line(tmp_path):
    result = run_script("--workdir", str(tmp_path / "work"), "--wheels", str(tmp_path), "--install-only", timeout=120)
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and "no *.whl files" in lines[0]


def load_gpu_check():
    spec = importlib.util.spec_from_file_location("gpu_check", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # its dataclasses look their module up there
    spec.loader.exec_module(module)
    return module


def test_the_required_modules_are_derived_from_what_the_code_imports(tmp_path, monkeypatch):
    """A package that needs two absent modules (one through a submodule import) and tries a third optionally:
    the probe names exactly the two, each once; nothing is listed by hand."""
    package = tmp_path / "probe_target"
    package.mkdir()
    (package / "__init__.py").write_text(
        "import absent_one_xyz\n"
        "from absent_two_xyz.sub import thing\n"
        "class Derived(absent_one_xyz.Base):\n    pass\n"
        "try:\n    import absent_optional_xyz\nexcept ImportError:\n    absent_optional_xyz = None\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    gpu_check = load_gpu_check()
    assert gpu_check.missing_modules(["probe_target"], ()) == ["absent_one_xyz", "absent_two_xyz"]


def test_nothing_nnunet_and_the_plugin_import_is_missing_after_the_readme_install():
    """The check's own start-up probe, in the environment the README's set-up command builds (a package that no
    dependency declares but the code imports would be named here)."""
    assert load_gpu_check().missing_modules() == []
