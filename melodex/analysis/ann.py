"""Approximate nearest neighbours for large stores: a FAISS inverted-file index, kept with the store.

Why FAISS, and why IVF-Flat with inner product: FAISS (``faiss-cpu``) is the field's maintained
standard for dense-vector search; its wheels carry their own BLAS and OpenMP and install for
every CPython in use. On L2-normalised vectors the inner product *is* the cosine similarity, so
results are the same quantities exact search gives. An inverted file (IVF) trains ``nlist``
k-means centroids (about the square root of the number of tracks) on a sample, puts every vector
in the list of its nearest centroid, and answers a query by scanning the ``nprobe`` nearest lists
with exact inner products. It builds in seconds where a graph index (HNSW, pynndescent) takes
minutes for a million 512-d vectors, and "Flat" lists keep the vectors unquantised, so recall is
limited only by how many lists are probed. ``nprobe`` is calibrated at build time: the smallest
power of two whose recall@10 against exact search on sample queries reaches
:data:`TARGET_RECALL`; the chosen value and the measured recall are recorded with the index.

The index lives in the store folder (``_ann/``, which Parquet readers skip, as they skip every
name starting with ``_``)::

    _ann/index.faiss     the FAISS index (vectors in store row order)
    _ann/info.json       {"store_state": ..., "rows": ..., "dim": ..., "nlist": ..., "nprobe": ...,
                          "recall_at_10": ..., "index_size": ..., "index_mtime_ns": ...}

``store_state`` is :meth:`~melodex.library.store.LibraryStore.state` when the index was built, and
the size and mtime of ``index.faiss`` are recorded too: an index whose store has changed since, or
whose file is not the one recorded, is never used; it is rebuilt (and the log says why).
"""

from __future__ import annotations

import json
import logging
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

import faiss
import numpy as np

from melodex.errors import OutputError
from melodex.util.atomic import atomic_write

if TYPE_CHECKING:  # pragma: no cover
    from melodex.library.store import LibraryStore

log = logging.getLogger(__name__)

ANN_DIR = "_ann"
INDEX_NAME = "index.faiss"
INFO_NAME = "info.json"
INFO_FORMAT = "melodex-ann-index"
TARGET_RECALL = 0.97  # recall@10 the calibration aims for (the bar is 0.95)
CALIBRATION_QUERIES = 100
TRAIN_PER_LIST = 64  # training vectors per list (faiss warns below 39)


def n_lists(n: int) -> int:
    """How many inverted lists for ``n`` vectors: about sqrt(n), at most n // 39 (at least 1)."""
    return max(1, min(int(np.sqrt(n) + 0.5), n // 39))


def exact_top(unit: np.ndarray, queries: np.ndarray, k: int, block: int = 65536) -> np.ndarray:
    """Row numbers [shape=(q, k)] of the ``k`` largest inner products per query (exact, blockwise)."""
    best_s = np.full((len(queries), 0), -np.inf, dtype=np.float32)
    best_i = np.zeros((len(queries), 0), dtype=np.int64)
    for start in range(0, len(unit), block):
        scores = queries @ unit[start:start + block].T
        top = np.argpartition(-scores, min(k, scores.shape[1]) - 1, axis=1)[:, :k]
        best_s = np.concatenate([best_s, np.take_along_axis(scores, top, axis=1)], axis=1)
        best_i = np.concatenate([best_i, top + start], axis=1)
        keep = np.argsort(-best_s, axis=1, kind="stable")[:, :k]
        best_s, best_i = np.take_along_axis(best_s, keep, axis=1), np.take_along_axis(best_i, keep, axis=1)
    return best_i


def recall_at(found: np.ndarray, truth: np.ndarray, itself: np.ndarray, k: int = 10) -> float:
    """Mean share of the ``k`` true neighbours of each query that ``found`` holds.

    ``found`` and ``truth`` [shape=(q, >= k + 1)] are row numbers, best first; ``itself`` [shape=(q,)]
    is each query's own row, left out of both (a query is never its own neighbour)."""
    shares = []
    for f, t, own in zip(found.tolist(), truth.tolist(), itself.tolist()):
        want = [r for r in t if r != own][:k]
        shares.append(len(set(want) & {r for r in f if r != own}) / max(1, len(want)))
    return float(np.mean(shares))


class AnnIndex:
    """An IVF-Flat inner-product index over L2-normalised rows [shape=(n, d)].

    Build with :meth:`build` (``unit`` must already be normalised), or get the one kept with a
    store with :func:`store_index`. :meth:`search` returns ``(rows, similarities)`` like exact search.
    """

    def __init__(self, index: Any, info: dict):
        self.index = index
        self.info = info
        self.index.nprobe = int(info["nprobe"])

    def __len__(self) -> int:
        return int(self.index.ntotal)

    @classmethod
    def build(cls, unit: np.ndarray, *, seed: int = 0) -> AnnIndex:
        """Train, fill and calibrate an index for ``unit`` [shape=(n, d)] float32 (normalised)."""
        n, dim = unit.shape
        nlist = n_lists(n)
        rng = np.random.default_rng(seed)
        index = faiss.IndexIVFFlat(faiss.IndexFlatIP(dim), dim, nlist, faiss.METRIC_INNER_PRODUCT)
        index.cp.seed = seed
        sample = unit[np.sort(rng.choice(n, min(n, TRAIN_PER_LIST * nlist), replace=False))]
        log.info("ANN index: %d lists trained on %d of %d vectors", nlist, len(sample), n)
        index.train(np.ascontiguousarray(sample))
        log.info("ANN index: adding %d vectors", n)
        index.add(unit)
        nprobe, recall = _calibrate(index, unit, rng)
        log.info("ANN index: nprobe %d gives recall@10 %.3f against exact search on %d sample queries",
                 nprobe, recall, min(n, CALIBRATION_QUERIES))
        return cls(index, {"format": INFO_FORMAT, "rows": n, "dim": dim, "nlist": nlist,
                           "nprobe": nprobe, "recall_at_10": round(recall, 4)})

    def search(self, q: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        """The ``k`` rows of largest inner product with ``q`` [shape=(d,)]; -1 rows are missing."""
        sims, rows = self.index.search(np.ascontiguousarray(q, dtype=np.float32).reshape(1, -1), k)
        return rows[0].astype(np.int64), sims[0].astype(np.float32)

    # -- kept with a store ------------------------------------------------------------------
    def save(self, folder: Path, state: str) -> None:
        """Write ``index.faiss`` and then ``info.json`` (each atomically) into ``folder``."""
        index_path = folder / INDEX_NAME
        with atomic_write(index_path, "wb") as handle:
            faiss.write_index(self.index, faiss.PyCallbackIOWriter(handle.write))
        stat = index_path.stat()
        self.info.update(store_state=state, index_size=stat.st_size, index_mtime_ns=stat.st_mtime_ns)
        with atomic_write(folder / INFO_NAME, "w", encoding="utf-8") as handle:
            json.dump(self.info, handle, indent=2)
            handle.write("\n")

    @classmethod
    def load(cls, folder: Path, state: str, rows: int) -> tuple[AnnIndex | None, str]:
        """The index kept in ``folder`` when it was built from store state ``state``, else
        ``(None, why not)``."""
        try:
            info = json.loads((folder / INFO_NAME).read_text(encoding="utf-8"))
            stat = (folder / INDEX_NAME).stat()
        except FileNotFoundError:
            return None, "none built yet"
        except (OSError, ValueError) as exc:
            return None, f"unreadable ({exc})"
        if not isinstance(info, dict) or info.get("format") != INFO_FORMAT:
            return None, "not a Melodex ANN index"
        if info.get("store_state") != state or info.get("rows") != rows:
            return None, "the store has changed since it was built"
        if (info.get("index_size"), info.get("index_mtime_ns")) != (stat.st_size, stat.st_mtime_ns):
            return None, f"{INDEX_NAME} is not the file that was recorded"
        try:
            index = faiss.read_index(str(folder / INDEX_NAME))
        except RuntimeError as exc:
            return None, f"unreadable ({str(exc).splitlines()[0]})"
        if index.ntotal != rows:
            return None, f"it holds {index.ntotal} vectors, not {rows}"
        return cls(index, info), ""


def _calibrate(index: Any, unit: np.ndarray, rng: np.random.Generator) -> tuple[int, float]:
    """The smallest power-of-two ``nprobe`` whose recall@10 reaches :data:`TARGET_RECALL`."""
    n = len(unit)
    rows = rng.choice(n, min(n, CALIBRATION_QUERIES), replace=False)
    queries, k = unit[rows], min(11, n)
    truth = exact_top(unit, queries, k)
    nprobe, recall = 1, 0.0
    while True:
        index.nprobe = nprobe
        recall = recall_at(index.search(queries, k)[1], truth, rows, k - 1)
        if recall >= TARGET_RECALL or nprobe >= index.nlist:
            return nprobe, recall
        nprobe = min(2 * nprobe, index.nlist)


def store_index(store: LibraryStore, unit: np.ndarray, *, seed: int = 0) -> AnnIndex:
    """The ANN index kept with ``store`` for its current state; built (and kept) when there is none
    or it is stale. ``unit`` are the store's embeddings, L2-normalised, in store row order.

    A store folder that cannot be written to gets an index for this process only (logged)."""
    folder = Path(store.root) / ANN_DIR
    state = store.state()
    kept, why = AnnIndex.load(folder, state, len(unit))
    if kept is not None:
        log.info("ANN index: using %s (nprobe %d)", folder, kept.index.nprobe)
        return kept
    log.info("ANN index for %d tracks: building it (%s); it is kept in %s for later queries", len(unit), why, folder)
    start = time.perf_counter()
    built = AnnIndex.build(unit, seed=seed)
    try:
        built.save(folder, state)
    except OutputError as exc:
        log.warning("ANN index not kept (%s); it is built again next time", exc)
    log.info("ANN index built in %.1f s", time.perf_counter() - start)
    return built
