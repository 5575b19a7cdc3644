"""GPU check: seconds per training iteration of the plugin's trainers against ``nnUNetTrainer``, in nnU-Net's loop.

For each trainer and configuration the script does what ``nnUNetv2_train`` does up to the first epoch, through
nnU-Net's public trainer API only: the class is found by name with nnU-Net's
``recursive_find_trainer_class_by_name`` (our trainers through ``nnUNet_extTrainer``), constructed from the plans
and ``dataset.json`` as ``get_trainer_from_args`` does, then ``initialize()``, ``on_train_start()`` (nnU-Net's data
loaders with ``nnUNet_n_proc_DA`` augmentation worker processes; the plugin's precompute hook), ``on_epoch_start()``,
``on_train_epoch_start()``, and ``--warmup`` + ``--iterations`` times
``trainer.train_step(next(trainer.dataloader_train))``.
Every iteration is timed in two parts: the wait for the batch (``next(dataloader_train)``: zero while the workers
keep ahead, the augmentation shortfall otherwise) and the training step (``train_step`` up to
``torch.cuda.synchronize()``). The warm-up covers compilation and drains most of the batches the workers queue
meanwhile (nnU-Net's augmenter holds about 2 x 6 + one per worker); where the workers are only slightly slower
than the GPU, the rest of that queue can still hide part of the shortfall in the first timed iterations, so
look at the per-iteration waits in ``gpu_check.json`` before blaming or acquitting the workers.
Mixed precision and ``torch.compile`` are nnU-Net's own decisions: autocast and GradScaler on CUDA, compile on
CUDA unless ``nnUNet_compile`` says otherwise (this script does not set it); ``cudnn.benchmark`` is on as
``nnUNetv2_train`` sets it. ``torch._dynamo.reset()`` between trainers, so every
trainer compiles its own network as in its own process (inductor's caches make the later compiles shorter).

Trainers: ``nnUNetTrainer`` (the baseline of every ratio), ``nnUNetTrainerRRW`` (precomputed maps),
``nnUNetTrainerRRWOnline`` (maps per patch in the workers), the reference code's placement (``nnUNetTrainerRRW``
with ``rw_map = "rrw_reference"`` computed in the loss in the training process), in ``2d`` and ``3d_fullres``;
``nnUNetTrainerSADice`` and the class-weighted ``nnUNetTrainerDiceSimple`` in ``2d``. Run order puts
``nnUNetTrainer`` and ``nnUNetTrainerRRW`` of both configurations first, so a run cut short by ``--time-budget``
still answers the 1.03x question; trainers not started within the budget are listed as skipped.

The table (stdout, and ``gpu_check.md`` / ``gpu_check.json`` with every iteration's timings in ``--out``, rewritten
after each trainer so that a run killed by a timeout still leaves its rows): per configuration and trainer, seconds
per iteration (median, min, max over the timed iterations), median batch wait and training step, median / the
median of ``nnUNetTrainer`` of the same configuration, peak GPU memory (``torch.cuda.max_memory_allocated`` from
``initialize()`` on; ``n/a`` on a CPU), whether every loss (warm-up included) was finite, the batch size, the
set-up time (construct + initialize + on_train_start) and the warm-up time (compilation included); whether the
loss is compiled (nnU-Net compiles its Dice loss where it compiles the network, the plugin its per-level losses)
and the device->host synchronisations of one more, untimed training step (``syncs / step``, counted by
``nnunet_lossplug.nnunet.trainer.host_syncs.HostSyncCounter``; each one's operation and place are in
``gpu_check.json``; nnU-Net's own trainer has 2 on a GPU, 1 on a CPU without GradScaler).

Datasets (``nnunet_lossplug.demo.synthetic``, planned and preprocessed by nnU-Net's ``nnUNetv2_plan_and_preprocess``):
``2d`` on 20 ACDC-like cases of 10 x 256 x 224 voxels (10 x 1.5 x 1.5 mm), ``3d_fullres`` on 3 cases of
64 x 192 x 192 (1.5 mm isotropic); fold ``all``. nnU-Net plans batch 10 of 256 x 224 for 2d (its cap: a batch
covers at most 5 % of the dataset's voxels) and batch 2 of 64 x 192 x 192 for 3d_fullres.
``--quick``: one dataset of 5 cases of 6 x 40 x 40 for both configurations, warm-up 1 and 2 timed iterations,
one augmentation worker and one preprocessing process by default (about 70 CPU-seconds: 110 s on this project's
2-core machine at a load average of 10, 170 s at 14; ``tests/scripts/test_gpu_check.py`` runs it).

Usage::

    python benchmarks/gpu_check.py --workdir /tmp/gpu_check --quick            # CPU smoke run, ~70 CPU-s
    python benchmarks/gpu_check.py --workdir /tmp/gpu_check                    # generate, preprocess, measure
    python benchmarks/gpu_check.py --workdir gpu_data --prepare-only           # generate + preprocess only
    python benchmarks/gpu_check.py --workdir /tmp/gc --preprocessed gpu_data/nnUNet_preprocessed --out "$OUT"

``--workdir`` holds ``nnUNet_raw``, ``nnUNet_preprocessed`` and ``nnUNet_results`` (names this repository's
.gitignore ignores, so a workdir inside the checkout can travel as an ignored path). A workdir already holding
a dataset of the same specification is reused. ``--preprocessed DIR`` consumes a carried ``nnUNet_preprocessed``
folder written by ``--prepare-only`` (nothing is generated or preprocessed there).

**On the device machine** (one H200, 16 cores, 15 minutes of device time per task, 64 MiB carried per call).
Designed to take about 5-6 minutes there (an estimate, not a measurement: no GPU was lent when this was
written): about 30 s to generate and preprocess (``-np 8``), per trainer a few seconds of set-up, 25 warm-up and 30
timed iterations (2d well under 0.1 s, 3d_fullres a few tenths of a second each on an H200), and
``torch.compile``, the largest and least certain part (roughly a minute for the first network of each
configuration, less for the next ones thanks to inductor's caches). ``--time-budget`` (330 s) skips trainers
not started by then, so the run ends near 6 minutes even if compiling takes longer; the rows written so far are in
``--out`` after every trainer.

Its image has torch, numpy, scipy and scikit-image, not nnU-Net's other requirements. ``--wheels DIR`` installs
every ``DIR/*.whl`` with ``pip install --no-index --no-deps --target build/gpu_site`` (wheels installed there by
an earlier call are skipped; ``build/`` is ignored by git and kept between calls while the machine stays warm) and
puts ``build/gpu_site`` and this checkout on the path (the plugin's trainer folder is registered by the script, no
pip install of the plugin needed). What else must be importable is not listed by hand: before doing anything else
the script imports nnU-Net's planning entry point and looks up every trainer it measures, as ``nnUNetv2_train``
does, in a fresh interpreter, and names every module those imports need and cannot find, in one line
(``missing_modules``; ``--install-only`` prints the same list after installing).
nnU-Net's trainer module imports SimpleITK (through nnU-Net's evaluation code), so SimpleITK is needed even with a
carried preprocessed folder, and the preprocessed datasets (about 58 + 27 MiB) do not fit in one call with the
wheels anyway: the device generates and preprocesses them itself. Steps:

1. Here, wheels for the device's Python (cp312, manylinux x86_64): ``pip download --only-binary=:all: --no-deps
   --python-version 3.12 --platform manylinux2014_x86_64 -d .whl/sitk SimpleITK``; the same into ``.whl/rest``
   for the compiled ones the image lacks (blosc2, edt, connected-components-3d, msgpack, ...: step 3 lists them)
   and ``pip wheel --no-deps -w .whl/rest nnunetv2==2.8.1 batchgeneratorsv2 batchgenerators acvl-utils
   dynamic-network-architectures ...`` for the pure-Python ones (acvl-utils has no wheel on the registry).
   ``.whl/`` is ignored by git.
2. Here: ``python benchmarks/gpu_check.py --workdir /tmp/gc --quick`` passes.
3. Device call 1 (carry ``.whl/sitk``): ``python benchmarks/gpu_check.py --workdir /tmp/gc --wheels .whl/sitk
   --install-only``; it also lists what is still missing.
4. Device call 2 (carry ``.whl/rest``, timeout about 420 s): ``python benchmarks/gpu_check.py
   --workdir /tmp/gc --wheels .whl/rest --out "$OUT"``; then give the machine back.
"""

from __future__ import annotations

import argparse
import contextlib
import gc
import importlib.util
import json
import os
import platform
import signal
import statistics
import subprocess
import sys
import time
import traceback
import types
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
DEFAULT_SITE = REPO / "build" / "gpu_site"
BASELINE = "nnUNetTrainer"
REFERENCE = "RRW reference placement"
CONFIGURATIONS = ("2d", "3d_fullres")
# trainer -> configurations it runs in; REFERENCE is nnUNetTrainerRRW with the reference code's map placement
TRAINERS: dict[str, tuple[str, ...]] = {
    BASELINE: CONFIGURATIONS,
    "nnUNetTrainerRRW": CONFIGURATIONS,
    "nnUNetTrainerRRWOnline": CONFIGURATIONS,
    REFERENCE: CONFIGURATIONS,
    "nnUNetTrainerSADice": ("2d",),
    "nnUNetTrainerDiceSimple": ("2d",),
}
PRIORITY = (BASELINE, "nnUNetTrainerRRW")  # run first in every configuration: the 1.03x verdict needs them
# what the check imports, as nnUNetv2_plan_and_preprocess and nnUNetv2_train would: the modules they need beyond
# these are derived by importing them (`missing_modules`), not listed by hand
PROBE_MODULES = ("nnunetv2.experiment_planning.plan_and_preprocess_entrypoints",
                 "nnunetv2.utilities.default_n_proc_DA", "nnunet_lossplug.demo.synthetic", "nnunet_lossplug.discovery")
PROBE_TRAINERS = tuple(name for name in TRAINERS if name != REFERENCE)  # REFERENCE subclasses RRW
MAX_PROBES = 40


class CheckError(Exception):
    """A problem with the input or the environment; the message names it and the way out."""


@dataclass(frozen=True)
class DatasetPlan:
    """One generated dataset and the configurations measured on it."""

    dataset_id: int
    name: str
    configurations: tuple[str, ...]
    num_cases: int
    shape: tuple[int, int, int]
    spacing: tuple[float, float, float]

    @property
    def folder_name(self) -> str:
        return f"Dataset{self.dataset_id:03d}_{self.name}"


FULL_DATASETS = (
    DatasetPlan(993, "GpuCheck2d", ("2d",), 20, (10, 256, 224), (10.0, 1.5, 1.5)),
    DatasetPlan(994, "GpuCheck3d", ("3d_fullres",), 3, (64, 192, 192), (1.5, 1.5, 1.5)),
)
QUICK_DATASETS = (DatasetPlan(995, "GpuCheckQuick", CONFIGURATIONS, 5, (6, 40, 40), (10.0, 1.5, 1.5)),)
SPEC_FILE = "gpu_check_spec.json"


@dataclass
class Row:
    """One trainer in one configuration: per-iteration timings and what else the table shows."""

    configuration: str
    trainer: str
    status: str = "ok"  # "ok", "skipped: ...", "failed: ..."
    waits: list[float] = field(default_factory=list)
    steps: list[float] = field(default_factory=list)
    warmup_losses_finite: bool = True
    losses_finite: bool = True
    batch_size: int | None = None
    peak_memory_gib: float | None = None
    setup_s: float | None = None
    warmup_s: float | None = None
    compiled: bool | None = None  # nnU-Net's decision, read from the trainer: torch.compile'd network
    mixed_precision: bool | None = None  # nnU-Net's decision: a GradScaler (autocast on CUDA)
    loss_compiled: bool | None = None  # the loss (nnU-Net's Dice part, the plugin's per-level losses) compiled
    syncs: int | None = None  # device->host synchronisations in one training step (HostSyncCounter)
    sync_events: list[str] = field(default_factory=list)  # each: the operation @ file:line

    @property
    def totals(self) -> list[float]:
        return [w + s for w, s in zip(self.waits, self.steps)]

    def median(self) -> float | None:
        return statistics.median(self.totals) if self.totals else None


def log(message: str) -> None:
    print(f"[gpu_check {time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


# ---------------------------------------------------------------------------------------------- environment
def install_wheels(folder: Path, site: Path) -> None:
    """``pip install --no-index --no-deps --target site`` of the wheels in ``folder`` not installed there yet."""
    wheels = sorted(folder.glob("*.whl"))
    if not wheels:
        raise CheckError(f"--wheels {folder}: no *.whl files there; build them as the docstring of "
                         f"benchmarks/gpu_check.py says, or leave --wheels out where the packages are installed")
    site.mkdir(parents=True, exist_ok=True)
    record = site / ".gpu_check_installed"
    done = set(record.read_text().split()) if record.is_file() else set()
    todo = [w for w in wheels if w.name not in done]
    if todo:
        log(f"installing {len(todo)} wheels from {folder} into {site}")
        result = subprocess.run([sys.executable, "-m", "pip", "install", "--quiet", "--no-index", "--no-deps",
                                 "--target", str(site), *map(str, todo)], capture_output=True, text=True)
        if result.returncode != 0:
            last = (result.stderr.strip().splitlines() or ["(no output)"])[-1]
            raise CheckError(f"pip could not install the wheels of {folder}: {last}")
        record.write_text("\n".join(sorted(done | {w.name for w in todo})))


def put_on_path(*folders: Path) -> None:
    """Prepend ``folders`` to sys.path and PYTHONPATH (the preprocessing subprocess and the workers see them)."""
    for folder in reversed(folders):
        if str(folder) not in sys.path:
            sys.path.insert(0, str(folder))
    existing = [p for p in os.environ.get("PYTHONPATH", "").split(os.pathsep) if p]
    os.environ["PYTHONPATH"] = os.pathsep.join([str(f) for f in folders] + existing)


class _MissingModuleStub(type):
    """Stands in for a module found missing, so that one import probe can go on and find the next missing one."""

    def __getattr__(cls, name: str):
        if name.startswith("__"):
            raise AttributeError(name)
        return _MissingModuleStub(name, (), {})

    def __call__(cls, *args, **kwargs):
        return _MissingModuleStub(cls.__name__, (), {})


class _StubFinder:
    """A meta path finder that answers for the named top-level modules (and their submodules) with stubs."""

    def __init__(self, names: set[str]) -> None:
        self.names = names

    def find_spec(self, fullname: str, path=None, target=None):
        if fullname.split(".")[0] not in self.names:
            return None
        return importlib.util.spec_from_loader(fullname, self, is_package=True)

    def create_module(self, spec):
        module = types.ModuleType(spec.name)
        module.__path__ = []
        module.__getattr__ = lambda name: _MissingModuleStub(name, (), {})
        return module

    def exec_module(self, module) -> None:
        pass


def probe_imports(stubbed: Sequence[str], modules: Sequence[str], trainers: Sequence[str]) -> None:
    """Import ``modules`` and look up ``trainers`` as nnUNetv2_train does, with ``stubbed`` standing in; print one
    JSON line: ``{"missing": name}`` for the first module that is not there, ``{"ok": true}`` or ``{"error": ...}``."""
    sys.meta_path.append(_StubFinder(set(stubbed)))
    try:
        for module in modules:
            importlib.import_module(module)
        if trainers:
            from nnunet_lossplug.discovery import ENV_VAR, ext_trainer_value

            os.environ[ENV_VAR] = ext_trainer_value(os.environ.get(ENV_VAR))
            from nnunetv2.utilities.find_objects import recursive_find_trainer_class_by_name

            with contextlib.redirect_stdout(sys.stderr):  # nnU-Net prints its search
                for trainer in trainers:
                    recursive_find_trainer_class_by_name(trainer)
    except ModuleNotFoundError as error:
        print(json.dumps({"missing": (error.name or "?").split(".")[0]}))
        return
    except Exception as error:  # noqa: BLE001 - reported to the parent, which names it
        print(json.dumps({"error": f"{type(error).__name__}: {error}".splitlines()[0]}))
        return
    print(json.dumps({"ok": True}))


def missing_modules(modules: Sequence[str] = PROBE_MODULES, trainers: Sequence[str] = PROBE_TRAINERS) -> list[str]:
    """The top-level modules that importing ``modules`` and finding ``trainers`` needs and this interpreter lacks.

    Derived, not listed: each probe imports everything in a fresh interpreter (with this process's ``sys.path``);
    a module found missing is replaced by a stub in the next probe, until the imports go through. A module that
    is imported only inside ``try: ... except ImportError`` never fails an import, so it is not reported."""
    stubbed: list[str] = []
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(p for p in sys.path if p))
    code = (f"import sys, json; sys.path.insert(0, {str(Path(__file__).resolve().parent)!r}); import gpu_check; "
            f"gpu_check.probe_imports(*json.loads(sys.argv[1]))")
    for _ in range(MAX_PROBES):
        result = subprocess.run([sys.executable, "-c", code, json.dumps([stubbed, list(modules), list(trainers)])],
                                capture_output=True, text=True, env=env)
        answer = json.loads((result.stdout.strip().splitlines() or ["{}"])[-1] or "{}")
        if "missing" in answer and answer["missing"] not in stubbed:
            stubbed.append(answer["missing"])
            continue
        if "error" in answer and not stubbed:
            raise CheckError(f"importing nnU-Net and the plugin failed: {answer['error']}")
        if not answer:
            raise CheckError(f"the import probe exited {result.returncode}: "
                             f"{(result.stderr.strip().splitlines() or ['(no output)'])[-1]}")
        return sorted(stubbed)
    return sorted(stubbed)


def check_modules() -> None:
    missing = missing_modules()
    if missing:
        raise CheckError(f"missing Python modules: {' '.join(missing)} (imported by nnU-Net or the plugin); install "
                         f"them (or pass --wheels DIR with their cp312 wheels, see the docstring of "
                         f"benchmarks/gpu_check.py)")


def set_nnunet_folders(workdir: Path, preprocessed: Path | None) -> Path:
    """Point nnU-Net at the folders (before nnunetv2 is imported: it reads them at import). Returns preprocessed."""
    folders = {"nnUNet_raw": workdir / "nnUNet_raw",
               "nnUNet_preprocessed": preprocessed or workdir / "nnUNet_preprocessed",
               "nnUNet_results": workdir / "nnUNet_results"}
    for key, folder in folders.items():
        folder.mkdir(parents=True, exist_ok=True)
        os.environ[key] = str(folder)
    os.environ.setdefault("nnUNet_def_n_proc", str(min(8, os.cpu_count() or 1)))
    from nnunet_lossplug.discovery import ENV_VAR, ext_trainer_value

    # what the .pth start-up hook does where the plugin is pip-installed (the device has no install)
    os.environ[ENV_VAR] = ext_trainer_value(os.environ.get(ENV_VAR))
    return folders["nnUNet_preprocessed"]


# ---------------------------------------------------------------------------------------------- datasets
def spec_text(plan: DatasetPlan) -> str:
    return json.dumps(asdict(plan), sort_keys=True)


def is_prepared(preprocessed: Path, plan: DatasetPlan) -> bool:
    marker = preprocessed / plan.folder_name / SPEC_FILE
    return marker.is_file() and marker.read_text() == spec_text(plan)


def prepare_dataset(workdir: Path, preprocessed: Path, plan: DatasetPlan, processes: int) -> None:
    """Write the synthetic dataset and run ``nnUNetv2_plan_and_preprocess``, unless it is there already."""
    if is_prepared(preprocessed, plan):
        log(f"reusing {preprocessed / plan.folder_name}")
        return
    from nnunet_lossplug.demo.synthetic import SyntheticSpec, write_synthetic_dataset

    spec = SyntheticSpec(num_training=plan.num_cases, num_test=0, shape=plan.shape, spacing=plan.spacing, seed=0)
    write_synthetic_dataset(workdir / "nnUNet_raw", plan.dataset_id, plan.name, spec)
    log(f"nnUNetv2_plan_and_preprocess {plan.folder_name}: {plan.num_cases} cases of "
        f"{'x'.join(map(str, plan.shape))}, {' '.join(plan.configurations)} ...")
    start = time.perf_counter()
    # nnU-Net's console script is this function; called through this interpreter so --wheels installs work too
    entry = ("import sys; from nnunetv2.experiment_planning.plan_and_preprocess_entrypoints import "
             "plan_and_preprocess_entry as main; sys.argv[0] = 'nnUNetv2_plan_and_preprocess'; sys.exit(main())")
    command = [sys.executable, "-c", entry, "-d", str(plan.dataset_id), "-c", *plan.configurations,
               "-np", str(processes), "-npfp", str(processes)]
    log_file = workdir / f"preprocess_{plan.folder_name}.log"
    with open(log_file, "w") as output:
        result = subprocess.run(command, stdout=output, stderr=subprocess.STDOUT)
    if result.returncode != 0:
        raise CheckError(f"nnUNetv2_plan_and_preprocess of {plan.folder_name} exited {result.returncode}; "
                         f"its output is in {log_file}")
    (preprocessed / plan.folder_name / SPEC_FILE).write_text(spec_text(plan))
    log(f"preprocessed in {time.perf_counter() - start:.0f} s")


def folder_size_mb(folder: Path) -> float:
    return sum(f.stat().st_size for f in folder.rglob("*") if f.is_file()) / 2**20


# ---------------------------------------------------------------------------------------------- trainers
def trainer_class(name: str) -> type:
    """The class nnUNetv2_train would use for ``-tr name``; REFERENCE subclasses nnUNetTrainerRRW."""
    from nnunetv2.utilities.find_objects import recursive_find_trainer_class_by_name

    if name != REFERENCE:
        return recursive_find_trainer_class_by_name(name)
    from nnunet_lossplug.trainers import nnUNetTrainerRRW

    class nnUNetTrainerRRWReferencePlacement(nnUNetTrainerRRW):
        """RRW maps computed in the training process inside the loss, scipy per class (the reference code)."""

        rw_map = "rrw_reference"
        map_placement = "loss"

    return nnUNetTrainerRRWReferencePlacement


def construct(cls: type, preprocessed: Path, plan: DatasetPlan, configuration: str, device):
    """As nnU-Net's ``get_trainer_from_args`` builds a trainer (fold ``all``, no continued training)."""
    from batchgenerators.utilities.file_and_folder_operations import load_json

    folder = preprocessed / plan.folder_name
    plans = load_json(str(folder / "nnUNetPlans.json"))
    plans["continue_training"] = False
    return cls(plans=plans, configuration=configuration, fold="all",
               dataset_json=load_json(str(folder / "dataset.json")), device=device)


def shut_down(trainer) -> None:
    """Stop the augmentation workers as ``on_train_end`` does (without its final checkpoint)."""
    for loader in (getattr(trainer, "dataloader_train", None), getattr(trainer, "dataloader_val", None)):
        if hasattr(loader, "_finish"):
            loader._finish()


class TrainerTimeoutError(Exception):
    pass


@contextlib.contextmanager
def time_limit(seconds: float | None):
    """Raise :class:`TrainerTimeoutError` in the block after ``seconds`` (main thread; between Python bytecodes)."""
    if not seconds:
        yield
        return

    def expire(signum, frame):
        raise TrainerTimeoutError(f"no result after {seconds:.0f} s (--trainer-timeout)")

    previous = signal.signal(signal.SIGALRM, expire)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)


def measure(row: Row, preprocessed: Path, plan: DatasetPlan, device, warmup: int, iterations: int,
            log_file: Path) -> None:
    """Find, set up one trainer as nnUNetv2_train does and time ``warmup + iterations`` training iterations.

    nnU-Net's output (class search, plans, progress) goes to ``log_file``.
    """
    import numpy as np
    import torch

    cuda = device.type == "cuda"

    def sync() -> None:
        if cuda:
            torch.cuda.synchronize(device)

    if cuda:
        torch.cuda.empty_cache()
        torch.cuda.reset_peak_memory_stats(device)
    trainer = None
    with open(log_file, "w") as output, contextlib.redirect_stdout(output):
        try:
            cls = trainer_class(row.trainer)
            start = time.perf_counter()
            trainer = construct(cls, preprocessed, plan, row.configuration, device)
            trainer.initialize()
            trainer.on_train_start()
            trainer.on_epoch_start()
            trainer.on_train_epoch_start()
            sync()
            row.setup_s = time.perf_counter() - start
            row.batch_size = trainer.batch_size
            row.compiled = hasattr(trainer.network, "_orig_mod")
            row.mixed_precision = trainer.grad_scaler is not None
            start = time.perf_counter()
            for i in range(warmup + iterations):
                t0 = time.perf_counter()
                batch = next(trainer.dataloader_train)
                t1 = time.perf_counter()
                loss = trainer.train_step(batch)["loss"]
                sync()
                t2 = time.perf_counter()
                finite = bool(np.all(np.isfinite(loss)))
                if i < warmup:
                    row.warmup_losses_finite &= finite
                    if i == warmup - 1:
                        row.warmup_s = t2 - start
                else:
                    row.losses_finite &= finite
                    row.waits.append(t1 - t0)
                    row.steps.append(t2 - t1)
            if cuda:
                row.peak_memory_gib = torch.cuda.max_memory_allocated(device) / 2**30
            row.loss_compiled = loss_compiled(trainer.loss)
            count_synchronisations(row, trainer)
        finally:
            if trainer is not None:
                shut_down(trainer)
            del trainer
            gc.collect()
            if cuda:
                torch.cuda.empty_cache()
            torch._dynamo.reset()  # the next trainer compiles its own network, as in its own process


def loss_compiled(loss) -> bool:
    """Whether any part of the trainer's loss is compiled (``torch.compile`` or ``nn.Module.compile``)."""
    return any(type(m).__name__ == "OptimizedModule" or getattr(m, "_compiled_call_impl", None) is not None
               for m in loss.modules())


def count_synchronisations(row: Row, trainer) -> None:
    """One more, untimed training step, its device->host synchronisations counted (the counter slows it down).

    nnU-Net's own ``nnUNetTrainer`` has two per step on a GPU (GradScaler's found-inf check, the logged loss); on a
    CPU, without GradScaler, one.
    """
    from nnunet_lossplug.nnunet.trainer.host_syncs import HostSyncCounter

    batch = next(trainer.dataloader_train)
    with HostSyncCounter(trainer.device, [trainer.network, trainer.loss], [trainer.optimizer]) as counter:
        trainer.train_step(batch)
    row.syncs, row.sync_events = counter.count, counter.events


def run_order(plans: Sequence[DatasetPlan]) -> list[tuple[str, DatasetPlan, str]]:
    """(configuration, dataset, trainer) in run order: the PRIORITY trainers of every configuration first."""
    jobs = [(c, p, t) for p in plans for c in p.configurations for t, cs in TRAINERS.items() if c in cs]
    return sorted(jobs, key=lambda j: (j[2] not in PRIORITY, PRIORITY.index(j[2]) if j[2] in PRIORITY else 0))


# ---------------------------------------------------------------------------------------------- output
def seconds(value: float | None) -> str:
    if value is None:
        return "-"
    return f"{value:.3f}" if value < 10 else f"{value:.1f}"


def flags(row: Row) -> str:
    if row.compiled is None:
        return "-"
    return f"{'yes' if row.compiled else 'no'} / {'yes' if row.mixed_precision else 'no'}"


COLUMNS = ("config", "trainer", "s/iter median", "min", "max", "batch wait (median s)", "train step (median s)",
           "× nnUNetTrainer", "peak GPU memory", "losses finite", "batch", "compile / AMP", "loss compiled",
           "syncs / step", "set-up s", "warm-up s", "status")
RIGHT_ALIGNED = {"s/iter median", "min", "max", "batch wait (median s)", "train step (median s)", "× nnUNetTrainer",
                 "peak GPU memory", "batch", "syncs / step", "set-up s", "warm-up s"}


def cells(row: Row, baseline: float | None) -> list[str]:
    totals, median = row.totals, row.median()
    if not totals:
        return [row.configuration, row.trainer, *["-"] * (len(COLUMNS) - 3), row.status]
    memory = "n/a" if row.peak_memory_gib is None else f"{row.peak_memory_gib:.2f} GiB"
    return [row.configuration, row.trainer, seconds(median), seconds(min(totals)), seconds(max(totals)),
            seconds(statistics.median(row.waits)), seconds(statistics.median(row.steps)),
            f"{median / baseline:.2f}" if baseline else "-", memory,
            "yes" if row.losses_finite and row.warmup_losses_finite else "no", str(row.batch_size), flags(row),
            "-" if row.loss_compiled is None else ("yes" if row.loss_compiled else "no"),
            "-" if row.syncs is None else str(row.syncs), seconds(row.setup_s), seconds(row.warmup_s), row.status]


def table(rows: Sequence[Row], header: str) -> str:
    lines = [header, "", "| " + " | ".join(COLUMNS) + " |",
             "|" + "|".join("---:" if c in RIGHT_ALIGNED else "---" for c in COLUMNS) + "|"]
    for row in sorted(rows, key=lambda r: (CONFIGURATIONS.index(r.configuration), list(TRAINERS).index(r.trainer))):
        baseline = next((r.median() for r in rows if r.configuration == row.configuration and r.trainer == BASELINE),
                        None)
        lines.append("| " + " | ".join(cells(row, baseline)) + " |")
    return "\n".join(lines)


def environment_line(device, da_workers: str, warmup: int, iterations: int) -> str:
    from importlib.metadata import version

    import torch

    if device.type == "cuda":
        name = (f"{torch.cuda.get_device_name(device)} (CUDA {torch.version.cuda}, "
                f"cuDNN {torch.backends.cudnn.version()})")
    else:
        name = f"CPU {platform.processor() or platform.machine()}"
    return (f"nnunet-lossplug GPU check, {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}: {name}, "
            f"{os.cpu_count()} CPU cores, torch {torch.__version__}, nnunetv2 {version('nnunetv2')}, Python "
            f"{platform.python_version()}; nnUNet_n_proc_DA={da_workers}, "
            f"nnUNet_compile={os.environ.get('nnUNet_compile', 'unset')}; warm-up {warmup}, timed {iterations} "
            f"iterations per trainer; 1-min load average {os.getloadavg()[0]:.1f}. Medians over the timed "
            f"iterations; × nnUNetTrainer = median / nnUNetTrainer's median in the same configuration and run.")


def write_outputs(out: Path, rows: Sequence[Row], header: str) -> str:
    text = table(rows, header)
    out.mkdir(parents=True, exist_ok=True)
    (out / "gpu_check.md").write_text(text + "\n")
    (out / "gpu_check.json").write_text(json.dumps({"header": header, "rows": [asdict(r) for r in rows]}, indent=1))
    return text


# ---------------------------------------------------------------------------------------------- main
def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--workdir", type=Path, required=True,
                        help="folder for nnUNet_raw / nnUNet_preprocessed / nnUNet_results")
    parser.add_argument("--quick", action="store_true",
                        help="tiny dataset, warm-up 1, 2 timed iterations (a CPU smoke run, about 70 CPU-seconds)")
    parser.add_argument("--prepare-only", action="store_true", help="generate and preprocess, measure nothing")
    parser.add_argument("--preprocessed", type=Path,
                        help="a carried nnUNet_preprocessed folder written by --prepare-only (nothing is generated)")
    parser.add_argument("--out", type=Path, help="where gpu_check.md/.json go (default: --workdir)")
    parser.add_argument("--wheels", type=Path, help="install DIR/*.whl into build/gpu_site first (see docstring)")
    parser.add_argument("--site", type=Path, default=DEFAULT_SITE,
                        help="where --wheels installs (default build/gpu_site: git-ignored, kept between calls)")
    parser.add_argument("--install-only", action="store_true", help="with --wheels: install and stop")
    parser.add_argument("--device", choices=("auto", "cuda", "cpu"), default="auto")
    parser.add_argument("--configurations", nargs="+", choices=CONFIGURATIONS, default=list(CONFIGURATIONS))
    parser.add_argument("--trainers", nargs="+", choices=list(TRAINERS), help="default: all of them")
    parser.add_argument("--warmup", type=int, help="untimed iterations per trainer (default 25, --quick 1); they "
                        "cover torch.compile and drain the batches the workers queued meanwhile")
    parser.add_argument("--iterations", type=int, help="timed iterations per trainer (default 30, --quick 2)")
    parser.add_argument("--da-workers", type=int,
                        help="nnUNet_n_proc_DA (default: as set, else nnU-Net's own choice; --quick: 1)")
    parser.add_argument("--processes", type=int,
                        help="nnUNetv2_plan_and_preprocess -np/-npfp (default: min(8, cores); --quick: 1, as each "
                             "of nnU-Net's spawned processes first imports nnU-Net)")
    parser.add_argument("--time-budget", type=float,
                        help="seconds from the script's start after which trainers not yet started are skipped "
                             "(default 330; none with --quick)")
    parser.add_argument("--trainer-timeout", type=float, default=240.0,
                        help="seconds one trainer may take before it is reported failed (default 240)")
    parser.add_argument("--traceback", action="store_true", help="print tracebacks of failures")
    args = parser.parse_args(argv)
    if args.warmup is None:
        args.warmup = 1 if args.quick else 25
    if args.iterations is None:
        args.iterations = 2 if args.quick else 30
    if args.processes is None:
        args.processes = 1 if args.quick else min(8, os.cpu_count() or 1)
    if args.time_budget is None:
        args.time_budget = float("inf") if args.quick else 330.0
    if args.warmup < 1 or args.iterations < 1:
        parser.error("--warmup and --iterations must be at least 1")
    if args.install_only and args.wheels is None:
        parser.error("--install-only needs --wheels DIR")
    if args.prepare_only and args.preprocessed is not None:
        parser.error("--prepare-only writes the preprocessed folder in --workdir; leave --preprocessed out")
    return args


def run(args: argparse.Namespace) -> int:
    start = time.perf_counter()
    if args.wheels is not None:
        site = args.site.resolve()
        install_wheels(args.wheels.resolve(), site)
        put_on_path(site, REPO)
        if args.install_only:
            missing = missing_modules()
            log(f"installed into {site}; " + (f"still missing: {' '.join(missing)}" if missing else
                                               "every module nnU-Net and the plugin import is importable"))
            return 0
    elif importlib.util.find_spec("nnunet_lossplug") is None:
        put_on_path(REPO)
    check_modules()
    workdir = args.workdir.resolve()
    carried = args.preprocessed.resolve() if args.preprocessed is not None else None
    if carried is not None and not carried.is_dir():
        raise CheckError(f"--preprocessed {carried} is not a folder; write it with --prepare-only first")
    if args.da_workers is not None:
        os.environ["nnUNet_n_proc_DA"] = str(args.da_workers)
    elif args.quick:
        os.environ.setdefault("nnUNet_n_proc_DA", "1")
    preprocessed = set_nnunet_folders(workdir, carried)
    plans = [p for p in (QUICK_DATASETS if args.quick else FULL_DATASETS)
             if set(p.configurations) & set(args.configurations)]
    for plan in plans:
        if carried is None:
            prepare_dataset(workdir, preprocessed, plan, args.processes)
        elif not is_prepared(carried, plan):
            raise CheckError(f"{carried} holds no {plan.folder_name} of this script's specification; write it with "
                             f"`gpu_check.py --prepare-only{' --quick' if args.quick else ''}` and carry its "
                             f"nnUNet_preprocessed folder")
    if args.prepare_only:
        for plan in plans:
            log(f"{preprocessed / plan.folder_name}: {folder_size_mb(preprocessed / plan.folder_name):.1f} MiB")
        return 0

    import torch
    from nnunetv2.utilities.default_n_proc_DA import get_allowed_n_proc_DA

    use_cuda = args.device == "cuda" or (args.device == "auto" and torch.cuda.is_available())
    if args.device == "cuda" and not torch.cuda.is_available():
        raise CheckError("--device cuda, but torch sees no CUDA device; use --device auto or cpu")
    device = torch.device("cuda", 0) if use_cuda else torch.device("cpu")
    if use_cuda:  # as nnUNetv2_train sets them
        torch.backends.cudnn.deterministic = False
        torch.backends.cudnn.benchmark = True
    header = environment_line(device, str(get_allowed_n_proc_DA()), args.warmup, args.iterations)
    out = (args.out or workdir).resolve()
    logs = out / "gpu_check_logs"
    logs.mkdir(parents=True, exist_ok=True)
    rows: list[Row] = []
    failures = 0
    for configuration, plan, name in run_order(plans):
        if configuration not in args.configurations or (args.trainers and name not in args.trainers):
            continue
        row = Row(configuration, name)
        rows.append(row)
        elapsed = time.perf_counter() - start
        if elapsed > args.time_budget:
            row.status = f"skipped: time budget ({elapsed:.0f} s > {args.time_budget:.0f} s)"
            log(f"{configuration} {name}: {row.status}")
            continue
        log(f"{configuration} {name} ...")
        log_file = logs / f"{configuration}_{name.replace(' ', '_')}.log"
        try:
            with time_limit(args.trainer_timeout):
                measure(row, preprocessed, plan, device, args.warmup, args.iterations, log_file)
            log(f"{configuration} {name}: {seconds(row.median())} s/iter (set-up {seconds(row.setup_s)} s, warm-up "
                f"{seconds(row.warmup_s)} s)")
        except Exception as error:  # noqa: BLE001 - one trainer's fault is reported in its row, the others run
            failures += 1
            first = (str(error).strip().splitlines() or [""])[0]
            row.status = f"failed: {type(error).__name__}: {first}"[:200]
            log(f"{configuration} {name} {row.status} (its nnU-Net output: {log_file}"
                f"{'' if args.traceback else '; --traceback for details'})")
            if args.traceback:
                traceback.print_exc()
        write_outputs(out, rows, header)
    print(write_outputs(out, rows, header + f" Total {time.perf_counter() - start:.0f} s."), flush=True)
    return 1 if failures else 0


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    try:
        return run(args)
    except CheckError as error:
        print(f"gpu_check: {error}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    raise SystemExit(main())
