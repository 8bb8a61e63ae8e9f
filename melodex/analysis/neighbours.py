"""Every track's nearest neighbours at once, for pages that list "similar tracks" offline.

One blocked matrix product over L2-normalised embeddings (cosine similarity), an
``argpartition`` per block: exact, with memory bounded by ``block`` rows at a time.
"""

from __future__ import annotations

import numpy as np

from melodex.analysis.similarity import normalize_rows

BLOCK_ROWS = 2048  # rows of the similarity matrix held at once: 2048 x n float32


def all_nearest(embeddings: np.ndarray, k: int = 10, *, block: int = BLOCK_ROWS) -> tuple[np.ndarray, np.ndarray]:
    """The ``k`` nearest other rows of each row of ``embeddings`` [shape=(n, d)] by cosine.

    Returns ``(indices [shape=(n, min(k, n-1))] int64, distances [same shape] float32)``, nearest
    first, ties broken by row; a row is never its own neighbour. ``distances`` are
    ``1 - cosine similarity``. Memory beyond the input: about ``block * n`` float32.
    """

    unit = normalize_rows(embeddings)
    n = len(unit)
    k = min(k, max(n - 1, 0))
    indices = np.zeros((n, k), dtype=np.int64)
    distances = np.zeros((n, k), dtype=np.float32)
    if k == 0:
        return indices, distances
    for lo in range(0, n, block):
        hi = min(lo + block, n)
        scores = unit[lo:hi] @ unit.T
        scores[np.arange(hi - lo), np.arange(lo, hi)] = -np.inf  # never itself
        part = np.argpartition(-scores, k - 1, axis=1)[:, :k] if k < n else np.argsort(-scores, axis=1)[:, :k]
        picked = np.take_along_axis(scores, part, axis=1)
        order = np.lexsort((part, -picked), axis=1)  # best first, ties by row
        indices[lo:hi] = np.take_along_axis(part, order, axis=1)
        distances[lo:hi] = 1.0 - np.take_along_axis(picked, order, axis=1)
    return indices, distances
