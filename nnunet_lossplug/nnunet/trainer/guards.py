"""Checks that stop a training run early with one message naming the cause and the fix.

- :func:`check_finite_loss`: the first non-finite training loss stops the run (``NonFiniteLossError``) with
  the batch's case identifiers and what to check, instead of a run that ends with ``train_loss nan`` and a
  checkpoint full of NaN. It reads the value nnU-Net's ``train_step`` has already copied to the host (its
  logged loss), so it adds no device synchronisation: the check runs right after that step, before any
  checkpoint can be written. The losses' input checks run on the device during the step (a bad target makes
  the loss NaN); for a non-finite loss the check repeats the step's forward pass eagerly, where those checks
  raise, and adds their message (out-of-range labels, a negative distance map, ...). The loss is the float32
  value the loss module returns, so AMP's loss scaling (whose skipped steps come from overflowing float16
  *gradients*) is not affected. Under DDP (``-num_gpus N``) the check is a collective: each rank's verdict is
  all-reduced, so every rank stops with the same error, naming the ranks whose loss was not finite, instead of
  one rank stopping while the others wait in the next all-reduce (one small all-reduce per step, DDP only).
- :func:`check_class_counts`: a class with no voxel in the fold's training cases gets the Shen et al. 2018 weight
  ``N / ε`` (eq. 4-5, ``ε = 1``), the largest possible, so the class-weighted Dice loss is dominated by a
  class the network never sees (``train_loss`` in the thousands); the trainer stops at start instead.
- :func:`check_device`: ``nnUNetv2_train`` trains on ``-device cuda`` unless told otherwise; on a machine where
  PyTorch finds no CUDA device that would end in a traceback from deep inside ``initialize``; the trainer stops
  at start instead, saying to add ``-device cpu``.
- :func:`warn_if_defined_twice`: a trainer whose class name is defined in more than one file of nnU-Net's trainer
  folders warns at start, naming the files and the one this run uses (nnU-Net's ``-tr NAME`` takes the first
  it finds, so an edit to the other file silently changes nothing).
"""

from __future__ import annotations

import contextlib
import inspect
import warnings
from collections.abc import Callable, Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch

from nnunet_lossplug.nnunet.errors import (
    AbsentClassError,
    DeviceUnavailableError,
    GradClipError,
    NonFiniteLossError,
    PreviousStageMissingError,
)
from nnunet_lossplug.trainer_sources import duplicate_trainer_names

#: the L2 norm nnU-Net's ``nnUNetTrainer.train_step`` clips the network's gradients at (hard-coded)
NNUNET_GRAD_CLIP = 12.0




def non_finite_ranks(finite: bool, device: torch.device) -> list[int]:
    """The ranks whose loss was not finite; a collective (``all_reduce``) when torch.distributed is initialised.

    Every rank must call it at the same step. Without torch.distributed: ``[]`` or ``[0]``.
    """
    if not (torch.distributed.is_available() and torch.distributed.is_initialized()):
        return [] if finite else [0]
    flags = torch.zeros(torch.distributed.get_world_size(), dtype=torch.float32, device=device)
    flags[torch.distributed.get_rank()] = 0.0 if finite else 1.0
    torch.distributed.all_reduce(flags)  # sum of one-hot verdicts: every rank learns every rank's verdict
    return [int(r) for r in torch.nonzero(flags).flatten().tolist()]


def check_finite_loss(trainer: Any, loss: Any, batch: Mapping[str, Any]) -> None:
    """Raise :class:`NonFiniteLossError` if ``loss`` is not finite on any rank; the message names the cases.

    ``loss`` is the step's loss as nnU-Net's ``train_step`` returns it (a NumPy value on the host; a tensor is
    accepted too). ``trainer`` is the running ``LossPlugTrainer`` (epoch, learning rate, map cache and, for the
    diagnosis, network and loss are read from it). Under torch.distributed every rank raises when one rank's
    loss is not finite (:func:`non_finite_ranks`).
    """
    if isinstance(loss, torch.Tensor):
        loss = loss.detach().float().cpu().numpy()
    value = float(np.asarray(loss, dtype=np.float64))
    distributed = torch.distributed.is_available() and torch.distributed.is_initialized()
    if not distributed and np.isfinite(value):
        return
    device = getattr(trainer, "device", torch.device("cpu"))
    bad_ranks = non_finite_ranks(bool(np.isfinite(value)), device)
    if not bad_ranks:
        return
    where = ""
    if distributed:
        rank, world = torch.distributed.get_rank(), torch.distributed.get_world_size()
        where = (f" on rank(s) {bad_ranks} of {world} (this is rank {rank}, whose loss is {value}; every rank "
                 f"stops)")
        if rank not in bad_ranks:
            raise NonFiniteLossError(
                f"non-finite training loss{where} at epoch {trainer.current_epoch}; the run stops so that no NaN "
                f"model is saved. The error of rank {bad_ranks[0]} names its cases and what to check."
            )
    keys = [str(key) for key in batch.get("keys", [])]
    cause = "" if distributed else input_problem(trainer, batch)
    if cause:
        raise NonFiniteLossError(
            f"non-finite training loss ({value}){where} at epoch {trainer.current_epoch} on the batch of cases "
            f"{keys}: {cause} The run stops so that no NaN model is saved."
        )
    lr = trainer.optimizer.param_groups[0]["lr"] if getattr(trainer, "optimizer", None) is not None else None
    checks = []
    maps = getattr(trainer, "maps", None)
    cache = maps.cache() if maps is not None else None
    if cache is not None:
        checks.append(f"the precomputed maps of these cases (verify and repair them with: "
                      f"{cache.rebuild_command(force=False)})")
    checks.append(f"the learning rate (now {lr:.3g}; lower it in the trainer's optimizer_spec)" if lr is not None
                  else "the learning rate")
    checks.append("the loss's inputs (the images and labels of these cases)")
    raise NonFiniteLossError(
        f"non-finite training loss ({value}){where} at epoch {trainer.current_epoch} on the batch of cases {keys}; "
        f"the run stops so that no NaN model is saved. Check " + ", ".join(checks) + "."
    )


def input_problem(trainer: Any, batch: Mapping[str, Any]) -> str:
    """The losses' eager input checks on ``batch``: the first refusal's message, or "" if they all pass.

    During a training step the checks run on the device and only make the loss NaN; here the step's forward
    pass is repeated (without gradients) outside that mode, so a bad target raises its own ``ValueError``.
    Single-process only: under DDP a loss may run collectives that the other ranks would not join.
    """
    network, loss = getattr(trainer, "network", None), getattr(trainer, "loss", None)
    if network is None or loss is None or "data" not in batch or "target" not in batch:
        return ""
    device = trainer.device
    target = batch["target"]
    target = [t.to(device) for t in target] if isinstance(target, list) else target.to(device)
    autocast = torch.autocast(device.type) if device.type == "cuda" else contextlib.nullcontext()
    set_stance = getattr(torch.compiler, "set_stance", None)  # compiled losses check on the device: run them eagerly
    eager = set_stance("force_eager") if set_stance is not None else contextlib.nullcontext()
    try:
        with torch.no_grad(), autocast, eager:
            loss(network(batch["data"].to(device)), target)
    except (ValueError, TypeError) as error:
        return " ".join(str(error).split())
    return ""


def check_class_counts(counts: Sequence[int] | np.ndarray, scheme: str, fold: Any,
                       label_names: Mapping[int, str] | None = None) -> None:
    """Raise :class:`AbsentClassError` if a class has zero training voxels and ``scheme`` weights by counts."""
    counts = np.asarray(counts, dtype=np.int64)
    absent = [int(c) for c in np.flatnonzero(counts == 0)]
    if scheme == "uniform" or not absent:
        return
    names = label_names or {}
    described = ", ".join(f"class {c}" + (f" ({names[c]})" if c in names else "") for c in absent)
    raise AbsentClassError(
        f"{described} has no voxel in the training cases of fold {fold} (training-set class voxel counts "
        f"{[int(c) for c in counts]}): its '{scheme}' weight of Shen et al. 2018 (eq. 4-5) would be N / eps = "
        f"{int(counts.sum())}, the largest any class can get, and would dominate the loss. Ways out: a split "
        f"where every class occurs in the training cases (edit splits_final.json in the dataset's "
        f"nnUNet_preprocessed folder), the uniform weights (nnUNetTrainerDiceUniform), or removing the class from "
        f"dataset.json if it does not belong there. Normalised weights (normalize=True) do not help: they keep "
        f"the ratios, so the absent class would still take almost all of the weight."
    )


def check_grad_clip(max_norm: float, trainer_name: str) -> None:
    """Raise :class:`GradClipError` unless ``0 < max_norm <= 12`` (see the module docstring)."""
    if not 0 < float(max_norm) <= NNUNET_GRAD_CLIP:
        raise GradClipError(
            f"{trainer_name} declares grad_clip = {max_norm}, but nnU-Net's train_step clips the gradients at "
            f"L2 norm {NNUNET_GRAD_CLIP:g} before every step, so only a norm in (0, {NNUNET_GRAD_CLIP:g}] can be "
            f"honoured. Declare grad_clip = {NNUNET_GRAD_CLIP:g} (nnU-Net's) or less."
        )


def clip_before_step(optimizer: torch.optim.Optimizer, parameters: Callable[[], Iterable[torch.nn.Parameter]],
                     max_norm: float):
    """Clip ``parameters()``'s gradients at ``max_norm`` before each ``optimizer.step()``; None if nnU-Net's 12 does.

    Returns the hook's handle (``.remove()`` detaches it).
    """
    if float(max_norm) >= NNUNET_GRAD_CLIP:
        return None

    def clip(_optimizer, _args, _kwargs) -> None:
        torch.nn.utils.clip_grad_norm_(list(parameters()), max_norm)

    return optimizer.register_step_pre_hook(clip)


def warn_if_defined_twice(trainer_class: type, log: Callable[[str], Any]) -> str | None:
    """Warn (and ``log``) if ``trainer_class``'s name is defined in several trainer files; returns the message.

    Uses :func:`nnunet_lossplug.trainer_sources.duplicate_trainer_names` (a scan of the files' source, nothing
    imported).
    """
    found = duplicate_trainer_names().get(trainer_class.__name__)
    if not found:
        return None
    try:
        running = inspect.getsourcefile(trainer_class)
    except TypeError:
        running = None
    message = (
        f"{trainer_class.__name__} is defined in {len(found)} files of nnU-Net's trainer folders "
        f"({', '.join(str(d) for d in found)}); this run uses {running or found[0].path}, the others are never used. "
        f"Rename one of them (nnunet-lossplug trainers flags every name defined twice)."
    )
    warnings.warn(message, stacklevel=2)
    log("WARNING: " + message)
    return message


def check_device(device: torch.device) -> None:
    """Refuse, in one line, a ``cuda`` or ``mps`` device that PyTorch cannot use here."""
    if device.type == "cuda" and not torch.cuda.is_available():
        build = f"CUDA {torch.version.cuda}" if torch.version.cuda else "no CUDA (a CPU-only build)"
        raise DeviceUnavailableError(
            f"nnUNetv2_train trains on -device cuda unless told otherwise, and PyTorch finds no CUDA device here "
            f"(torch {torch.__version__}, built with {build}): add -device cpu to train on the CPU (slow; "
            f"nnunet-lossplug benchmark runs short CPU schedules), or check the NVIDIA driver and the torch build.")
    if device.type == "mps" and not torch.backends.mps.is_available():
        raise DeviceUnavailableError("-device mps: PyTorch finds no Apple-silicon GPU here; use -device cpu.")


def check_previous_stage(trainer: Any) -> None:
    """The cascade's second stage reads the first stage's predictions of every case of the fold (nnU-Net's
    loader would fail on the first missing one, in an augmentation worker): refuse at start, in one line."""
    folder = trainer.folder_with_segs_from_previous_stage
    if not trainer.is_cascaded or folder is None:
        return
    found = {p.name.split(".")[0] for p in Path(folder).glob("*")} if Path(folder).is_dir() else set()
    training, validation = trainer.do_split()
    missing = sorted((set(training) | set(validation)) - found)
    if missing:
        previous = trainer.configuration_manager.previous_stage_name
        raise PreviousStageMissingError(
            f"{trainer.configuration_name} needs the {previous} stage's predictions of every case in {folder}; "
            f"{len(missing)} are missing (e.g. {missing[0]}). Train {previous} with the same trainer first (all "
            f"folds, or fold all: nnUNetv2_train {trainer.plans_manager.dataset_name} {previous} all -tr "
            f"{type(trainer).__name__}); its final validation writes them."
        )
