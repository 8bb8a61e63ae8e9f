"""umap-learn's numba kernels, compiled once per machine instead of once per process.

umap-learn compiles its numba functions (the fuzzy graph's ``smooth_knn_dist`` and
``compute_membership_strengths``, the layout optimisation's epoch, its random numbers) without
numba's on-disk cache, so every fresh process pays the compilation again: about 6-10 s before
the first map is fitted or the first track is placed, most of ``melodex map`` on a small library.
:func:`cache_kernels` turns numba's own cache on for those dispatchers (what ``cache=True`` in
their decorators would have done); later processes load the machine code from disk.

The cache is numba's: it sits in umap-learn's ``__pycache__`` (or numba's user cache folder when
that is read-only, or ``$NUMBA_CACHE_DIR`` when set) and is keyed by each function's source file
and signature and by the CPU, so an upgraded umap-learn or another machine compiles afresh. The
compiled code is the same either way, so cached and fresh runs give the same coordinates. An
unreadable entry (a truncated or corrupt file) is compiled again and written over, where numba's
own cache would fail every call until the file is deleted.

pynndescent, which umap-learn imports, caches its kernels itself (``cache=True``) and loads some
of them while it is imported: one unreadable entry there made ``import umap`` raise numba's
``UnpicklingError``, so every command that draws or reads a map failed until the file was found
and deleted. umap-learn is therefore imported here, and only here, with the same tolerant cache
given to every kernel that asks numba for one meanwhile; Melodex's modules take ``umap`` from
this module.
"""

from __future__ import annotations

import contextlib
import logging
import sys
from collections.abc import Iterator
from functools import lru_cache

from numba.core.caching import FunctionCache, NullCache
from numba.core.dispatcher import Dispatcher
from numba.core.registry import CPUDispatcher

log = logging.getLogger(__name__)


class _TolerantCache(FunctionCache):
    """numba's disk cache for one kernel, where an unreadable entry (a truncated or corrupt file)
    is dropped and the kernel compiled again: numba's own cache raises from the first call instead,
    and every later process would fail the same way."""

    def load_overload(self, sig, target_context):
        try:
            return super().load_overload(sig, target_context)
        except Exception as exc:  # noqa: BLE001 (pickle, EOF or OS errors from the cache's files)
            log.debug("numba's cache of %s is unreadable (%s): compiling it again",
                      self._py_func.__qualname__, exc)
            with contextlib.suppress(Exception):
                self.flush()  # an empty index in its place: the fresh compilation is saved over it
            return None

    def save_overload(self, sig, data):
        try:
            super().save_overload(sig, data)
        except Exception as exc:  # noqa: BLE001 (a full disk, a vanished folder: the next process compiles)
            log.debug("numba's cache of %s not saved (%s)", self._py_func.__qualname__, exc)


@contextlib.contextmanager
def _tolerant_disk_caches() -> Iterator[None]:
    """Kernels that turn numba's disk cache on while this is open (``cache=True`` in their
    decorator) get :class:`_TolerantCache` instead of numba's own."""
    original = Dispatcher.enable_caching

    def enable_caching(self: Dispatcher) -> None:  # numba's own, with the tolerant class
        self._cache = _TolerantCache(self.py_func)

    Dispatcher.enable_caching = enable_caching
    try:
        yield
    finally:
        Dispatcher.enable_caching = original


with _tolerant_disk_caches():  # pynndescent's kernels are decorated (and some loaded) on import
    import umap
    import umap.layouts
    import umap.umap_

__all__ = ["cache_kernel", "cache_kernels", "umap"]


def cache_kernel(kernel: CPUDispatcher) -> bool:
    """Give ``kernel`` a disk cache (what ``numba.njit(cache=True)`` would have given it, but
    tolerant of unreadable entries); False when it has one already or numba finds no writable place."""
    if not isinstance(kernel._cache, NullCache):
        return False
    try:
        kernel._cache = _TolerantCache(kernel.py_func)  # as Dispatcher.enable_caching() sets it
    except RuntimeError:  # numba: "cannot cache function ...: no locator available"
        return False
    return True


@lru_cache(maxsize=1)
def cache_kernels() -> int:
    """Enable numba's disk cache on umap-learn's uncached kernels; returns how many (once per process).

    Call before umap-learn compiles anything (a kernel compiled before keeps its code in memory
    only). Where numba finds no writable place for the cache, the kernel stays uncached: slower to
    start, never wrong; an unreadable cache entry is compiled again and replaced.
    """
    enabled = 0
    for name, module in list(sys.modules.items()):
        if module is None or not (name == "umap" or name.startswith("umap.")):
            continue
        enabled += sum(cache_kernel(kernel) for kernel in list(vars(module).values())
                       if isinstance(kernel, CPUDispatcher))
    return enabled
