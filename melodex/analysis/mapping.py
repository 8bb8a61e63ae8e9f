"""UMAP maps of a library: fit a 2-D map of the embeddings, place new tracks on it, keep it current.

:class:`MusicMap` is the estimator, in umap-learn's shape: ``__init__`` only stores settings,
``fit(embeddings)`` lays the tracks out and returns the map, whose learned state ends in ``_``
(``embedding_`` [shape=(n, 2)]), and ``transform(new)`` places new tracks on that map without
refitting. The store-level functions below it (:func:`fit_map`, :func:`place_on_map`,
:func:`update_map`) read a :class:`~melodex.library.store.LibraryStore` and save its map there;
``melodex map --store DIR`` calls :func:`update_map`, then writes the page and the figure.

Reproducibility: a map is fitted with ``random_state=seed``, which makes umap-learn run its
optimisation on one thread (it overrides ``n_jobs``); the same store, settings and umap-learn
version then give the same coordinates. ``--fast`` drops the seed so umap-learn uses every core
(``n_jobs=-1``): quicker on big libraries with cores to spare, but no two runs give the same
picture. Up to ``EXACT_KNN_MAX`` tracks the neighbour graph is computed exactly (brute force),
which also spares the first run in a fresh process pynndescent's numba compilation.

Placing new tracks needs no fitted model on disk, so no pickle is ever loaded from a store:
:meth:`MusicMap.transform` does what umap-learn's ``transform`` does, from the embeddings and
coordinates alone, and :meth:`MusicMap.from_layout` restores a map from what the store saved.
"""

from __future__ import annotations

import logging
import warnings
from typing import Any

import numpy as np
import pandas as pd
from sklearn.decomposition import PCA
from sklearn.neighbors import NearestNeighbors

from melodex.analysis.map_placement import PLACE_EPOCHS, TRANSFORM_SEED, place_among
from melodex.analysis.umap_kernels import cache_kernels, umap
from melodex.errors import MapError
from melodex.library.store import DEFAULT_STORE, LibraryStore

__all__ = ["COLOR_CHOICES", "DEFAULTS", "DEFAULT_FIGURE", "DEFAULT_HTML", "DEFAULT_STORE", "MusicMap", "embed_2d",
           "fit_map", "map_positions", "place_on_map", "place_points", "update_map"]

log = logging.getLogger(__name__)

DEFAULT_HTML = "melodex_outputs/map.html"
DEFAULT_FIGURE = "melodex_outputs/map.png"
COLOR_CHOICES = ("genre", "predicted", "artist", "year")
DEFAULTS = {"n_neighbors": 15, "min_dist": 0.1, "metric": "cosine", "seed": 42}
EXACT_KNN_MAX = 20_000  # up to this many tracks the neighbour graph is exact (brute force)


# ---------------------------------------------------------------------------------------------
# the estimator


class MusicMap:
    """A 2-D UMAP map of embeddings [shape=(n, d)] that new tracks can be placed on.

    Parameters
    ----------
    n_neighbors, min_dist, metric : UMAP's settings; ``n_neighbors`` is clamped to ``n - 1`` on
        tiny inputs (the value used is ``n_neighbors_``).
    random_state : int or None
        Seed of the fit; None lets umap-learn run on every core (``n_jobs=-1``), not reproducibly.
    transform_seed : int
        Seed of the layout refinement in :meth:`transform` (umap-learn's default, 42).
    transform_epochs : int
        Refinement epochs in :meth:`transform`; 0 keeps the weighted mean of the neighbours.

    Attributes (after :meth:`fit` or :meth:`from_layout`)
    ----------
    embedding_ : np.ndarray [shape=(n, 2)] float32, the map position of each fitted row.
    reference_ : np.ndarray [shape=(n, d)] float32, the fitted embeddings ``transform`` searches.
    n_neighbors_ : int or None, the n_neighbors used (None for a PCA layout of < 4 points).
    info_ : dict, the parameters actually used, as saved with a store's map.
    """

    def __init__(self, *, n_neighbors: int = 15, min_dist: float = 0.1, metric: str = "cosine",
                 random_state: int | None = 42, transform_seed: int = TRANSFORM_SEED,
                 transform_epochs: int = PLACE_EPOCHS):
        self.n_neighbors = n_neighbors
        self.min_dist = min_dist
        self.metric = metric
        self.random_state = random_state
        self.transform_seed = transform_seed
        self.transform_epochs = transform_epochs

    def fit(self, embeddings: np.ndarray) -> MusicMap:
        """Lay out ``embeddings`` [shape=(n, d)] in 2-D; returns ``self``.

        Fewer than 4 points cannot be laid out by UMAP's spectral start; they get a PCA
        projection. Raises :class:`MapError` for no rows, a non-2-D array or NaN/inf rows.
        """

        emb = _check_embeddings(embeddings)
        n = emb.shape[0]
        info: dict[str, Any] = {"method": "umap", "n_neighbors": self.n_neighbors, "min_dist": float(self.min_dist),
                                "metric": self.metric, "seed": self.random_state, "n_points": int(n)}
        if n == 0:
            raise MapError("the store has no tracks to map")
        if n < 4:
            coords = _pca_layout(emb)
            info.update(method="pca", n_neighbors=None)
        else:
            k = _clamped_neighbors(n, self.n_neighbors)
            if k != self.n_neighbors:
                log.info("only %d tracks: using n_neighbors=%d instead of %d", n, k, self.n_neighbors)
            coords, knn = _umap_layout(emb, k, self.min_dist, self.metric, self.random_state)
            info.update(n_neighbors=k, knn=knn, umap_version=umap.__version__)
        self.embedding_ = np.asarray(coords, dtype=np.float32)
        self.reference_ = emb
        self.n_neighbors_ = info["n_neighbors"]
        self.info_ = info
        return self

    def fit_transform(self, embeddings: np.ndarray) -> np.ndarray:
        """:meth:`fit`, then the fitted positions ``embedding_`` [shape=(n, 2)]."""

        return self.fit(embeddings).embedding_

    @classmethod
    def from_layout(cls, embeddings: np.ndarray, coordinates: np.ndarray, **settings: Any) -> MusicMap:
        """A map fitted earlier, restored from its embeddings [(n, d)] and positions [(n, 2)].

        ``settings`` are those of :class:`MusicMap`; ``n_neighbors`` is taken as the one used.
        Nothing is fitted: :meth:`transform` places new tracks among these positions.
        """

        music_map = cls(**settings)
        music_map.reference_ = np.asarray(embeddings, dtype=np.float32)
        music_map.embedding_ = np.asarray(coordinates, dtype=np.float32)
        music_map.n_neighbors_ = music_map.n_neighbors
        music_map.info_ = {"method": "restored", "n_neighbors": music_map.n_neighbors,
                           "min_dist": float(music_map.min_dist), "metric": music_map.metric,
                           "n_points": int(music_map.reference_.shape[0])}
        return music_map

    def transform(self, new_embeddings: np.ndarray) -> np.ndarray:
        """Positions [shape=(m, 2)] float32 for ``new_embeddings`` [shape=(m, d)] on this map.

        As umap-learn's ``transform``: the k nearest fitted points (same metric) get membership
        weights ``exp(-(d - rho) / sigma)`` with sigma from :func:`umap.umap_.smooth_knn_dist`; a
        new point starts at the weighted mean of their positions and is then refined for
        ``transform_epochs`` epochs of UMAP's layout optimisation with the fitted points fixed.
        A point identical to a fitted one lands on it. Raises :class:`MapError` before a fit.
        """

        if not hasattr(self, "embedding_"):
            raise MapError("this MusicMap is not fitted yet: call fit(embeddings) before transform()")
        new = np.asarray(new_embeddings, dtype=np.float32)
        if new.shape[0] == 0:
            return np.zeros((0, 2), dtype=np.float32)
        n_ref = self.reference_.shape[0]
        if n_ref == 0:
            raise MapError("there is no map to place tracks on: fit one first")
        k = min(self.n_neighbors_ or self.n_neighbors, n_ref)
        return place_among(self.reference_, self.embedding_, new, k=k, metric=self.metric, min_dist=self.min_dist,
                           epochs=self.transform_epochs, seed=self.transform_seed)


# ---------------------------------------------------------------------------------------------
# fitting, in arrays


def _clamped_neighbors(n_points: int, n_neighbors: int) -> int:
    """UMAP needs n_neighbors < n_points; a tiny store gets the largest value that works."""
    return int(max(2, min(n_neighbors, n_points - 1)))


def _check_embeddings(emb: np.ndarray, track_ids: Any = None) -> np.ndarray:
    """``emb`` as float32 [shape=(n, d)]; :class:`MapError` naming the ``track_ids`` (by default
    the row numbers) of rows with NaN or infinite values."""

    emb = np.asarray(emb, dtype=np.float32)
    if emb.ndim != 2:
        raise MapError(f"embeddings must be a 2-D array, got shape {emb.shape}")
    bad = ~np.isfinite(emb).all(axis=1)
    if bad.any():
        labels = np.arange(emb.shape[0]) if track_ids is None else np.asarray(track_ids)
        names = ", ".join(str(t) for t in labels[bad][:5])
        raise MapError(f"{int(bad.sum())} track(s) have NaN or infinite embeddings (e.g. {names})")
    return emb


def _pca_layout(emb: np.ndarray) -> np.ndarray:
    """A PCA projection [shape=(n, 2)] of 1-3 points (the rest of the plane stays zero)."""

    n = emb.shape[0]
    coords = np.zeros((n, 2), dtype=np.float32)
    if n > 1:
        k = min(2, n - 1)
        coords[:, :k] = PCA(n_components=k).fit_transform(emb)
    return coords


def _umap_layout(emb: np.ndarray, k: int, min_dist: float, metric: str,
                 seed: int | None) -> tuple[np.ndarray, str]:
    """UMAP coordinates [shape=(n, 2)] of ``emb`` [shape=(n, d)] and how the kNN graph was made."""

    cache_kernels()  # compiled once per machine, not per process
    knn = _exact_knn(emb, k, metric) if emb.shape[0] <= EXACT_KNN_MAX else (None, None, None)
    reducer = umap.UMAP(n_neighbors=k, min_dist=min_dist, metric=metric, n_components=2, precomputed_knn=knn,
                        random_state=seed, n_jobs=1 if seed is not None else -1)
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=".*overridden to 1 by setting random_state.*")
        warnings.filterwarnings("ignore", message=".*k >= N for N \\* N square matrix.*")
        warnings.filterwarnings("ignore", message=".*knn_search_index.*transform.*unavailable.*")
        coords = reducer.fit_transform(emb)
    return np.asarray(coords, dtype=np.float32), "exact" if knn[0] is not None else "nndescent"


def _exact_knn(emb: np.ndarray, k: int, metric: str) -> tuple[np.ndarray, np.ndarray, None]:
    """Exact k nearest neighbours (each point's first neighbour is itself), as umap-learn wants them.

    Up to :data:`EXACT_KNN_MAX` points a brute-force search is quick, exact and needs no
    pynndescent, whose numba compilation dominates the first map made in a fresh process.
    """

    search = NearestNeighbors(n_neighbors=k, metric=metric, algorithm="brute").fit(emb)
    dists, indices = search.kneighbors(emb)
    return indices.astype(np.int32), np.maximum(dists, 0.0).astype(np.float32), None


def embed_2d(emb: np.ndarray, *, n_neighbors: int = 15, min_dist: float = 0.1, metric: str = "cosine",
             seed: int | None = 42) -> tuple[np.ndarray, dict]:
    """Run UMAP on ``emb`` [shape=(n, d)] and return ``(coords [shape=(n, 2)] float32, info)``.

    The array form of :meth:`MusicMap.fit`: ``seed=None`` lets umap-learn run in parallel at the
    cost of reproducibility; fewer than 4 points get a PCA projection; ``info`` records the
    parameters actually used (n_neighbors after clamping).
    """

    music_map = MusicMap(n_neighbors=n_neighbors, min_dist=min_dist, metric=metric, random_state=seed).fit(emb)
    return music_map.embedding_, dict(music_map.info_)


def place_points(ref_emb: np.ndarray, ref_coords: np.ndarray, new_emb: np.ndarray, *, n_neighbors: int = 15,
                 metric: str = "cosine", min_dist: float = 0.1, epochs: int = PLACE_EPOCHS,
                 seed: int = TRANSFORM_SEED) -> np.ndarray:
    """Positions [shape=(m, 2)] for ``new_emb`` [shape=(m, d)] on a map of ``ref_emb`` [(n, d)].

    The array form of :meth:`MusicMap.transform` on a map restored from ``ref_emb`` and its
    positions ``ref_coords`` [(n, 2)]; ``epochs=0`` keeps the neighbours' weighted mean.
    """

    music_map = MusicMap.from_layout(ref_emb, ref_coords, n_neighbors=n_neighbors, metric=metric,
                                     min_dist=min_dist, transform_seed=seed, transform_epochs=epochs)
    return music_map.transform(new_emb)


# ---------------------------------------------------------------------------------------------
# the map saved in a store


def fit_map(store: LibraryStore, *, n_neighbors: int = 15, min_dist: float = 0.1, metric: str = "cosine",
            seed: int | None = 42) -> pd.DataFrame:
    """Fit a 2-D UMAP map (a :class:`MusicMap`) of every track in ``store`` and save it there.

    Returns the coordinates: a DataFrame with columns ``track_id, x, y`` in the store's order.
    The store's previous map is replaced (atomically, by the store). See :meth:`MusicMap.fit`.
    """

    tracks = store.tracks()
    emb = _check_embeddings(store.embeddings(), tracks["track_id"])
    music_map = MusicMap(n_neighbors=n_neighbors, min_dist=min_dist, metric=metric, random_state=seed).fit(emb)
    frame = _coordinate_frame(tracks["track_id"], music_map.embedding_)
    store.save_coordinates(frame, dict(music_map.info_, placed=0))
    return frame


def place_on_map(store: LibraryStore, new_embeddings: np.ndarray, *, epochs: int = PLACE_EPOCHS) -> np.ndarray:
    """Place ``new_embeddings`` [shape=(m, 512)] on the store's existing map without refitting.

    Returns float32 coordinates [shape=(m, 2)]. Only the stored embeddings and coordinates are
    used (see :meth:`MusicMap.from_layout`); raises :class:`MapError` when the store has no map.
    """

    coords = store.coordinates()
    if coords is None or len(coords) == 0:
        raise MapError("the store has no map yet: run 'melodex map' first")
    pos = map_positions(store.tracks()["track_id"], coords)
    on_map = ~np.isnan(pos[:, 0])
    music_map = _stored_map(store.map_info() or {}, store.embeddings()[on_map], pos[on_map], epochs=epochs)
    return music_map.transform(np.asarray(new_embeddings, dtype=np.float32))


def _stored_map(info: dict, embeddings: np.ndarray, positions: np.ndarray, *,
                n_neighbors: int = DEFAULTS["n_neighbors"], min_dist: float = DEFAULTS["min_dist"],
                epochs: int = PLACE_EPOCHS) -> MusicMap:
    """The :class:`MusicMap` a store saved (settings from its map ``info``; the others as given)."""

    return MusicMap.from_layout(embeddings, positions, n_neighbors=int(info.get("n_neighbors") or n_neighbors),
                                metric=str(info.get("metric") or DEFAULTS["metric"]),
                                min_dist=float(info.get("min_dist") or min_dist), transform_epochs=epochs)


def map_positions(track_ids: pd.Series, coords: pd.DataFrame) -> np.ndarray:
    """Map coordinates [shape=(n, 2)] aligned with ``track_ids``; NaN for tracks not on the map."""

    lookup = coords.assign(track_id=coords["track_id"].astype(str)).drop_duplicates("track_id", keep="last")
    aligned = lookup.set_index("track_id").reindex(track_ids.astype(str).to_numpy())[["x", "y"]]
    return np.array(aligned.to_numpy(dtype=np.float64))  # a writable copy


def _coordinate_frame(track_ids: pd.Series, xy: np.ndarray) -> pd.DataFrame:
    """The ``track_id, x, y`` frame a store saves, from positions [shape=(n, 2)]."""

    return pd.DataFrame({"track_id": track_ids.to_numpy(), "x": xy[:, 0].astype(np.float32),
                         "y": xy[:, 1].astype(np.float32)})


def update_map(store: LibraryStore, *, refit: bool = False, n_neighbors: int | None = None,
               min_dist: float | None = None, seed: int | None = None,
               fast: bool = False) -> tuple[pd.DataFrame, str]:
    """Bring the store's map up to date; returns ``(coordinates, what was done)``.

    A store without a map, ``refit=True``, parameters given that differ from the stored map's, or
    a map that covers less than half of the tracks get a fresh fit; otherwise tracks without
    coordinates are placed with :meth:`MusicMap.transform` and the others keep their positions.
    Parameters left None take :data:`DEFAULTS` in a new fit and do not force one; ``fast`` fits
    without a seed on all cores.
    """

    if len(store) == 0:
        raise MapError("the store has no tracks to map; add some with 'melodex index'")
    params = {"n_neighbors": n_neighbors if n_neighbors is not None else DEFAULTS["n_neighbors"],
              "min_dist": min_dist if min_dist is not None else DEFAULTS["min_dist"],
              "seed": None if fast else (seed if seed is not None else DEFAULTS["seed"])}
    coords, info = store.coordinates(), store.map_info() or {}
    reason = _refit_reason(store, coords, info, refit, n_neighbors, min_dist, seed)
    if reason:
        log.info("fitting a new map (%s)", reason)
        return fit_map(store, **params), f"fitted ({reason})"
    tracks = store.tracks()
    pos = map_positions(tracks["track_id"], coords)
    missing = np.isnan(pos[:, 0])
    if missing.any():
        log.info("placing %d new track(s) on the existing map", int(missing.sum()))
        emb = _check_embeddings(store.embeddings(), tracks["track_id"])
        music_map = _stored_map(info, emb[~missing], pos[~missing], n_neighbors=params["n_neighbors"],
                                min_dist=params["min_dist"])
        pos[missing] = music_map.transform(emb[missing])
    frame = _coordinate_frame(tracks["track_id"], pos)
    if missing.any() or len(coords) != len(frame):
        info = dict(info, placed=int(info.get("placed") or 0) + int(missing.sum()), n_points=len(frame))
        store.save_coordinates(frame, info)
    return frame, f"placed {int(missing.sum())} new track(s) on the existing map"


def _refit_reason(store: LibraryStore, coords: pd.DataFrame | None, info: dict, refit: bool,
                  n_neighbors: int | None, min_dist: float | None, seed: int | None) -> str | None:
    """Why the store's map must be fitted anew, or None when new tracks can be placed on it."""

    if refit:
        return "--refit"
    if coords is None or len(coords) == 0:
        return "no map yet"
    for key, value in (("n_neighbors", n_neighbors), ("min_dist", min_dist)):
        if value is not None and info.get(key) not in (None, value) and not (
                key == "n_neighbors" and info.get(key) == _clamped_neighbors(len(coords), value)):
            return f"{key} changed from {info.get(key)} to {value}"
    if seed is not None and "seed" in info and info["seed"] != seed:
        return f"seed changed from {info['seed']} to {seed}"
    known = set(coords["track_id"].astype(str))
    on_map = store.tracks()["track_id"].astype(str).isin(known).sum()
    if on_map * 2 < len(store):
        return f"only {on_map} of {len(store)} tracks are on the existing map"
    return None
