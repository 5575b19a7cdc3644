"""How ``nnunet-lossplug`` reports a user error: one line on stderr, exit status 2, traceback on request.

A subcommand raises; :func:`run_subcommand` turns the errors a user causes and can fix (a dataset id or map
kind that does not exist, a configuration that was not preprocessed, missing plans, a path, undeclared labels,
a cache this user cannot write, a dying worker) into ``nnunet-lossplug COMMAND: error: MESSAGE`` on one line.
``--debug`` (before the subcommand) or ``NNUNET_LOSSPLUG_DEBUG=1`` lets the exception through with its
traceback. Errors outside that set are bugs and keep their traceback. Ctrl-C (and SIGTERM where a subcommand
turns it into an interrupt) ends as ``nnunet-lossplug COMMAND: interrupted (SIGINT): WHAT WAS KEPT`` and the
shell's status for the signal, 128 + its number (130 for SIGINT).
"""

from __future__ import annotations

import argparse
import os
import signal
import sys
from collections.abc import Callable

from nnunet_lossplug.nnunet.errors import LossPlugError

DEBUG_ENV_VAR = "NNUNET_LOSSPLUG_DEBUG"
EXIT_USER_ERROR = 2
#: what a user's input or environment causes: OSError (paths, permissions), ValueError (bad values),
#: LookupError (unknown names), RuntimeError (nnU-Net's "no dataset with ID", the plugin's cache errors), and
#: every refusal of the plugin's nnU-Net glue (LossPlugError, e.g. a map kind declaring an encoding without codec)
USER_ERRORS: tuple[type[BaseException], ...] = (OSError, ValueError, LookupError, RuntimeError, LossPlugError)


def debug_requested(args: argparse.Namespace) -> bool:
    return bool(getattr(args, "debug", False)) or os.environ.get(DEBUG_ENV_VAR, "") not in ("", "0")


def one_line(error: BaseException) -> str:
    """The message of ``error`` on one line (a KeyError's message without the quotes ``str`` adds)."""
    if isinstance(error, KeyError) and len(error.args) == 1 and isinstance(error.args[0], str):
        text = error.args[0]
    else:
        text = str(error) or type(error).__name__
    return " ".join(text.split())


def run_subcommand(command: str, func: Callable[[argparse.Namespace], int | None], args: argparse.Namespace) -> int:
    """``func(args)`` as an exit status; a user error becomes one line on stderr and status 2."""
    if debug_requested(args):
        return int(func(args) or 0)
    try:
        return int(func(args) or 0)
    except USER_ERRORS as error:
        print(f"nnunet-lossplug {command}: error: {one_line(error)} (--debug shows the traceback)",
              file=sys.stderr, flush=True)
        return EXIT_USER_ERROR
    except KeyboardInterrupt as interrupt:
        signum = int(getattr(interrupt, "signum", signal.SIGINT))
        said = one_line(interrupt) if str(interrupt) else "files are written atomically, so nothing half-written " \
            "was kept; run the same command again to continue"
        print(f"\nnnunet-lossplug {command}: interrupted ({signal.Signals(signum).name}): {said}",
              file=sys.stderr, flush=True)
        return 128 + signum
