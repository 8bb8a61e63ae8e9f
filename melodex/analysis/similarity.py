"""Tracks that sound like a query: cosine nearest neighbours in the embedding space.

  melodex similar 000123                       # a track in the store, by track_id
  melodex similar music/song.mp3               # a stored track by path, or a new file (needs --model)
  melodex similar new.flac --model training_outputs/latest -k 20 --json

The query itself is never among its results. Up to :data:`EXACT_LIMIT` tracks search is exact:
embeddings are L2-normalised once, a query costs one matrix-vector product and an
``argpartition`` (about 20 ms of CPU at 100,000 tracks; see ``benchmarks/bench_analysis.py``).

Above it (or with ``method="ann"``) :meth:`SimilarityIndex.for_store` uses the approximate index
kept with the store (:mod:`melodex.analysis.ann`: FAISS IVF-SQ8 on the normalised vectors,
candidates re-scored exactly): built once (seconds at 100,000 tracks, about a minute at a
million on two cores), saved in the store folder with the store state it was built from, and
rebuilt when the store has changed since, never used stale. Its queries take milliseconds at a
million tracks with recall@10 >= 0.95 against exact search (calibrated at build time, measured
by ``benchmarks/bench_analysis.py --ann-1m``).
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from melodex.analysis.ann import AnnIndex, store_index
from melodex.errors import QueryError
from melodex.library.store import path_key, resolved_path

if TYPE_CHECKING:  # pragma: no cover
    from melodex.library.store import LibraryStore

log = logging.getLogger(__name__)

EXACT_LIMIT = 200_000  # tracks; up to here "auto" searches exactly (<= ~40 ms a query, no index to keep)
RESULT_COLUMNS = ("rank", "track_id", "title", "artist", "genre", "distance", "similarity")


def normalize_rows(x: np.ndarray, *, copy: bool = True) -> np.ndarray:
    """Rows of ``x`` [shape=(n, d)] scaled to unit L2 norm (all-zero rows stay zero), float32.

    ``copy=False`` scales a float32 ``x`` in place (and returns it), saving a copy of a big matrix."""

    x = np.array(x, dtype=np.float32, copy=True, ndmin=2) if copy else np.asarray(x, dtype=np.float32)
    norms = np.sqrt(np.einsum("ij,ij->i", x, x))[:, None]  # no (n, d) temporary, unlike linalg.norm
    x /= np.where(norms > 0, norms, np.float32(1.0))
    return x


class SimilarityIndex:
    """Cosine nearest-neighbour search over a fixed set of embeddings [shape=(n, d)].

    ``method``: ``"exact"`` (matrix product + argpartition), ``"ann"`` (a FAISS IVF index, see
    :mod:`melodex.analysis.ann`), or ``"auto"`` (exact up to :data:`EXACT_LIMIT` rows). ``ann``
    passes a prebuilt :class:`~melodex.analysis.ann.AnnIndex` (such as the one kept with a store:
    :meth:`for_store`). ``copy=False`` lets the index normalise ``embeddings`` in place (for a
    matrix nobody else uses, such as a fresh ``store.embeddings()``).
    """

    def __init__(self, embeddings: np.ndarray | None = None, *, method: str = "auto", seed: int = 0,
                 copy: bool = True, ann: AnnIndex | None = None):
        if method not in ("auto", "exact", "ann"):
            raise ValueError(f"method must be auto, exact or ann, not {method!r}")
        self.method, self.seed, self.copy, self.ann = method, seed, copy, ann
        if embeddings is not None:  # SimilarityIndex(x) is SimilarityIndex().fit(x)
            self.fit(embeddings)

    def fit(self, embeddings: np.ndarray) -> SimilarityIndex:
        """Build the index over ``embeddings`` [shape=(n, d)]: ``unit_`` (the rows at unit norm)
        and ``method_`` (what ``"auto"`` chose); returns ``self``, as scikit-learn estimators do."""

        self.unit_ = normalize_rows(embeddings, copy=self.copy)
        wants_ann = self.method == "ann" or (self.method == "auto" and len(self.unit_) > EXACT_LIMIT)
        self.method_ = "ann" if wants_ann and len(self.unit_) else "exact"
        self._ann = self.ann
        if self.method_ == "ann" and self._ann is None:
            self._ann = AnnIndex.build(self.unit_, seed=self.seed)
        return self

    @classmethod
    def for_store(cls, store: LibraryStore, *, method: str = "auto", embeddings: np.ndarray | None = None,
                  copy: bool = True, seed: int = 0) -> SimilarityIndex:
        """An index over ``store``'s embeddings (``embeddings`` when given, already loaded).

        With ``"ann"``, or ``"auto"`` above :data:`EXACT_LIMIT` tracks, it uses the ANN index kept
        in the store folder, building it first when there is none or the store has changed
        since (each step is logged)."""
        if method not in ("auto", "exact", "ann"):
            raise ValueError(f"method must be auto, exact or ann, not {method!r}")
        unit = normalize_rows(store.embeddings() if embeddings is None else embeddings,
                              copy=copy and embeddings is not None)
        ann = None
        if len(unit) and (method == "ann" or (method == "auto" and len(unit) > EXACT_LIMIT)):
            ann = store_index(store, unit, seed=seed)
        return cls(unit, method="ann" if ann is not None else "exact", copy=False, ann=ann)

    def __len__(self) -> int:
        return len(self.unit_)

    def query(self, vector: np.ndarray, k: int = 10, *, exclude: set[int] | None = None) -> tuple[np.ndarray, np.ndarray]:
        """The ``k`` rows most similar to ``vector`` [shape=(d,)], best first, skipping ``exclude``.

        Returns ``(rows [shape=(m,)] int, cosine similarity [shape=(m,)] float32)``, m <= k.
        """

        exclude = exclude or set()
        q = normalize_rows(np.asarray(vector, dtype=np.float32).reshape(1, -1))[0]
        if q.size != self.unit_.shape[1]:
            raise QueryError(f"the query embedding has {q.size} values; the store's have {self.unit_.shape[1]}")
        want = min(k + len(exclude), len(self.unit_))
        if want <= 0:
            return np.zeros(0, dtype=np.int64), np.zeros(0, dtype=np.float32)
        if self._ann is not None:
            rows, sims = self._ann.search(q, want)
        else:
            scores = self.unit_ @ q
            if want < len(scores):
                rows = np.argpartition(-scores, want - 1)[:want]
            else:
                rows = np.arange(len(scores))
            rows = rows[np.lexsort((rows, -scores[rows]))]  # best first, ties by row
            sims = scores[rows]
        keep = np.array([r not in exclude and r >= 0 for r in rows], dtype=bool)
        return rows[keep][:k].astype(np.int64), sims[keep][:k]


def resolve_query(store: LibraryStore, query: Any, *, tracks: pd.DataFrame | None = None,
                  embeddings: np.ndarray | None = None, predictor: Any = None) -> tuple[np.ndarray, set[int]]:
    """The query's embedding [shape=(512,)] and the store rows that are the query itself.

    ``query`` is a track_id, a stored path, an audio file (embedded by ``predictor``, anything
    with a ``predict_file(path)`` that returns a result, such as a
    :class:`~melodex.inference.predictor.Predictor` the caller built: analysis never decodes audio
    itself), or an embedding vector. Raises :class:`QueryError` when it is none of these.
    """

    if tracks is None:
        tracks = store.tracks()
    if isinstance(query, np.ndarray):
        return query.astype(np.float32).reshape(-1), set()
    text = str(query)
    for column, value in (("track_id", text), ("path", resolved_path(text)), ("track_id", path_key(text))):
        hits = np.flatnonzero((tracks[column] == value).fillna(False).to_numpy(dtype=bool))
        if hits.size:
            row = (embeddings if embeddings is not None else store.embeddings())[hits[0]]
            return np.array(row, dtype=np.float32), set(hits.tolist())
    path = Path(text)
    if not path.is_file():
        raise QueryError(f"{text}: not a track_id or path in the store at {store.root}, nor an audio file")
    if predictor is None:
        raise QueryError(f"{text}: not in the store; embedding a new audio file needs --model")
    result = predictor.predict_file(path)
    if result.error is not None or result.embedding is None:
        raise QueryError(f"{text}: {result.error or 'no embedding'}")
    return np.asarray(result.embedding, dtype=np.float32), set()


def similar(store: LibraryStore, query: Any, k: int = 10, *, index: SimilarityIndex | None = None,
            predictor: Any = None, method: str = "auto") -> pd.DataFrame:
    """The ``k`` tracks of ``store`` nearest to ``query`` by cosine distance, excluding the query.

    Returns a DataFrame with columns rank (1 = nearest), track_id, title, artist, genre,
    distance (1 - cosine similarity, in [0, 2]) and similarity. See :func:`resolve_query`
    for what ``query`` may be; pass a prebuilt ``index`` to answer many queries quickly.
    """

    if k < 1:
        raise ValueError("k must be at least 1")
    tracks = store.tracks()
    if len(tracks) == 0:
        raise QueryError(f"the store at {store.root} is empty; run 'melodex index' first")
    embeddings = store.embeddings() if index is None else None
    vector, itself = resolve_query(store, query, tracks=tracks, embeddings=embeddings, predictor=predictor)
    if index is None:  # exact for small stores; else the ANN index kept with the store
        index = SimilarityIndex.for_store(store, method=method, embeddings=embeddings, copy=False)
    rows, sims = index.query(vector, k, exclude=itself)
    picked = tracks.iloc[rows]
    return pd.DataFrame({
        "rank": np.arange(1, len(rows) + 1),
        "track_id": picked["track_id"].to_numpy(), "title": picked["title"].to_numpy(),
        "artist": picked["artist"].to_numpy(), "genre": picked["genre"].to_numpy(),
        "distance": (1.0 - sims).astype(np.float64), "similarity": sims.astype(np.float64),
    })
