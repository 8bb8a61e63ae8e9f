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

import torch

from melodex.util.processes import die_with_parent, start_process, usable_cores

__all__ = ["HeldWorkerDeaths", "die_with_parent", "start_worker", "usable_cores"]


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
    after the loader's workers start, where torch's handler is set), a SIGCHLD that comes while
    :attr:`handing_on` is True is held, and :meth:`check`, called when the generator resumes,
    runs torch's handler then, so its error is raised in the generator; at any other time the
    handler runs at once, as before. Outside the main thread (where Python runs no handler
    of its own) nothing changes.
    """

    def __init__(self) -> None:
        self.handing_on = False
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
        if self.handing_on:
            self._pending = True
        else:
            self._torch_handler(signum, frame)

    def check(self) -> None:
        """Run torch's handler for a SIGCHLD held while the caller had a result; it raises if a
        worker died."""
        self.handing_on = False
        if self._pending:
            self._pending = False
            self._torch_handler(signal.SIGCHLD, None)
