"""Worker processes without torch: how many to start, making them end with the process that
started them, and an ordered map over a process pool.

A run killed outright (SIGKILL) cannot stop its workers: a forked worker waiting on a queue or
a pool for work would wait forever and hold its locks, so every worker calls
:func:`die_with_parent` when it starts (:func:`melodex.util.workers.start_worker` does, for the
pools that run torch). Pools are sized with :func:`usable_cores`.
"""

from __future__ import annotations

import ctypes
import multiprocessing
import os
import signal
import sys
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from typing import Any, TypeVar

from melodex.errors import WorkerError

# What a worker that dies without a word (SIGKILL, the OOM killer) leaves the user with.
WORKER_DIED = "a worker process died (killed by the system, perhaps for lack of memory)"

T = TypeVar("T")
R = TypeVar("R")


def usable_cores() -> int:
    """The CPU cores this process may run on (its affinity mask where the OS has one).

    ``os.cpu_count()`` counts the machine's cores, which overcounts under ``taskset`` or a
    container's CPU set, and starting more workers than cores only adds contention.
    """
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # not Linux
        return os.cpu_count() or 1


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


def ordered_map(fn: Callable[[T], R], items: Iterable[T], *, workers: int,
                setup: Callable[..., None] | None = None, setup_args: tuple[Any, ...] = ()) -> Iterator[R]:
    """``fn(item)`` for each of ``items``, in their order, on up to ``workers`` processes.

    ``setup(*setup_args)`` runs once in each worker before its first item: the place to hand
    every worker the large, shared inputs once (forked on Linux, they are not even copied;
    elsewhere they are pickled once per worker, not once per item). ``fn`` and ``setup`` must be
    module-level functions. With one worker (or one item) everything runs in this process, with
    ``setup`` called first. Workers leave Ctrl-C to this process and die with it; on an error or
    an interrupt here the items not started are cancelled. An exception in ``fn`` is raised here
    when its result is reached; a worker that dies without one (killed) raises :class:`WorkerError`.
    """
    items = list(items)
    workers = max(1, min(workers, len(items)))
    if workers == 1:
        if setup is not None:
            setup(*setup_args)
        yield from map(fn, items)
        return
    method = "fork" if sys.platform.startswith("linux") else "spawn"  # fork needs no importable __main__
    pool = ProcessPoolExecutor(workers, mp_context=multiprocessing.get_context(method), initializer=_start,
                               initargs=(os.getpid(), setup, setup_args))
    try:
        for future in [pool.submit(fn, item) for item in items]:
            yield future.result()
    except BrokenProcessPool:
        raise WorkerError(WORKER_DIED) from None
    finally:
        pool.shutdown(wait=True, cancel_futures=True)


# glibc's mallopt parameters (malloc.h) and the values a worker sets: blocks up to 32 MiB (a
# 30-s decode is 5.3 MiB at 44.1 kHz) come from the heap, and up to 256 MiB of freed heap stays.
_M_TRIM_THRESHOLD, _M_MMAP_THRESHOLD = -1, -3
_MMAP_THRESHOLD, _TRIM_THRESHOLD = 32 << 20, 256 << 20


def keep_freed_memory() -> None:
    """Have glibc's malloc keep freed memory for the next file instead of returning it to the OS.

    A worker allocates the same large arrays for every file (the decoded audio, the resampled
    audio, the model's activations). By default glibc hands such blocks back to the kernel when
    they are freed (``munmap``, or trimming the heap's top), so the next file faults the pages
    in again, zero-filled: 300-700 page faults a 30-s file in an inference worker, about 2% of its
    CPU time, measured. With fixed thresholds there are none. Memory stays bounded: what is kept
    is what the previous file used. Elsewhere than glibc this does nothing.
    """
    try:
        mallopt = ctypes.CDLL(None).mallopt
    except (OSError, AttributeError):
        return
    mallopt(_M_MMAP_THRESHOLD, _MMAP_THRESHOLD)
    mallopt(_M_TRIM_THRESHOLD, _TRIM_THRESHOLD)


def start_process(parent_pid: int, ignore_sigint: bool = False) -> None:
    """Set up a worker process of ``parent_pid``: Ctrl-C left to the parent when ``ignore_sigint``
    (a terminal's Ctrl-C reaches the whole process group), death with the parent, and freed
    memory kept for the next file (:func:`keep_freed_memory`)."""
    if ignore_sigint:
        signal.signal(signal.SIGINT, signal.SIG_IGN)
    die_with_parent(parent_pid)
    keep_freed_memory()


def _start(parent_pid: int, setup: Callable[..., None] | None, setup_args: tuple[Any, ...]) -> None:
    start_process(parent_pid, ignore_sigint=True)
    if setup is not None:
        setup(*setup_args)
