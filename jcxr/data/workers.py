"""Worker processes for ``prepare`` and the phantoms: spawned, never forked (a fork of a process
that has started JAX can deadlock), and dying with their parent.

Without the last point a killed ``prepare`` leaves its workers decoding until their shard is
done (minutes at 1024 px), holding memory and CPU a rerun needs. On Linux each worker asks the
kernel for SIGKILL when its parent dies (``prctl(PR_SET_PDEATHSIG)``); elsewhere a thread polls
the parent's pid.
"""

from __future__ import annotations

import ctypes
import multiprocessing
import os
import signal
import sys
import threading
import time
from concurrent.futures import ProcessPoolExecutor

_SPAWN = multiprocessing.get_context("spawn")
_PR_SET_PDEATHSIG = 1


def pool(workers: int) -> ProcessPoolExecutor:
    """A pool of ``workers`` spawned processes that exit when this process dies."""
    return ProcessPoolExecutor(
        max(1, workers), mp_context=_SPAWN, initializer=_die_with, initargs=(os.getpid(),)
    )


def _die_with(parent: int) -> None:
    if sys.platform.startswith("linux"):
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(_PR_SET_PDEATHSIG, signal.SIGKILL)
    else:
        threading.Thread(target=_watch, args=(parent,), daemon=True).start()
    if os.getppid() != parent:  # the parent died before the request took effect
        os._exit(1)


def _watch(parent: int) -> None:
    while os.getppid() == parent:
        time.sleep(1.0)
    os._exit(1)
