"""A small process pool that notices a dying worker: the precompute hook's parallel map.

``multiprocessing.Pool`` waits forever for a task whose worker was killed (``kill -9``, the out-of-memory
killer): the task is never answered. Here each worker is a forked process with its own pipe and receives
one task at a time; the parent waits on the pipes *and* on the processes' sentinels, so a worker that dies
is seen at once, with the task it held and how it died (:class:`PoolWorkerDied`). Exceptions raised by the
task function come back to the parent and are re-raised there. Workers are always stopped on the way out.

Workers die with their parent, however it ends (SIGTERM, SIGKILL, a crash): on Linux the kernel kills them
(``prctl(PR_SET_PDEATHSIG, SIGKILL)``), elsewhere a watcher thread sees the parent PID change. They ignore
SIGINT (Ctrl-C is the parent's to handle) and take SIGTERM's default action. SIGINT and SIGTERM are blocked
while a worker is forked and until it has installed those dispositions: a signal that arrives in between (the
parent stopping the workers after another one failed) waits, then ends the worker quietly, instead of raising
the parent's inherited Python handler inside a library's after-fork hook, which printed a stray traceback.

Workers are forked (POSIX), so the task function may be anything reachable from the parent, including
users' map functions defined in trainer files that nnU-Net imported from a folder no longer on ``sys.path``.
"""

from __future__ import annotations

import contextlib
import ctypes
import multiprocessing
import os
import signal
import sys
import threading
import time
from collections import deque
from collections.abc import Callable, Iterator, Sequence
from multiprocessing.connection import Connection, wait
from typing import Any


class PoolWorkerDied(RuntimeError):  # noqa: N818 - an event, re-raised as WorkerDiedError
    """A worker process ended while it held a task."""

    def __init__(self, task: Any, exitcode: int | None):
        self.task = task
        self.exitcode = exitcode
        super().__init__(f"worker died while computing {task!r} ({describe_exit(exitcode)})")


def describe_exit(exitcode: int | None) -> str:
    """``-9`` -> ``killed by signal 9 (SIGKILL)``; ``1`` -> ``exited with status 1``."""
    if exitcode is None:
        return "ended, exit status unknown"
    if exitcode < 0:
        try:
            name = signal.Signals(-exitcode).name
        except ValueError:
            name = "unknown signal"
        return f"killed by signal {-exitcode} ({name})"
    return f"exited with status {exitcode}"


#: ``PR_SET_PDEATHSIG`` of Linux's ``<sys/prctl.h>``: the signal a process gets when its parent ends
_PR_SET_PDEATHSIG = 1


@contextlib.contextmanager
def _signals_blocked(signals: set[signal.Signals]) -> Iterator[None]:
    """Within the block, ``signals`` wait (this thread's mask); afterwards the previous mask is back and a signal
    that came meanwhile is handled. A no-op where ``pthread_sigmask`` does not exist."""
    if not hasattr(signal, "pthread_sigmask"):
        yield
        return
    previous = signal.pthread_sigmask(signal.SIG_BLOCK, signals)
    try:
        yield
    finally:
        signal.pthread_sigmask(signal.SIG_SETMASK, previous)


def _die_with_parent(parent: int) -> None:
    """End this (forked) process when process ``parent`` ends: the kernel's death signal, and a watcher thread."""
    if sys.platform.startswith("linux"):
        try:
            ctypes.CDLL(None, use_errno=True).prctl(_PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
        except (OSError, AttributeError):  # pragma: no cover - a libc without prctl
            pass
    if os.getppid() != parent:  # the parent ended before the death signal was armed
        os._exit(1)

    def watch() -> None:
        while os.getppid() == parent:
            time.sleep(0.5)
        os.kill(os.getpid(), signal.SIGKILL)

    threading.Thread(target=watch, name="lossplug-parent-watch", daemon=True).start()


#: blocked in the parent around each fork, unblocked by the worker once its own dispositions are in place
_STOP_SIGNALS = {signal.SIGINT, signal.SIGTERM}


def _serve(connection: Connection, function: Callable[[Any], Any], parent: int) -> None:
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C is the parent's to handle; it stops the workers
    signal.signal(signal.SIGTERM, signal.SIG_DFL)  # not a handler the parent may have installed
    if hasattr(signal, "pthread_sigmask"):  # a SIGTERM that came during the fork ends this worker now
        signal.pthread_sigmask(signal.SIG_UNBLOCK, _STOP_SIGNALS)
    _die_with_parent(parent)
    while True:
        task = connection.recv()
        if task is None:
            return
        try:
            connection.send((True, function(task)))
        except Exception as err:  # noqa: BLE001 - handed to the parent, which re-raises it
            try:
                connection.send((False, err))
            except Exception:  # noqa: BLE001 - an exception that cannot be pickled
                connection.send((False, RuntimeError(f"{type(err).__name__}: {err}")))


def imap_unordered(function: Callable[[Any], Any], tasks: Sequence[Any], processes: int) -> Iterator[Any]:
    """Yield ``function(task)`` for every task as workers finish them; raise :class:`PoolWorkerDied` on a death."""
    ctx = multiprocessing.get_context("fork")
    workers = []
    finished = False
    try:
        for _ in range(max(1, min(processes, len(tasks)))):
            parent_end, child_end = ctx.Pipe()
            process = ctx.Process(target=_serve, args=(child_end, function, os.getpid()), daemon=True)
            with _signals_blocked(_STOP_SIGNALS):
                process.start()
            child_end.close()
            workers.append((process, parent_end))
        queue = deque(tasks)
        held: dict[int, Any] = {}  # worker index -> task
        for index, (_, connection) in enumerate(workers):
            if queue:
                held[index] = queue.popleft()
                connection.send(held[index])
        while held:
            busy = {workers[i][1]: i for i in held} | {workers[i][0].sentinel: i for i in held}
            for ready in wait(list(busy)):
                index = busy[ready]
                if index not in held:
                    continue  # its pipe and its sentinel were both ready
                process, connection = workers[index]
                try:
                    ok, value = connection.recv()
                except (EOFError, OSError):
                    process.join(timeout=5)
                    raise PoolWorkerDied(held[index], process.exitcode) from None
                del held[index]
                if not ok:
                    raise value
                if queue:
                    held[index] = queue.popleft()
                    connection.send(held[index])
                yield value
        finished = True
    finally:
        for process, connection in workers:
            if not finished:  # an error or a signal: stop at once
                process.terminate()
                continue
            try:
                connection.send(None)
            except OSError:
                pass
        for process, connection in workers:
            process.join(timeout=2)
            if process.is_alive():
                process.terminate()
                process.join(timeout=5)
            connection.close()
