"""Worker processes that run torch: :func:`start_worker` sets one up.

Every such pool in Melodex (the MFCC cache's process pool, inference's DataLoader workers) calls
it when a worker starts, and sizes itself with :func:`usable_cores`. Both that and
:func:`die_with_parent` live in :mod:`melodex.util.processes`, which does not import torch;
they are named here too for the modules that import them from here.
"""

from __future__ import annotations

import torch

from melodex.util.processes import die_with_parent, start_process, usable_cores

__all__ = ["die_with_parent", "start_worker", "usable_cores"]


def start_worker(parent_pid: int, ignore_sigint: bool = False) -> None:
    """Set up a worker process of ``parent_pid``: one torch thread (each worker decodes one
    file at a time on one core, and a forked child stays clear of the parent's OpenMP pool,
    as torch's own DataLoader workers do), Ctrl-C left to the parent when ``ignore_sigint``
    (it cancels what is queued and lets running files finish), and death with the parent.
    """
    torch.set_num_threads(1)
    start_process(parent_pid, ignore_sigint)
