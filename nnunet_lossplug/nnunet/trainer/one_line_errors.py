"""The plugin's refusals under ``nnUNetv2_train``: one line on stderr and a non-zero exit, as ``nnunet-lossplug`` does.

nnU-Net's command line lets every exception end the process with its traceback (7 to 17 frames of nnU-Net's and
the plugin's code before the message). :func:`install_one_line_errors` puts a ``sys.excepthook`` in the training
process that prints an error of the plugin's own types (:class:`~nnunet_lossplug.nnunet.errors.LossPlugError`
and :class:`~nnunet_lossplug.nnunet.errors.BuildInterrupted`) as one line::

    nnUNetv2_train: error: SeedError: NNUNET_LOSSPLUG_SEED = 'abc' is not a seed; use ... (NNUNET_LOSSPLUG_DEBUG=1 ...)

and hands every other exception to the hook that was there before (Python's: the traceback). Python still exits
with status 1 after the hook. ``NNUNET_LOSSPLUG_DEBUG=1`` keeps the traceback for the plugin's errors too.

A refusal at start leaves nnU-Net's training log holding only nnU-Net's citation header. :class:`OneLineErrors`
notes when the first write of the trainer's log creates the file and how long it is then; the hook removes that
file if it has not grown since (a file this run did not create, or one that holds anything more, is kept).
"""

from __future__ import annotations

import os
import sys
from pathlib import Path
from types import TracebackType

import torch

from nnunet_lossplug.nnunet.errors import BuildInterrupted, LossPlugError

DEBUG_ENV_VAR = "NNUNET_LOSSPLUG_DEBUG"
#: what the hook prints as one line; everything else keeps its traceback
PLUGIN_ERRORS: tuple[type[BaseException], ...] = (LossPlugError, BuildInterrupted)

_header_only_logs: dict[Path, int] = {}  # log created by this process -> its size right after nnU-Net's header


def _debug_requested() -> bool:
    return os.environ.get(DEBUG_ENV_VAR, "") not in ("", "0")


def one_line(error: BaseException) -> str:
    """``TypeName: message`` of ``error`` with its white space (new lines included) collapsed."""
    text = " ".join(str(error).split()) or "(no message)"
    return f"{type(error).__name__}: {text}"


def watch_header_only_log(path: Path) -> None:
    """Remember ``path``, a log this process has just created, and its size now (nnU-Net's header only)."""
    try:
        _header_only_logs[path] = path.lstat().st_size
    except OSError:
        pass


def remove_header_only_logs() -> list[Path]:
    """Remove the watched logs that are still regular files of the size noted; returns the removed paths."""
    removed = []
    for path, size in list(_header_only_logs.items()):
        try:
            status = path.lstat()
            if status.st_size == size and path.is_file() and not path.is_symlink():
                path.unlink()
                removed.append(path)
        except OSError:
            continue
        finally:
            _header_only_logs.pop(path, None)
    return removed


def _program() -> str:
    return Path(sys.argv[0]).name if sys.argv and sys.argv[0] else "nnUNetv2_train"


def install_one_line_errors() -> None:
    """Install the hook of the module docstring in this process (once; a second call changes nothing)."""
    if getattr(sys.excepthook, "_lossplug_one_line", False):
        return
    previous = sys.excepthook

    def hook(kind: type[BaseException], error: BaseException, traceback: TracebackType | None) -> None:
        if not isinstance(error, PLUGIN_ERRORS) or _debug_requested():
            previous(kind, error, traceback)
            return
        remove_header_only_logs()
        print(f"{_program()}: error: {one_line(error)} ({DEBUG_ENV_VAR}=1 shows the traceback)",
              file=sys.stderr, flush=True)

    hook._lossplug_one_line = True  # type: ignore[attr-defined]
    sys.excepthook = hook


class OneLineErrors:
    """Mixin for a subclass of nnU-Net's ``nnUNetTrainer``: the hook of the module docstring, from the first line of
    the trainer's construction on, and the watch of a training log that holds only nnU-Net's header."""

    _log_watched: bool = False

    def __init__(self, plans: dict, configuration: str, fold: int, dataset_json: dict,
                 device: torch.device = torch.device("cuda")):  # noqa: B008 - nnU-Net's signature
        install_one_line_errors()
        super().__init__(plans, configuration, fold, dataset_json, device)

    def print_to_log_file(self, *args, **kwargs):
        if self._log_watched:
            return super().print_to_log_file(*args, **kwargs)
        self._log_watched = True  # the first write: nnU-Net's citation header, from its __init__
        path = Path(self.log_file)
        created = not os.path.lexists(path)
        result = super().print_to_log_file(*args, **kwargs)
        if created:
            watch_header_only_log(path)
        return result
