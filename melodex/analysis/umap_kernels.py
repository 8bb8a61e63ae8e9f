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
compiled code is the same either way, so cached and fresh runs give the same coordinates.
"""

from __future__ import annotations

import sys
from functools import lru_cache

import umap.layouts  # loads the kernels' modules (the import binds nothing used here)
import umap.umap_  # noqa: F401
from numba.core.caching import NullCache
from numba.core.registry import CPUDispatcher


@lru_cache(maxsize=1)
def cache_kernels() -> int:
    """Enable numba's disk cache on umap-learn's uncached kernels; returns how many (once per process).

    Call before umap-learn compiles anything (a kernel compiled before keeps its code in memory
    only). Where numba finds no writable place for the cache, the kernel stays uncached: slower to
    start, never wrong.
    """
    enabled = 0
    for name, module in list(sys.modules.items()):
        if module is None or not (name == "umap" or name.startswith("umap.")):
            continue
        for kernel in list(vars(module).values()):
            if isinstance(kernel, CPUDispatcher) and isinstance(kernel._cache, NullCache):
                try:
                    kernel.enable_caching()
                except RuntimeError:  # numba: "cannot cache function ...: no locator available"
                    continue
                enabled += 1
    return enabled
