"""Worker processes that run torch: :func:`start_worker` sets one up, and
:class:`HeldWorkerDeaths` keeps a DataLoader worker's death out of the caller's own code.

Every such pool in Melodex (the MFCC cache's process pool, inference's DataLoader workers) calls
it when a worker starts, and sizes itself with :func:`usable_cores`. Both that and
:func:`die_with_parent` live in :mod:`melodex.util.processes`, which does not import torch;
they are named here too for the modules that import them from here.
"""

from __future__ import annotations

import signal
import threading
from collections.abc import Iterable, Iterator
from typing import TypeVar

import torch

from melodex.util.processes import die_with_parent, start_process, usable_cores

__all__ = ["HeldWorkerDeaths", "die_with_parent", "start_worker", "usable_cores"]

T = TypeVar("T")


def start_worker(parent_pid: int, ignore_sigint: bool = False) -> None:
    """Set up a worker process of ``parent_pid``: one torch thread (each worker decodes one
    file at a time on one core, and a forked child stays clear of the parent's OpenMP pool,
    as torch's own DataLoader workers do), Ctrl-C left to the parent when ``ignore_sigint``
    (it cancels what is queued and lets running files finish), and death with the parent.
    """
    torch.set_num_threads(1)
    start_process(parent_pid, ignore_sigint)


class HeldWorkerDeaths:
    """Hold a DataLoader worker's death while the caller of a generator is busy with a result.

    torch's DataLoader learns of a dead worker from SIGCHLD, and its handler raises the error in
    whatever the main thread is running. While a generator over the loader is suspended at a
    ``yield``, that is the caller's own code (writing a line of the output, a part of the store),
    which would stop halfway with a bare RuntimeError. Inside this context manager (entered
    after the loader's workers start, where torch's handler is set), the generator yields its
    results through :meth:`hand_on`: a SIGCHLD that comes while the caller has one is held, and
    torch's handler runs when the caller asks for the next, so its error is raised in the
    generator; at any other time the handler runs at once, as before. Outside the main thread
    (where Python runs no handler of its own) nothing changes.
    """

    def __init__(self) -> None:
        self._handing_on = False
        self._pending = False
        self._torch_handler = None

    def __enter__(self) -> HeldWorkerDeaths:
        if hasattr(signal, "SIGCHLD") and threading.current_thread() is threading.main_thread():
            handler = signal.getsignal(signal.SIGCHLD)
            if callable(handler):
                self._torch_handler = handler
                signal.signal(signal.SIGCHLD, self._on_sigchld)
        return self

    def __exit__(self, *exc_info) -> None:
        if self._torch_handler is not None:
            signal.signal(signal.SIGCHLD, self._torch_handler)
            self._torch_handler = None

    def _on_sigchld(self, signum, frame) -> None:
        if self._handing_on:
            self._pending = True
        else:
            self._torch_handler(signum, frame)

    def hand_on(self, results: Iterable[T]) -> Iterator[T]:
        """Yield ``results`` to the caller, holding a worker's death while the caller has one;
        raise it (torch's RuntimeError) when the caller asks for the next."""
        for result in results:
            self._handing_on = True
            try:
                yield result
            finally:
                self._handing_on = False
            if self._pending:
                self._pending = False
                self._torch_handler(signal.SIGCHLD, None)
