"""Approximate nearest neighbours for large stores: a FAISS inverted-file index, kept with the store.

Why FAISS, and why IVF with inner product: FAISS (``faiss-cpu``) is the field's maintained
standard for dense-vector search; its wheels carry their own BLAS and OpenMP and install for
every CPython in use. On L2-normalised vectors the inner product *is* the cosine similarity. An
inverted file (IVF) trains ``nlist`` k-means centroids (about the square root of the number of
tracks) on a sample, puts every vector in the list of its nearest centroid, and answers a query by
scanning the ``nprobe`` nearest lists. It builds in seconds to a minute where a graph index (HNSW,
pynndescent) takes many minutes for a million 512-d vectors.

What a build costs, and how it is kept to seconds (1,000,000 x 512 took 85 s; see
``benchmarks/bench_analysis.py --ann-1m`` for today's figures): the centroids are spherical
k-means on a sample of :data:`TRAIN_PER_LIST` vectors per list (k-means costs sample x lists x
dim x iterations, so the sample is the lever; the calibration makes up for a rougher partition).
Filling the lists means finding each vector's nearest of ``nlist`` centroids, n x nlist dot
products; from :data:`TWO_LEVEL_FROM` lists on, the centroids are put in ~sqrt(nlist) groups
(k-means on the centroids) and a vector is compared with the centroids of its
:data:`ADD_GROUPS` nearest groups only, as matrix products per group (measured at 1,000 lists:
the same list for >= 99.9 % of vectors with ~1/8 of the products). A vector put in a nearly-
nearest list costs nothing but a little recall, which the calibration sees. Queries compare with
every centroid (a thousand dot products, nothing next to scanning the lists). Vectors go in by
chunks of :data:`ADD_CHUNK`, with a progress bar on a terminal.

The lists hold each vector as 8-bit scalar-quantised codes (``SQ8``: a quarter of the bytes of
float32, so a scan reads a quarter of the memory; measured at 1,000,000 vectors it is about twice
as fast as float32 lists), and the ``RERANK`` x k best candidates are then re-scored exactly
against the store's own float32 embeddings, which the caller holds anyway. Quantisation therefore
never reorders the results: recall is limited only by how many lists are probed, and the
similarities returned are exact. ``nprobe`` is calibrated at build time: the smallest value whose
recall@10 against exact search on sample queries reaches :data:`TARGET_RECALL`; the chosen value
and the measured recall are recorded with the index.

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
from faiss.contrib.ivf_tools import add_preassigned
from tqdm import tqdm

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
TRAIN_PER_LIST = 32  # k-means sample per list (was 64: half the k-means time, same recall once calibrated)
KMEANS_ITER = 10
TWO_LEVEL_FROM = 256  # lists from which vectors find their list through groups of centroids
ADD_GROUPS = 3  # groups of centroids a vector is compared with while the lists are filled
ADD_CHUNK = 65536  # vectors per add call (the progress bar's step)
RERANK = 4  # candidates re-scored exactly, per result wanted
KIND = "IVF-SQ8, exact re-rank"


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

    ``found`` (one array per query) and ``truth`` [shape=(q, >= k + 1)] are row numbers, best
    first; ``itself`` [shape=(q,)] is each query's own row, left out of both (a query is never its
    own neighbour)."""
    shares = []
    for f, t, own in zip(found, truth, np.asarray(itself).tolist()):
        want = [r for r in np.asarray(t).tolist() if r != own][:k]
        shares.append(len(set(want) & {r for r in np.asarray(f).tolist() if r != own}) / max(1, len(want)))
    return float(np.mean(shares))


class AnnIndex:
    """An IVF-SQ8 inner-product index over L2-normalised rows ``vectors`` [shape=(n, d)], whose
    candidates are re-scored exactly against ``vectors``.

    Build with :meth:`build` (``unit`` must already be normalised), or get the one kept with a
    store with :func:`store_index`. :meth:`search` returns ``(rows, similarities)`` like exact search.
    """

    def __init__(self, index: Any, info: dict, vectors: np.ndarray):
        self.index = index
        self.info = info
        self.vectors = vectors
        self.index.nprobe = int(info["nprobe"])

    def __len__(self) -> int:
        return int(self.index.ntotal)

    @classmethod
    def build(cls, unit: np.ndarray, *, seed: int = 0, progress: bool = True) -> AnnIndex:
        """Train, fill and calibrate an index for ``unit`` [shape=(n, d)] float32 (normalised)."""
        n, dim = unit.shape
        nlist = n_lists(n)
        rng = np.random.default_rng(seed)
        sample = np.ascontiguousarray(unit[np.sort(rng.choice(n, min(n, TRAIN_PER_LIST * nlist), replace=False))])
        log.info("ANN index: %d lists trained on %d of %d vectors", nlist, len(sample), n)
        lists = CentroidGroups.train(sample, nlist, seed=seed)
        quantizer = faiss.IndexFlatIP(dim)
        quantizer.add(lists.centroids)
        index = faiss.IndexIVFScalarQuantizer(quantizer, dim, nlist, faiss.ScalarQuantizer.QT_8bit,
                                              faiss.METRIC_INNER_PRODUCT)
        index.train(sample)  # the quantizer holds its centroids: this trains the 8-bit codes alone
        with tqdm(total=n, desc="ANN index", unit="vector", unit_scale=True, leave=False,
                  disable=None if progress else True) as bar:
            for start in range(0, n, ADD_CHUNK):
                chunk = np.ascontiguousarray(unit[start:start + ADD_CHUNK])
                add_preassigned(index, chunk, lists.nearest(chunk))
                bar.update(len(chunk))
        built = cls(index, {"format": INFO_FORMAT, "kind": KIND, "rows": n, "dim": dim, "nlist": nlist,
                            "fill_groups": lists.n_groups, "nprobe": 1}, unit)
        nprobe, recall = built._calibrate(rng)
        log.info("ANN index: nprobe %d gives recall@10 %.3f against exact search on %d sample queries",
                 nprobe, recall, min(n, CALIBRATION_QUERIES))
        built.info.update(nprobe=nprobe, recall_at_10=round(recall, 4))
        return built

    def search(self, q: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        """The ``k`` rows of largest inner product with ``q`` [shape=(d,)], best first, and their
        exact inner products; fewer when the probed lists hold fewer."""
        rows, sims = self.search_many(np.asarray(q, dtype=np.float32).reshape(1, -1), k)
        return rows[0], sims[0]

    def search_many(self, queries: np.ndarray, k: int) -> tuple[list[np.ndarray], list[np.ndarray]]:
        """:meth:`search` for each row of ``queries`` [shape=(q, d)] (one FAISS call)."""
        want = min(len(self), RERANK * k)
        _, candidates = self.index.search(np.ascontiguousarray(queries, dtype=np.float32), want)
        rows_out, sims_out = [], []
        for q, cand in zip(queries, candidates):
            cand = cand[cand >= 0].astype(np.int64)
            exact = self.vectors[cand] @ q
            order = np.argsort(-exact, kind="stable")[:k]
            rows_out.append(cand[order])
            sims_out.append(exact[order].astype(np.float32))
        return rows_out, sims_out

    def _calibrate(self, rng: np.random.Generator) -> tuple[int, float]:
        """Set ``nprobe`` to the smallest of 1, 2, 3, 4, 6, 8, 12, ... whose recall@10 reaches
        :data:`TARGET_RECALL`; returns it and the recall measured."""
        n = len(self.vectors)
        rows = rng.choice(n, min(n, CALIBRATION_QUERIES), replace=False)
        k = min(11, n)
        truth = exact_top(self.vectors, self.vectors[rows], k)
        recall, nprobe = 0.0, 1
        for nprobe in _probe_steps(self.index.nlist):
            self.index.nprobe = nprobe
            recall = recall_at(self.search_many(self.vectors[rows], k)[0], truth, rows, k - 1)
            if recall >= TARGET_RECALL:
                break
        return nprobe, recall

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
    def load(cls, folder: Path, state: str, vectors: np.ndarray) -> tuple[AnnIndex | None, str]:
        """The index kept in ``folder`` when it was built from store state ``state`` (whose
        normalised embeddings are ``vectors``), else ``(None, why not)``."""
        rows = len(vectors)
        try:
            info = json.loads((folder / INFO_NAME).read_text(encoding="utf-8"))
            stat = (folder / INDEX_NAME).stat()
        except FileNotFoundError:
            return None, "none built yet"
        except (OSError, ValueError) as exc:
            return None, f"unreadable ({exc})"
        if not isinstance(info, dict) or info.get("format") != INFO_FORMAT:
            return None, "not a Melodex ANN index"
        if info.get("kind") != KIND:
            return None, f"it is a {info.get('kind', 'IVF-Flat')} index, not {KIND}"
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
        return cls(index, info, vectors), ""


def _kmeans(sample: np.ndarray, k: int, seed: int) -> np.ndarray:
    """``k`` unit-length centroids [shape=(k, d)] of spherical k-means on ``sample`` (a sample with
    fewer than ``k`` rows is repeated: duplicate centroids only leave lists empty)."""
    if len(sample) < k:
        sample = np.resize(sample, (k, sample.shape[1]))
    kmeans = faiss.Kmeans(sample.shape[1], k, niter=KMEANS_ITER, seed=seed, spherical=True,
                          max_points_per_centroid=max(TRAIN_PER_LIST, -(-len(sample) // k)),
                          min_points_per_centroid=1)
    kmeans.train(np.ascontiguousarray(sample))
    return kmeans.centroids


class CentroidGroups:
    """The lists' centroids, in groups: finds the list of a vector, its centroid of largest inner
    product, among the centroids of its :data:`ADD_GROUPS` nearest groups.

    :meth:`train` makes them by two-level k-means (as ``faiss.contrib.clustering
    .two_level_clustering``: ~sqrt(nlist) groups, then each group's sample split into lists in
    proportion to its size), which costs ~2 sqrt(nlist) instead of nlist distances per sample
    vector; below :data:`TWO_LEVEL_FROM` lists it is plain k-means and one group.
    """

    def __init__(self, centroids: np.ndarray, heads: np.ndarray, members: list[np.ndarray]):
        self.centroids, self.heads, self.members = centroids, heads, members
        self.n_groups = len(members)

    @classmethod
    def train(cls, sample: np.ndarray, nlist: int, *, seed: int = 0) -> CentroidGroups:
        if nlist < TWO_LEVEL_FROM:
            return cls(_kmeans(sample, nlist, seed), sample[:0], [np.arange(nlist)])
        n_groups = int(np.sqrt(nlist) + 0.5)
        heads = _kmeans(sample, n_groups, seed)
        group = np.argmax(sample @ heads.T, axis=1)
        bounds = np.cumsum(np.bincount(group, minlength=n_groups)) * nlist // len(sample)
        sizes = np.diff(bounds, prepend=0)  # lists per group, in proportion to its share; they sum to nlist
        parts = [_kmeans(sample[group == g], int(k), seed) for g, k in enumerate(sizes) if k]
        members = np.split(np.arange(nlist), bounds[:-1])
        return cls(np.ascontiguousarray(np.concatenate(parts)), heads, members)

    def nearest(self, x: np.ndarray) -> np.ndarray:
        """The list number [shape=(m,), int64] of each row of ``x`` [shape=(m, d)]."""
        if self.n_groups == 1:
            return np.argmax(x @ self.centroids.T, axis=1).astype(np.int64)
        near = np.argpartition(-(x @ self.heads.T), ADD_GROUPS - 1, axis=1)[:, :ADD_GROUPS]
        best = np.full(len(x), -np.inf, dtype=np.float32)
        lists = np.zeros(len(x), dtype=np.int64)
        for g, members in enumerate(self.members):
            rows = np.flatnonzero((near == g).any(axis=1))
            if not len(rows) or not len(members):
                continue
            scores = x[rows] @ self.centroids[members].T
            top = scores.argmax(axis=1)
            value = scores[np.arange(len(rows)), top]
            better = value > best[rows]
            best[rows[better]], lists[rows[better]] = value[better], members[top[better]]
        lost = np.flatnonzero(best == -np.inf)  # only empty groups near: compare with every centroid
        lists[lost] = np.argmax(x[lost] @ self.centroids.T, axis=1)
        return lists


def _probe_steps(nlist: int) -> list[int]:
    """1, 2, 3, 4, 6, 8, 12, 16, 24, ... below ``nlist``, then ``nlist`` (every list: exact)."""
    steps = sorted({m * 2**i for i in range(nlist.bit_length() + 1) for m in (2, 3)} | {1})
    return [s for s in steps if s < nlist] + [nlist]


def store_index(store: LibraryStore, unit: np.ndarray, *, seed: int = 0) -> AnnIndex:
    """The ANN index kept with ``store`` for its current state; built (and kept) when there is none
    or it is stale. ``unit`` are the store's embeddings, L2-normalised, in store row order.

    A store folder that cannot be written to gets an index for this process only (logged)."""
    folder = Path(store.root) / ANN_DIR
    state = store.state()
    kept, why = AnnIndex.load(folder, state, unit)
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
