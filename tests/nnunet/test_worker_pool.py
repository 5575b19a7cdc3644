"""The precompute hook's process pool with real forked processes and real signals.

CI once failed here by chance: ``precompute`` stopped its workers after one of them raised the undeclared-label
error, while the other was still inside blosc2's after-fork hook. That worker still had the parent's Python
SIGTERM handler, which raised inside the hook, and Python printed an "Exception ignored" traceback under the
one-line error. The script below recreates that moment on purpose: an after-fork hook that holds the second
worker for two seconds, and a parent SIGTERM handler that raises.
"""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap

import pytest

pytestmark = pytest.mark.skipif(not hasattr(os, "register_at_fork") or not hasattr(os, "fork"),
                                reason="forks worker processes")

_STOPPED_DURING_FORK = textwrap.dedent("""
    import os, signal, time
    from nnunet_lossplug.nnunet.map_cache.worker_pool import imap_unordered

    forks = [0]

    def count_fork():
        forks[0] += 1

    def slow_second_child():  # like a library's after-fork hook, still running when the parent stops the workers
        if forks[0] == 2:
            time.sleep(2)

    os.register_at_fork(before=count_fork, after_in_child=slow_second_child)

    def parent_handler(signum, frame):  # precompute's own SIGTERM handler, inherited by the fork
        raise KeyboardInterrupt(f"parent handler ran in process {os.getpid()}")

    signal.signal(signal.SIGTERM, parent_handler)

    def fail(task):
        raise ValueError(f"bad case {task}")

    try:
        list(imap_unordered(fail, [0, 1], processes=2))
    except ValueError as err:
        print("raised:", err)
""")


def test_a_worker_stopped_while_it_is_being_forked_ends_quietly():
    result = subprocess.run([sys.executable, "-c", _STOPPED_DURING_FORK], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr[-3000:]
    assert result.stdout.strip() == "raised: bad case 0", (result.stdout, result.stderr[-3000:])
    assert "parent handler ran" not in result.stderr, result.stderr[-3000:]
    assert "Traceback" not in result.stderr and "Exception ignored" not in result.stderr, result.stderr[-3000:]


def test_signals_that_were_blocked_before_the_pool_stay_blocked():
    """The pool blocks SIGINT and SIGTERM around each fork and then restores the caller's mask, not a blank one."""
    script = textwrap.dedent("""
        import signal
        from nnunet_lossplug.nnunet.map_cache.worker_pool import imap_unordered
        signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGTERM})
        print(sorted(imap_unordered(abs, [-1, -2, -3], processes=2)))
        print(signal.SIGTERM in signal.pthread_sigmask(signal.SIG_BLOCK, set()),
              signal.SIGINT in signal.pthread_sigmask(signal.SIG_BLOCK, set()))
    """)
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr[-3000:]
    assert result.stdout.split("\n")[:2] == ["[1, 2, 3]", "True False"], result.stdout
