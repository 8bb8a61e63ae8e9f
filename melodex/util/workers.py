"""Worker processes: how many to start, and making them end with the process that started them.

A run killed outright (SIGKILL) cannot stop its workers: a forked decoder waiting on a queue
or a pool for work would wait forever and hold its locks. Every worker pool in Melodex (the
MFCC cache's process pool, inference's DataLoader workers) calls :func:`start_worker` when a
worker starts, and sizes itself with :func:`usable_cores`.
"""

from __future__ import annotations

import ctypes
import os
import signal
import threading
import time

import torch


def usable_cores() -> int:
    """The CPU cores this process may run on (its affinity mask where the OS has one).

    ``os.cpu_count()`` counts the machine's cores, which overcounts under ``taskset`` or a
    container's CPU set, and starting more workers than cores only adds contention.
    """
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # not Linux
        return os.cpu_count() or 1


def start_worker(parent_pid: int, ignore_sigint: bool = False) -> None:
    """Set up a worker process of ``parent_pid``: one torch thread (each worker decodes one
    file at a time on one core, and a forked child stays clear of the parent's OpenMP pool,
    as torch's own DataLoader workers do), Ctrl-C left to the parent when ``ignore_sigint``
    (it cancels what is queued and lets running files finish), and death with the parent.
    """
    torch.set_num_threads(1)
    if ignore_sigint:
        signal.signal(signal.SIGINT, signal.SIG_IGN)
    die_with_parent(parent_pid)


def die_with_parent(parent_pid: int) -> None:
    """End this process as soon as ``parent_pid`` is gone, even if it died by SIGKILL.

    On Linux the kernel does it (``prctl(PR_SET_PDEATHSIG, SIGKILL)``); elsewhere a daemon
    thread checks twice a second whether the parent changed.
    """
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        if libc.prctl(1, int(signal.SIGKILL), 0, 0, 0) != 0:  # 1 = PR_SET_PDEATHSIG
            raise OSError("prctl failed")
    except (OSError, AttributeError):
        threading.Thread(target=_poll_parent, args=(parent_pid,), daemon=True).start()
    if os.getppid() != parent_pid:  # the parent died before the guard was in place
        os._exit(1)


def _poll_parent(parent_pid: int) -> None:
    while os.getppid() == parent_pid:
        time.sleep(0.5)
    os._exit(1)
