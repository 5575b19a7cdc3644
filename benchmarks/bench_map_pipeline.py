"""What RW maps cost in an nnU-Net training: loss, augmentation workers, end to end, and the precompute hook.

The script generates one synthetic dataset (``nnunet_lossplug.demo.synthetic``; default 20 cases of
12x128x128 voxels, spacing 10 x 1.5 x 1.5 mm), runs the real ``nnUNetv2_plan_and_preprocess`` for ``2d``
and ``3d_fullres`` in ``--workdir``, and measures, side by side in one process and on that dataset:

1. **Training-process critical path** (median ms per iteration): forward + backward of the loss on random
   logits of the network's output shapes at every deep-supervision level, with the targets and maps of a
   real batch. nnU-Net's ``DC_and_CE_loss`` (as ``nnUNetTrainer._build_loss`` wraps it) against the RW loss
   with maps decoded in the training process from the encoding that arrives with the batch (``precomputed``
   and ``worker`` placements; ``trainer.decode_batch`` + loss, and the decode alone) and against the
   reference code's placement: maps computed inside the loss from the targets at every level
   (``rrw_reference``: scipy's EDT per image and class, as jmlipman/RegionWiseLoss does; also ``rrw``: one
   multi-label ``edt`` pass per image).
2. **Augmentation-worker cost per batch** (median ms): ``generate_train_batch()`` of the loaders built by
   each trainer's ``get_dataloaders`` (nnU-Net's own; ``nnUNet_n_proc_DA=0``, called directly in this
   process): nnU-Net's pipeline alone, with the precomputed encoding carried (lazy crop, interpolation,
   packing into the target) and with the encoding computed per patch in the worker. The ``loss`` placement
   uses nnU-Net's loaders unchanged. Beside it, the **bytes per batch** each loader hands to the training
   process (image + targets at every level, the encoding included).
3. **End to end** (median s per iteration, data loading included): ``train_step(next(dataloader_train))``
   of ``nnUNetTrainer``, ``nnUNetTrainerRRW`` (precomputed), ``nnUNetTrainerRRWOnline`` (worker) and a
   reference-placement trainer (``rrw_reference`` in the loss), in this process with ``nnUNet_n_proc_DA``
   augmentation worker processes. The RRW trainers use Adam (Valverde & Tohka 2022), nnUNetTrainer SGD: part of the
   trainers being compared. By default on the ``2d`` configuration (the paper's) with batch 2 instead of the
   plans' batch: on a CPU the network dominates, and a ``3d_fullres`` iteration takes tens of seconds.
   ``--e2e-configurations 2d 3d_fullres --e2e-batch 0`` runs nnU-Net's plans unchanged (on a GPU machine).
4. **Precompute hook**: ``CaseCache.ensure(force=True)`` for ``rrw`` (segmentation read, one multi-label
   ``edt`` pass, float16 encoding, atomic writes) against the reference per-class scipy loop
   (``rrw_reference_map``, the ``rrw_reference`` kind's function, after the same segmentation read, nothing
   written), on the same cases. MB/s counts the K-channel float32 map each produces per case.
5. **Loss memory for many classes** (``--memory-classes``, default K = 100, one 3D patch 1x40x96x96 at full
   resolution): peak memory of loss forward + backward, each variant in a fresh process (peak RSS above the
   inputs on a CPU, ``torch.cuda.max_memory_allocated`` on a GPU): nnU-Net's ``DC_and_CE_loss`` against the
   RW loss with the map decoded from the one-channel RRW encoding (``RectifiedMap``, O(N)) and with the
   K-channel map.

Every ratio is the median time of a row divided by that of the section's baseline on the same
configuration, measured in the same run. ``torch.set_num_threads(1)`` in this process for every variant;
augmentation workers are single-threaded in nnU-Net anyway. Progress goes to stderr, the table to stdout.

Usage::

    python benchmarks/bench_map_pipeline.py --workdir /tmp/lossplug_bench          # < 10 min on 2 CPU cores
    python benchmarks/bench_map_pipeline.py --workdir /tmp/lossplug_bench --quick  # 8 cases of 8x64x64

A workdir that already holds the preprocessed dataset of the same specification is reused (the
preprocessing is then skipped); ``--fresh`` deletes it first.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import os
import platform
import shutil
import statistics
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch

REPO = Path(__file__).resolve().parents[1]
DATASET_ID = 992
DATASET_NAME = f"Dataset{DATASET_ID}_LossPlugBench"
NUM_CLASSES = 4
CONFIGURATIONS = ("2d", "3d_fullres")


@dataclass(frozen=True)
class Settings:
    """Sizes of one benchmark run (``--quick`` shrinks all of them)."""

    num_cases: int
    shape: tuple[int, int, int]
    loss_repeats: int
    da_batches: int
    e2e_iterations: int
    e2e_warmup: int
    e2e_batch: int
    e2e_configurations: tuple[str, ...]
    da_workers: int

    @classmethod
    def from_args(cls, args: argparse.Namespace) -> Settings:
        e2e = tuple(args.e2e_configurations)
        if args.quick:
            return cls(8, (8, 64, 64), 5, 3, 5, 2, args.e2e_batch, e2e, args.da_workers)
        return cls(args.cases, tuple(args.shape), 10, 8, args.iterations, 2, args.e2e_batch, e2e, args.da_workers)


@dataclass
class Row:
    section: str
    configuration: str
    variant: str
    median: float
    unit: str
    baseline: float | None = None
    notes: str = ""

    def ratio(self) -> str:
        return f"{self.median / self.baseline:.2f}" if self.baseline else "1.00"


def log(message: str) -> None:
    print(f"[bench {time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


def median_seconds(run: Callable[[], object], repeats: int, warmup: int = 1) -> float:
    """Median wall time of ``run()`` over ``repeats`` calls after ``warmup`` untimed ones."""
    return interleaved_medians({"run": run}, repeats, warmup)["run"]


def interleaved_medians(runs: dict[str, Callable[[], object]], repeats: int, warmup: int = 1) -> dict[str, float]:
    """Median wall time of each run, timed in rounds (A, B, C, A, B, C, ...) so load drift hits all alike."""
    times: dict[str, list[float]] = {name: [] for name in runs}
    for i in range(warmup + repeats):
        for name, run in runs.items():
            start = time.perf_counter()
            run()
            if i >= warmup:
                times[name].append(time.perf_counter() - start)
    return {name: statistics.median(values) for name, values in times.items()}


# ---------------------------------------------------------------------------------------------- dataset
def prepare_dataset(workdir: Path, settings: Settings, fresh: bool) -> None:
    """Write the synthetic dataset and preprocess it with nnU-Net, unless ``workdir`` already holds it."""
    from nnunet_lossplug.demo.synthetic import SyntheticSpec, write_synthetic_dataset

    spec = SyntheticSpec(num_training=settings.num_cases, num_test=0, shape=settings.shape,
                         spacing=(10.0, 1.5, 1.5), seed=0)
    marker = workdir / "dataset_spec.json"
    wanted = json.dumps(asdict(spec), sort_keys=True)
    if fresh:
        shutil.rmtree(workdir, ignore_errors=True)
    if marker.is_file() and marker.read_text() == wanted:
        log(f"reusing the preprocessed dataset in {workdir}")
        return
    for sub in ("raw", "preprocessed", "results"):
        shutil.rmtree(workdir / sub, ignore_errors=True)
        (workdir / sub).mkdir(parents=True)
    write_synthetic_dataset(workdir / "raw", DATASET_ID, "LossPlugBench", spec)
    log(f"nnUNetv2_plan_and_preprocess of {settings.num_cases} cases {settings.shape} (2d, 3d_fullres) ...")
    start = time.perf_counter()
    command = [str(Path(sys.executable).parent / "nnUNetv2_plan_and_preprocess"), "-d", str(DATASET_ID),
               "-c", "2d", "3d_fullres", "-np", "2", "2", "-npfp", "2"]
    with open(workdir / "preprocess.log", "w") as output:
        subprocess.run(command, check=True, stdout=output, stderr=subprocess.STDOUT, env=dict(os.environ))
    log(f"preprocessed in {time.perf_counter() - start:.0f} s")
    marker.write_text(wanted)


# ---------------------------------------------------------------------------------------------- trainers
def trainer_classes() -> dict[str, type]:
    from nnunetv2.training.nnUNetTrainer.nnUNetTrainer import nnUNetTrainer

    from nnunet_lossplug.trainers import nnUNetTrainerRRW, nnUNetTrainerRRWOnline

    class nnUNetTrainerRRWReferencePlacement(nnUNetTrainerRRW):
        """RRW maps computed in the training process inside the loss, scipy per class (the reference code)."""

        rw_map = "rrw_reference"
        map_placement = "loss"

    return {"nnunet": nnUNetTrainer, "precomputed": nnUNetTrainerRRW,
            "worker": nnUNetTrainerRRWOnline, "reference": nnUNetTrainerRRWReferencePlacement}


def build_trainer(cls: type, configuration: str, preprocessed: Path):
    from batchgenerators.utilities.file_and_folder_operations import load_json

    plans = load_json(str(preprocessed / "nnUNetPlans.json"))
    plans["continue_training"] = False
    with contextlib.redirect_stdout(io.StringIO()):
        trainer = cls(plans, configuration, 0, load_json(str(preprocessed / "dataset.json")),
                      device=torch.device("cpu"))
        trainer.initialize()
    return trainer


@contextlib.contextmanager
def da_processes(count: int):
    saved = os.environ.get("nnUNet_n_proc_DA")
    os.environ["nnUNet_n_proc_DA"] = str(count)
    try:
        yield
    finally:
        if saved is None:
            os.environ.pop("nnUNet_n_proc_DA", None)
        else:
            os.environ["nnUNet_n_proc_DA"] = saved


def loaders(trainer, processes: int):
    with da_processes(processes), contextlib.redirect_stdout(io.StringIO()):
        return trainer.get_dataloaders()


def finish(*generators) -> None:
    for generator in generators:
        if hasattr(generator, "_finish"):
            generator._finish()


# ---------------------------------------------------------------------------------------------- sections
def section_loss(configuration: str, trainers: dict, batches: dict, repeats: int) -> list[Row]:
    """Loss forward + backward in the training process on random logits of the network's output shapes."""
    from nnunet_lossplug.maps import get_map_kind
    from nnunet_lossplug.nnunet.trainer.loss import TrainerLoss

    shapes = [t.shape for t in batches["nnunet"]["target"]]
    generator = torch.Generator().manual_seed(0)
    logits = [torch.randn((s[0], NUM_CLASSES, *s[2:]), generator=generator) for s in shapes]

    def fwd_bwd(loss_fn, batch: dict, decoder=None):
        def run():
            outputs = [x.clone().requires_grad_(True) for x in logits]
            if decoder is None:
                loss_fn(outputs, batch["target"]).backward()
            else:
                target, maps = decoder.decode_batch(batch)
                loss_fn(outputs, target, maps).backward()
        return run

    rrw = trainers["precomputed"]
    in_loss_edt = TrainerLoss(rrw.loss.criterion, get_map_kind("rrw"), NUM_CLASSES, rrw.configuration_manager.spacing)
    variants = {
        "nnU-Net DC_and_CE_loss": fwd_bwd(trainers["nnunet"].loss, batches["nnunet"]),
        "RRW precomputed: decode + loss": fwd_bwd(rrw.loss, batches["precomputed"], rrw),
        "RRW precomputed: decode alone": lambda: rrw.decode_batch(batches["precomputed"]),
        "RRW worker: decode + loss": fwd_bwd(rrw.loss, batches["worker"], trainers["worker"]),
        "reference placement: scipy EDT per image+class in loss": fwd_bwd(trainers["reference"].loss,
                                                                          batches["nnunet"]),
        "in-loss placement with edt (one pass per image)": fwd_bwd(in_loss_edt, batches["nnunet"]),
    }
    medians = interleaved_medians(variants, repeats)
    base = medians["nnU-Net DC_and_CE_loss"] * 1e3
    notes = [f"{len(shapes)} DS levels, batch {shapes[0][0]}, random logits", "maps decoded at every DS level",
             "unpack + decode, every DS level", "", "maps at every DS level", "maps at every DS level"]
    return [Row("1 loss fwd+bwd (training process)", configuration, label, medians[label] * 1e3, "ms/iter",
                None if i == 0 else base, note) for i, (label, note) in enumerate(zip(variants, notes))]


def section_augmentation(configuration: str, trainers: dict, count: int) -> tuple[list[Row], dict]:
    """``generate_train_batch()`` of each trainer's training loader, in this process, timed in rounds.

    Every variant is seeded alike before each call, so all three crop the same cases at the same places and
    draw the same augmentations: the differences are the map handling alone.
    """
    labels = {"nnunet": "nnU-Net pipeline alone", "precomputed": "+ precomputed encoding carried",
              "worker": "+ per-patch encoding computed in the worker"}
    generators, runs, batches, calls = [], {}, {}, dict.fromkeys(labels, 0)
    for variant in labels:
        gen_tr, gen_val = loaders(trainers[variant], 0)
        generators += [gen_tr, gen_val]

        def run(loader=gen_tr.data_loader, variant=variant):
            # the n-th call of every variant draws the same cases, crops and augmentation parameters
            calls[variant] += 1
            np.random.seed(calls[variant])
            torch.manual_seed(calls[variant])
            batches[variant] = loader.generate_train_batch()

        runs[variant] = run
    medians = interleaved_medians(runs, count)
    finish(*generators)
    base = medians["nnunet"] * 1e3
    rows = [Row("2 augmentation worker, per batch", configuration, labels[v], medians[v] * 1e3, "ms/batch",
                None if v == "nnunet" else base, f"batch {batches[v]['data'].shape[0]}" if v == "nnunet" else "")
            for v in labels]
    sizes = {v: batch_bytes(batches[v]) for v in labels}
    rows += [Row("2b bytes per batch, worker -> trainer", configuration, labels[v], sizes[v] / 1e6, "MB",
                 None if v == "nnunet" else sizes["nnunet"] / 1e6, "image + targets of every level")
             for v in labels]
    return rows, batches


def batch_bytes(batch: dict) -> int:
    """Bytes of the tensors a loader hands to the training process (what crosses the process boundary)."""
    tensors = [batch["data"], *(batch["target"] if isinstance(batch["target"], list) else [batch["target"]])]
    return sum(t.numel() * t.element_size() for t in tensors)


def section_end_to_end(configuration: str, trainers: dict, settings: Settings) -> list[Row]:
    """Median seconds of ``train_step(next(dataloader_train))`` with augmentation worker processes."""
    rows, base = [], None
    labels = {"nnunet": "nnUNetTrainer", "precomputed": "nnUNetTrainerRRW (precomputed)",
              "worker": "nnUNetTrainerRRWOnline (worker)", "reference": "RRW, reference placement (in loss)"}
    for variant in ("nnunet", "precomputed", "worker", "reference"):
        trainer = trainers[variant]
        plans_batch = trainer.batch_size
        if settings.e2e_batch:
            trainer.batch_size = settings.e2e_batch
        gen_tr, gen_val = loaders(trainer, settings.da_workers)
        trainer.network.train()
        try:
            with contextlib.redirect_stdout(io.StringIO()):
                value = median_seconds(lambda t=trainer, g=gen_tr: t.train_step(next(g)), settings.e2e_iterations,
                                       warmup=settings.e2e_warmup)
        finally:
            finish(gen_tr, gen_val)
            trainer.batch_size = plans_batch
        base = value if base is None else base
        batch = f"batch {settings.e2e_batch} (plans: {plans_batch})" if settings.e2e_batch else f"batch {plans_batch}"
        rows.append(Row("3 end to end, train_step(next(loader))", configuration, labels[variant], value, "s/iter",
                        None if variant == "nnunet" else base,
                        f"{batch}, {settings.e2e_iterations} iterations, {settings.da_workers} DA processes"))
        log(f"  end to end {configuration} {variant}: {value:.3f} s/iter")
    return rows


def section_hook(configuration: str, preprocessed_base: Path) -> list[Row]:
    """Precompute hook throughput against the reference per-class scipy loop on the same cases."""
    from nnunet_lossplug.maps import rrw_reference_map
    from nnunet_lossplug.nnunet import CaseCache, PreprocessedSource
    from nnunet_lossplug.nnunet.codecs.softmax import codec_for

    source = PreprocessedSource.from_names(DATASET_ID, configuration)
    ids = source.identifiers()
    cache = CaseCache(source, codec_for("rrw", NUM_CLASSES))
    cache.ensure(num_processes=1, progress=False)  # warm the file system cache for both sides
    voxels = sum(int(np.prod(json.loads(cache.sidecar_path(i).read_text())["shape"])) for i in ids)
    map_mb = voxels * NUM_CLASSES * 4 / 1e6

    def scipy_loop():
        for identifier in ids:
            labels = source.labels_for_maps(source.load_segmentation(identifier), identifier)
            rrw_reference_map(labels, NUM_CLASSES, spacing=source.case_spacing(identifier))

    summaries = {}

    def build(processes: int):
        def run():
            summaries[processes] = cache.ensure(num_processes=processes, force=True, progress=False)
        return run

    reference_label = "reference: scipy EDT per class (rrw_reference)"
    processes = {"CaseCache.ensure(force=True), 1 process": 1, "CaseCache.ensure(force=True), 2 processes": 2}
    medians = interleaved_medians({reference_label: scipy_loop, **{k: build(n) for k, n in processes.items()}}, 3,
                                  warmup=0)
    reference = medians[reference_label]
    rows = []
    for label, seconds in medians.items():
        written = f", {summaries[processes[label]].bytes_written / 2**20:.1f} MiB written" if label in processes else ""
        rows.append(Row("4 precompute hook (rrw)", configuration, label, seconds / len(ids) * 1e3, "ms/case",
                        None if label == reference_label else reference / len(ids) * 1e3,
                        f"{len(ids) / seconds:.1f} cases/s, {map_mb / seconds:.0f} MB/s{written}"))
    return rows


MEMORY_VARIANTS = {
    "dc_and_ce": "nnU-Net DC_and_CE_loss",
    "rrw_compact": "RRW: one-channel encoding decoded (RectifiedMap)",
    "rrw_dense": "RRW: K-channel map",
}
MEMORY_PATCH = (1, 40, 96, 96)


def _status_bytes(field: str) -> int:
    """``VmRSS`` / ``VmHWM`` (peak RSS) of this process from ``/proc/self/status``, in bytes (Linux)."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1]) * 1024
    raise RuntimeError(f"/proc/self/status has no {field}")


def memory_probe(variant: str, num_classes: int) -> int:
    """Peak memory (bytes) of one loss forward + backward above its inputs; run in a fresh process."""
    from nnunetv2.training.loss.compound_losses import DC_and_CE_loss
    from nnunetv2.training.loss.dice import MemoryEfficientSoftDiceLoss

    from nnunet_lossplug.losses import RegionWiseLoss
    from nnunet_lossplug.nnunet.codecs.softmax import codec_for

    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    batch, *spatial = MEMORY_PATCH
    generator = torch.Generator().manual_seed(0)
    logits = torch.randn((batch, num_classes, *spatial), generator=generator).to(device).requires_grad_(True)
    labels = torch.randint(0, num_classes, (batch, 1, *spatial), generator=generator).to(device)
    encoded = torch.rand((batch, 1, *spatial), generator=generator).half().to(device)
    codec = codec_for("rrw", num_classes)
    if variant == "dc_and_ce":
        loss = DC_and_CE_loss({"batch_dice": True, "smooth": 1e-5, "do_bg": False, "ddp": False}, {},
                              weight_ce=1, weight_dice=1, ignore_label=None, dice_class=MemoryEfficientSoftDiceLoss)

        def run():
            return loss(logits, labels)
    else:
        rw = RegionWiseLoss()

        def run():
            z = codec.decode(encoded, labels)
            return rw(logits, z if variant == "rrw_compact" else z.dense())
    if device.type == "cuda":
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()
        base = torch.cuda.memory_allocated()
        run().backward()
        torch.cuda.synchronize()
        return torch.cuda.max_memory_allocated() - base
    logits.grad = torch.zeros_like(logits)  # the gradient buffer exists in training too; not counted
    Path("/proc/self/clear_refs").write_text("5")  # resets the peak (VmHWM) to the current RSS
    base = _status_bytes("VmRSS")
    run().backward()
    return _status_bytes("VmHWM") - base


def section_memory(num_classes: int) -> list[Row]:
    """Each variant of :func:`memory_probe` in its own process (peak RSS is per process)."""
    results = {}
    for variant in MEMORY_VARIANTS:
        output = subprocess.run([sys.executable, __file__, "--memory-probe", variant, "--memory-classes",
                                 str(num_classes)], check=True, capture_output=True, text=True).stdout
        results[variant] = int(output.strip().splitlines()[-1])
    base = results["dc_and_ce"] / 2**20
    where = "GPU max_memory_allocated" if torch.cuda.is_available() else "peak RSS above the inputs"
    return [Row("5 loss memory fwd+bwd, many classes", "3d patch", label, results[v] / 2**20, "MiB",
                None if v == "dc_and_ce" else base,
                f"K={num_classes}, patch {'x'.join(map(str, MEMORY_PATCH))}, full resolution, {where}")
            for v, label in MEMORY_VARIANTS.items()]


# ---------------------------------------------------------------------------------------------- output
def print_table(rows: Sequence[Row], header: str) -> None:
    print(header)
    print()
    print("| section | config | variant | median | unit | × baseline | notes |")
    print("|---|---|---|---:|---|---:|---|")
    for r in rows:
        value = f"{r.median:.1f}" if r.median >= 10 else f"{r.median:.3f}"
        print(f"| {r.section} | {r.configuration} | {r.variant} | {value} | {r.unit} | {r.ratio()} | {r.notes} |")
    sys.stdout.flush()


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--workdir", type=Path, help="folder for the generated nnU-Net dataset (required)")
    parser.add_argument("--quick", action="store_true", help="8 cases of 8x64x64 and few repeats")
    parser.add_argument("--fresh", action="store_true", help="delete the workdir first (no reuse)")
    parser.add_argument("--cases", type=int, default=20, help="training cases (default 20)")
    parser.add_argument("--shape", type=int, nargs=3, default=[12, 128, 128], help="case shape z y x")
    parser.add_argument("--iterations", type=int, default=20, help="timed end-to-end iterations (default 20)")
    parser.add_argument("--da-workers", type=int, default=min(2, os.cpu_count() or 1),
                        help="nnUNet_n_proc_DA for the end-to-end section (default: min(2, cores))")
    parser.add_argument("--configurations", nargs="+", default=list(CONFIGURATIONS), choices=CONFIGURATIONS)
    parser.add_argument("--e2e-configurations", nargs="*", default=["2d"], choices=CONFIGURATIONS,
                        help="configurations of the end-to-end section (default: 2d, the paper's; a 3d_fullres "
                             "nnU-Net network takes tens of seconds per iteration on a CPU)")
    parser.add_argument("--e2e-batch", type=int, default=2,
                        help="batch size of the end-to-end section (default 2; 0 = the plans' batch size). Network, "
                             "augmentation and loss all scale with the batch, so the ratios stay comparable")
    parser.add_argument("--memory-classes", type=int, default=100, help="K of the loss-memory section (default 100)")
    parser.add_argument("--memory-probe", choices=list(MEMORY_VARIANTS), help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.memory_probe:
        torch.set_num_threads(1)
        print(memory_probe(args.memory_probe, args.memory_classes))
        return 0
    if args.workdir is None:
        parser.error("--workdir is required")
    settings = Settings.from_args(args)
    workdir = args.workdir.resolve()
    workdir.mkdir(parents=True, exist_ok=True)
    os.environ.update(nnUNet_raw=str(workdir / "raw"), nnUNet_preprocessed=str(workdir / "preprocessed"),
                      nnUNet_results=str(workdir / "results"), nnUNet_compile="f",
                      nnUNet_def_n_proc=os.environ.get("nnUNet_def_n_proc", "2"))
    torch.set_num_threads(1)
    start, load_before = time.perf_counter(), os.getloadavg()[0]
    prepare_dataset(workdir, settings, args.fresh)
    preprocessed = workdir / "preprocessed" / DATASET_NAME
    shutil.rmtree(preprocessed / "lossplug_cache", ignore_errors=True)

    classes = trainer_classes()
    rows: list[Row] = []
    for configuration in args.configurations:
        log(f"{configuration}: building trainers and the rrw cache")
        trainers = {name: build_trainer(cls, configuration, preprocessed) for name, cls in classes.items()}
        from nnunet_lossplug.nnunet import CaseCache

        CaseCache(trainers["precomputed"].source, trainers["precomputed"].map_codec()).ensure(num_processes=2,
                                                                                               progress=False)
        log(f"{configuration}: augmentation workers")
        da_rows, batches = section_augmentation(configuration, trainers, settings.da_batches)
        log(f"{configuration}: loss critical path")
        rows += section_loss(configuration, trainers, batches, settings.loss_repeats)
        rows += da_rows
        if configuration in settings.e2e_configurations:
            log(f"{configuration}: end to end")
            rows += section_end_to_end(configuration, trainers, settings)
        log(f"{configuration}: precompute hook")
        rows += section_hook(configuration, preprocessed)
    log("loss memory with many classes")
    rows += section_memory(args.memory_classes)
    rows.sort(key=lambda r: (r.section, r.configuration))

    header = (
        f"nnunet-lossplug map pipeline benchmark: {settings.num_cases} synthetic cases {settings.shape[0]}x"
        f"{settings.shape[1]}x{settings.shape[2]} (10x1.5x1.5 mm, 4 classes), nnU-Net plans 2d / 3d_fullres; "
        f"CPU {platform.processor() or platform.machine()}, {os.cpu_count()} cores, torch.set_num_threads(1) in "
        f"the training process for every variant; medians; '× baseline' = median / the section's first row "
        f"(same configuration, same run). Total {time.perf_counter() - start:.0f} s; 1-min load average "
        f"{load_before:.1f} at the start, {os.getloadavg()[0]:.1f} at the end (other processes share the CPU)."
    )
    print_table(rows, header)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
