"""A training that ends cleanly on SIGTERM: a checkpoint at the next iteration, workers that end with the trainer.

A cluster scheduler sends SIGTERM some seconds before it kills a job (SLURM: ``KillWait``, 30 s by default); nnU-Net
dies at once, saves nothing since its last periodic checkpoint (every 50 epochs) and leaves its augmentation
workers computing. :class:`GracefulStop` is a mixin for a subclass of nnU-Net's ``nnUNetTrainer`` (as
:class:`~.seeding.SeededTraining`) that extends nnU-Net's methods of the same name through ``super()``:

- **The signal.** From the end of nnU-Net's ``on_train_start`` to the end of its ``on_train_end`` SIGTERM only
  marks the training as stopping (a single process; under DDP every rank keeps nnU-Net's behaviour).
- **The next iteration boundary.** Before and after each training and validation step the mark is checked; when
  set, the interrupted epoch's entries are dropped from nnU-Net's logger, nnU-Net's ``save_checkpoint`` writes
  ``checkpoint_latest.pth`` (through a temporary file and a rename, so a kill during the write leaves the
  previous one intact) with the interrupted epoch as the one to run next, the augmenters are finished as in
  nnU-Net's ``on_train_end``, one line on stderr says where the checkpoint is and the command that resumes
  (``--c``), and the process exits with the shell's status for the signal (143). ``--c`` then runs the interrupted
  epoch again from its start, on the weights of the last finished iteration. The time from the signal to the
  exit is the rest of one iteration plus one checkpoint save (the line says how long it took).
- **The workers.** While nnU-Net's ``get_dataloaders`` starts its ``NonDetMultiThreadedAugmenter`` workers, each
  forked worker is tied to the trainer: the kernel kills it when the trainer ends however it ends (``SIGKILL``
  included), as the precompute hook's workers (:mod:`nnunet_lossplug.nnunet.map_cache.worker_pool`); and it
  leaves SIGTERM to the trainer: a SIGTERM sent by the trainer itself (nnU-Net's ``_finish``, multiprocessing's
  exit handler) ends it at once, one sent by anyone else (a scheduler signalling every process of the job) is
  ignored, so the trainer still gets its batches until it reaches the boundary and then ends its workers.
- **After the last epoch.** A SIGTERM during ``on_train_end`` lets nnU-Net finish writing ``checkpoint_final.pth``;
  the process then exits (143) before the final validation, with the ``--val`` command that runs it.
"""

from __future__ import annotations

import contextlib
import io
import os
import shlex
import signal
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

from nnunet_lossplug.nnunet.map_cache.worker_pool import _die_with_parent

LATEST_CHECKPOINT = "checkpoint_latest.pth"
_NEXT_ARGUMENT_DROPPED = ("-pretrained_weights",)  # nnU-Net refuses it together with --c

_guarded_parent: int | None = None  # set while the trainer forks workers that must end with it
_fork_hook_registered = False
_CAN_WAIT_FOR_SIGNALS = hasattr(signal, "sigwaitinfo") and hasattr(signal, "pthread_sigmask")


def _leave_sigterm_to(parent: int) -> None:
    """In a forked worker: a SIGTERM from ``parent`` ends this process; one from anyone else is ignored.

    SIGTERM is blocked in every thread of the worker (the parent blocked it before forking, so the threads that
    libraries start in the child, e.g. OpenBLAS's after-fork pool, inherit the mask) and taken by one thread.
    """
    if not _CAN_WAIT_FOR_SIGNALS:
        return  # not Linux: SIGTERM keeps its default action
    signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGTERM})  # already so; every thread started later inherits it

    def wait() -> None:
        while True:
            info = signal.sigwaitinfo({signal.SIGTERM})
            if info.si_pid == parent or os.getppid() != parent:
                os._exit(128 + signal.SIGTERM)

    threading.Thread(target=wait, name="lossplug-sigterm", daemon=True).start()


def _in_forked_child() -> None:
    global _guarded_parent
    parent, _guarded_parent = _guarded_parent, None  # the worker's own children are not the trainer's
    if parent is not None:
        _leave_sigterm_to(parent)  # first: the watcher thread started next must inherit the blocked SIGTERM
        _die_with_parent(parent)


@contextlib.contextmanager
def workers_end_with_this_process() -> Iterator[None]:
    """Processes forked within the block end with this one and leave SIGTERM to it (module docstring)."""
    global _guarded_parent, _fork_hook_registered
    if not hasattr(os, "register_at_fork"):
        yield
        return
    if not _fork_hook_registered:
        os.register_at_fork(after_in_child=_in_forked_child)
        _fork_hook_registered = True
    _guarded_parent = os.getpid()
    # blocked in this thread while it forks: a child and every thread started in it inherit the mask; a SIGTERM
    # that comes meanwhile waits here and takes its course afterwards
    previous = signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGTERM}) if _CAN_WAIT_FOR_SIGNALS else None
    try:
        yield
    finally:
        _guarded_parent = None
        if previous is not None:
            signal.pthread_sigmask(signal.SIG_SETMASK, previous)


class StopRequest:
    """SIGTERM as a mark (its number and when it came) instead of the end of the process."""

    def __init__(self, signum: signal.Signals = signal.SIGTERM):
        self.watched = signum
        self.signum: int | None = None
        self.received_at: float | None = None
        self._previous = signal.signal(signum, self._mark)

    def _mark(self, signum: int, _frame: object) -> None:
        if self.signum is None:
            self.signum, self.received_at = signum, time.monotonic()

    @property
    def requested(self) -> bool:
        return self.signum is not None

    def seconds_since(self) -> float:
        return 0.0 if self.received_at is None else time.monotonic() - self.received_at

    def release(self) -> None:
        """Give the signal back its previous disposition."""
        signal.signal(self.watched, self._previous)


def command_line(add: str, drop: tuple[str, ...] = _NEXT_ARGUMENT_DROPPED) -> str:
    """This process's command line with the flag ``add`` (once) and without ``drop`` and their values."""
    argv, kept, skip = sys.argv[1:], [], False
    for argument in argv:
        if skip:
            skip = False
        elif argument in drop:
            skip = True
        elif argument not in ("--c", "--val"):
            kept.append(argument)
    program = Path(sys.argv[0]).name if sys.argv and sys.argv[0] else "nnUNetv2_train"
    return shlex.join([program, *kept, add])


class GracefulStop:
    """Mixin: SIGTERM stops the training at the next iteration boundary with a checkpoint (module docstring)."""

    _stop: StopRequest | None = None
    _steps_this_epoch: int = 0

    def get_dataloaders(self):
        with workers_end_with_this_process():
            return super().get_dataloaders()

    def on_train_start(self):
        super().on_train_start()
        if not self.is_ddp and threading.current_thread() is threading.main_thread():
            self._stop = StopRequest()

    def on_train_epoch_start(self):
        self._steps_this_epoch = 0
        super().on_train_epoch_start()

    def train_step(self, batch: dict) -> dict:
        self._stop_if_requested("training")
        result = super().train_step(batch)
        self._steps_this_epoch += 1
        self._stop_if_requested("training")
        return result

    def validation_step(self, batch: dict) -> dict:
        self._stop_if_requested("validation")
        result = super().validation_step(batch)
        self._stop_if_requested("validation")
        return result

    def on_train_end(self):
        super().on_train_end()  # writes checkpoint_final.pth; a SIGTERM meanwhile waits until it is written
        stop, self._stop = self._stop, None
        if stop is None:
            return
        stop.release()
        if stop.requested:
            message = (f"stopped by {signal.Signals(stop.signum).name} after the last epoch: checkpoint_final.pth "
                       f"is in {self.output_folder}; the final validation did not run: {command_line('--val')}")
            self._exit(message, stop.signum)

    # ------------------------------------------------------------------ the stop
    def _stop_if_requested(self, phase: str) -> None:
        stop = self._stop
        if stop is None or not stop.requested:
            return
        self._stop = None
        epoch = self.current_epoch
        where = (f"epoch {epoch}, after iteration {self._steps_this_epoch} of {self.num_iterations_per_epoch}"
                 if phase == "training" else f"epoch {epoch}, during its validation")
        saved = self._save_latest_checkpoint(epoch)
        self._finish_augmenters()
        name = signal.Signals(stop.signum).name
        if saved is None:
            message = (f"stopped by {name} at {where}; checkpointing is disabled (--disable_checkpointing), so "
                       f"nothing was saved and the next run starts from scratch")
        else:
            message = (f"stopped by {name} at {where} ({stop.seconds_since():.1f} s after the signal): saved "
                       f"{saved}; resume with: {command_line('--c')} (epoch {epoch} runs again from its start)")
        stop.release()
        self._exit(message, stop.signum)

    def _save_latest_checkpoint(self, epoch: int) -> Path | None:
        """nnU-Net's checkpoint with ``epoch`` as the next to run; its entries dropped from the logger first."""
        if self.disable_checkpointing or self.local_rank != 0:
            return None
        for values in self.logger.local_logger.my_fantastic_logging.values():
            del values[epoch:]
        target = Path(self.output_folder) / LATEST_CHECKPOINT
        partial = target.with_name(f".{LATEST_CHECKPOINT}.{os.getpid()}.tmp")
        self.current_epoch = epoch - 1  # nnU-Net saves current_epoch + 1, the epoch --c starts with
        try:
            self.save_checkpoint(str(partial))
            os.replace(partial, target)
        finally:
            self.current_epoch = epoch
            with contextlib.suppress(FileNotFoundError):
                partial.unlink()
        return target

    def _finish_augmenters(self) -> None:
        """Stop the augmentation workers as nnU-Net's ``on_train_end`` does (quietly)."""
        for loader in (self.dataloader_train, self.dataloader_val):
            finish = getattr(loader, "_finish", None)
            if callable(finish):
                with contextlib.redirect_stdout(io.StringIO()):
                    finish()

    def _exit(self, message: str, signum: int) -> None:
        self.print_to_log_file(message, also_print_to_console=False)
        program = Path(sys.argv[0]).name if sys.argv and sys.argv[0] else "nnUNetv2_train"
        print(f"{program}: {message}", file=sys.stderr, flush=True)
        raise SystemExit(128 + signum)
