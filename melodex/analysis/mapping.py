"""UMAP maps of a library: fit a 2-D map of the embeddings, place new tracks on it, write it out.

``melodex map --store DIR`` fits a map of every track in the store (or places tracks added since
the last fit onto the existing map) and writes an interactive HTML page and a static figure.

Reproducibility: a map is fitted with ``random_state=seed``, which makes umap-learn run its
optimisation on one thread (it overrides ``n_jobs``); the same store, settings and umap-learn
version then give the same coordinates. ``--fast`` drops the seed so umap-learn uses every core
(``n_jobs=-1``): quicker on big libraries with cores to spare, but no two runs give the same
picture. Up to ``EXACT_KNN_MAX`` tracks the neighbour graph is computed exactly (brute force),
which also spares the first run in a fresh process pynndescent's numba compilation.

Placing new tracks (:func:`place_on_map`) needs no fitted model on disk, so no pickle is ever
loaded from a store: it does what umap-learn's ``transform`` does, from the stored embeddings
and coordinates alone.
"""

from __future__ import annotations

import logging
import warnings
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd
import umap
from sklearn.neighbors import NearestNeighbors
from umap.layouts import optimize_layout_euclidean
from umap.umap_ import (
    compute_membership_strengths,
    find_ab_params,
    make_epochs_per_sample,
    smooth_knn_dist,
)

from melodex.errors import MapError

if TYPE_CHECKING:
    import numpy as np
    import pandas as pd

log = logging.getLogger(__name__)

DEFAULT_STORE = "melodex_outputs/library"
DEFAULT_HTML = "melodex_outputs/map.html"
DEFAULT_FIGURE = "melodex_outputs/map.png"
COLOR_CHOICES = ("genre", "predicted", "artist", "year")
DEFAULTS = {"n_neighbors": 15, "min_dist": 0.1, "metric": "cosine", "seed": 42}
EXACT_DISTANCE = 1e-6  # a new embedding this close to a stored one is that track: it lands on it
PLACE_EPOCHS = 100  # umap-learn's transform uses 100 epochs for up to 10,000 new points
EXACT_KNN_MAX = 20_000  # up to this many tracks the neighbour graph is exact (brute force)


# ---------------------------------------------------------------------------------------------
# fitting


def _clamped_neighbors(n_points: int, n_neighbors: int) -> int:
    """UMAP needs n_neighbors < n_points; a tiny store gets the largest value that works."""
    return int(max(2, min(n_neighbors, n_points - 1)))


def _check_embeddings(emb: np.ndarray, track_ids: Any) -> np.ndarray:

    emb = np.asarray(emb, dtype=np.float32)
    if emb.ndim != 2:
        raise MapError(f"embeddings must be a 2-D array, got shape {emb.shape}")
    bad = ~np.isfinite(emb).all(axis=1)
    if bad.any():
        names = ", ".join(str(t) for t in np.asarray(track_ids)[bad][:5])
        raise MapError(f"{int(bad.sum())} track(s) have NaN or infinite embeddings (e.g. {names})")
    return emb


def embed_2d(emb: np.ndarray, *, n_neighbors: int = 15, min_dist: float = 0.1, metric: str = "cosine",
             seed: int | None = 42) -> tuple[np.ndarray, dict]:
    """Run UMAP on ``emb`` [shape=(n, d)] and return ``(coords [shape=(n, 2)] float32, info)``.

    ``seed=None`` lets umap-learn run in parallel (``n_jobs=-1``) at the cost of reproducibility.
    Fewer than 4 points cannot be laid out by UMAP's spectral start; they get a PCA projection.
    ``info`` records the parameters actually used (n_neighbors after clamping).
    """

    n = emb.shape[0]
    info: dict[str, Any] = {"method": "umap", "n_neighbors": n_neighbors, "min_dist": float(min_dist),
                            "metric": metric, "seed": seed, "n_points": int(n)}
    if n == 0:
        raise MapError("the store has no tracks to map")
    if n < 4:
        from sklearn.decomposition import PCA

        coords = np.zeros((n, 2), dtype=np.float32)
        if n > 1:
            k = min(2, n - 1)
            coords[:, :k] = PCA(n_components=k).fit_transform(emb)
        info.update(method="pca", n_neighbors=None)
        return coords, info



    k = _clamped_neighbors(n, n_neighbors)
    if k != n_neighbors:
        log.info("only %d tracks: using n_neighbors=%d instead of %d", n, k, n_neighbors)
    info["n_neighbors"] = k
    knn = _exact_knn(emb, k, metric) if n <= EXACT_KNN_MAX else (None, None, None)
    info["knn"] = "exact" if knn[0] is not None else "nndescent"
    reducer = umap.UMAP(n_neighbors=k, min_dist=min_dist, metric=metric, n_components=2, precomputed_knn=knn,
                        random_state=seed, n_jobs=1 if seed is not None else -1)
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=".*overridden to 1 by setting random_state.*")
        warnings.filterwarnings("ignore", message=".*k >= N for N \\* N square matrix.*")
        warnings.filterwarnings("ignore", message=".*knn_search_index.*transform.*unavailable.*")
        coords = reducer.fit_transform(emb)
    info["umap_version"] = umap.__version__
    return np.asarray(coords, dtype=np.float32), info


def _exact_knn(emb: np.ndarray, k: int, metric: str) -> tuple[np.ndarray, np.ndarray, None]:
    """Exact k nearest neighbours (each point's first neighbour is itself), as umap-learn wants them.

    Up to :data:`EXACT_KNN_MAX` points a brute-force search is quick, exact and needs no
    pynndescent, whose numba compilation dominates the first map made in a fresh process.
    """

    search = NearestNeighbors(n_neighbors=k, metric=metric, algorithm="brute").fit(emb)
    dists, indices = search.kneighbors(emb)
    return indices.astype(np.int32), np.maximum(dists, 0.0).astype(np.float32), None


def fit_map(store, *, n_neighbors: int = 15, min_dist: float = 0.1, metric: str = "cosine",
            seed: int | None = 42) -> pd.DataFrame:
    """Fit a 2-D UMAP map of every track in ``store`` and save it there.

    Returns the coordinates: a DataFrame with columns ``track_id, x, y`` in the store's order.
    The store's previous map is replaced (atomically, by the store). See :func:`embed_2d`.
    """

    tracks = store.tracks()
    emb = _check_embeddings(store.embeddings(), tracks["track_id"])
    coords, info = embed_2d(emb, n_neighbors=n_neighbors, min_dist=min_dist, metric=metric, seed=seed)
    frame = pd.DataFrame({"track_id": tracks["track_id"].to_numpy(), "x": coords[:, 0], "y": coords[:, 1]})
    info["placed"] = 0
    store.save_coordinates(frame, info)
    return frame


# ---------------------------------------------------------------------------------------------
# placing new tracks on an existing map


def place_points(ref_emb: np.ndarray, ref_coords: np.ndarray, new_emb: np.ndarray, *, n_neighbors: int = 15,
                 metric: str = "cosine", min_dist: float = 0.1, epochs: int = PLACE_EPOCHS,
                 seed: int = 42) -> np.ndarray:
    """Positions [shape=(m, 2)] for ``new_emb`` [shape=(m, d)] on a map of ``ref_emb`` [(n, d)].

    As umap-learn's ``transform``: the k nearest reference points (same metric) get membership
    weights ``exp(-(d - rho) / sigma)`` with sigma from :func:`umap.umap_.smooth_knn_dist`; a new
    point starts at the weighted mean of their map positions (``ref_coords`` [(n, 2)]) and is then
    refined for ``epochs`` epochs of UMAP's layout optimisation with the reference points fixed
    (``epochs=0`` keeps the weighted mean). A point identical to a reference point lands on it.
    """

    ref_emb = np.asarray(ref_emb, dtype=np.float32)
    ref_coords = np.asarray(ref_coords, dtype=np.float32)
    new_emb = np.asarray(new_emb, dtype=np.float32)
    m = new_emb.shape[0]
    if m == 0:
        return np.zeros((0, 2), dtype=np.float32)
    if ref_emb.shape[0] == 0:
        raise MapError("there is no map to place tracks on: fit one first")
    k = min(n_neighbors, ref_emb.shape[0])
    nn = NearestNeighbors(n_neighbors=k, metric=metric, algorithm="brute").fit(ref_emb)
    dists, indices = nn.kneighbors(new_emb)
    dists = np.ascontiguousarray(np.maximum(dists, 0.0), dtype=np.float32)
    indices = np.ascontiguousarray(indices, dtype=np.int32)
    # umap's transform uses local_connectivity - 1 (= 0): rho = 0, so only exact matches weigh 1
    sigmas, rhos = smooth_knn_dist(dists, float(k), local_connectivity=0.0)
    rows, cols, vals, _ = compute_membership_strengths(indices, dists, sigmas, rhos, bipartite=True)
    weights = vals.reshape(m, k).astype(np.float64)
    exact = dists <= EXACT_DISTANCE
    has_exact = exact.any(axis=1)
    weights[has_exact] = exact[has_exact] * 1.0
    weights /= np.maximum(weights.sum(axis=1, keepdims=True), 1e-12)
    placed = np.einsum("mk,mkd->md", weights, ref_coords[indices]).astype(np.float32)
    if epochs <= 0 or ref_emb.shape[0] < 4:
        return placed

    keep = vals >= vals.max() / float(epochs)
    a, b = find_ab_params(1.0, min_dist)
    rng_state = np.random.RandomState(seed).randint(np.iinfo(np.int32).min, np.iinfo(np.int32).max, 3)
    head = placed.copy()
    refined = optimize_layout_euclidean(
        head, ref_coords.copy(), rows[keep], cols[keep], epochs, ref_emb.shape[0],
        make_epochs_per_sample(vals[keep], epochs), a, b, rng_state.astype(np.int64),
        gamma=1.0, initial_alpha=0.25, negative_sample_rate=5, parallel=False, move_other=False)
    refined = np.asarray(refined, dtype=np.float32)
    # a track identical to a stored one stays exactly on it
    refined[has_exact] = placed[has_exact]
    return refined


def place_on_map(store, new_embeddings: np.ndarray, *, epochs: int = PLACE_EPOCHS) -> np.ndarray:
    """Place ``new_embeddings`` [shape=(m, 512)] on the store's existing map without refitting.

    Returns float32 coordinates [shape=(m, 2)]. Only the stored embeddings and coordinates are
    used (see :func:`place_points`); raises :class:`MapError` when the store has no map yet.
    """

    coords = store.coordinates()
    if coords is None or len(coords) == 0:
        raise MapError("the store has no map yet: run 'melodex map' first")
    info = store.map_info() or {}
    tracks = store.tracks()
    pos = _positions(tracks["track_id"], coords)
    on_map = ~np.isnan(pos[:, 0])
    emb = store.embeddings()[on_map]
    return place_points(emb, pos[on_map], np.asarray(new_embeddings, dtype=np.float32),
                        n_neighbors=int(info.get("n_neighbors") or DEFAULTS["n_neighbors"]),
                        metric=str(info.get("metric") or DEFAULTS["metric"]),
                        min_dist=float(info.get("min_dist") or DEFAULTS["min_dist"]), epochs=epochs)


def _positions(track_ids: pd.Series, coords: pd.DataFrame) -> np.ndarray:
    """Map coordinates [shape=(n, 2)] aligned with ``track_ids``; NaN for tracks not on the map."""

    lookup = coords.assign(track_id=coords["track_id"].astype(str)).drop_duplicates("track_id", keep="last")
    aligned = lookup.set_index("track_id").reindex(track_ids.astype(str).to_numpy())[["x", "y"]]
    return np.array(aligned.to_numpy(dtype=np.float64))  # a writable copy


def update_map(store, *, refit: bool = False, n_neighbors: int | None = None, min_dist: float | None = None,
               seed: int | None = None, fast: bool = False) -> tuple[pd.DataFrame, str]:
    """Bring the store's map up to date; returns ``(coordinates, what was done)``.

    A store without a map, ``refit=True``, parameters given that differ from the stored map's, or
    a map that covers less than half of the tracks get a fresh fit; otherwise tracks without
    coordinates are placed with :func:`place_on_map` and the others keep their positions.
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
    pos = _positions(tracks["track_id"], coords)
    missing = np.isnan(pos[:, 0])
    if missing.any():
        log.info("placing %d new track(s) on the existing map", int(missing.sum()))
        emb = _check_embeddings(store.embeddings(), tracks["track_id"])
        pos[missing] = place_points(emb[~missing], pos[~missing], emb[missing],
                                    n_neighbors=int(info.get("n_neighbors") or params["n_neighbors"]),
                                    metric=str(info.get("metric") or DEFAULTS["metric"]),
                                    min_dist=float(info.get("min_dist") or params["min_dist"]))
    frame = pd.DataFrame({"track_id": tracks["track_id"].to_numpy(), "x": pos[:, 0].astype(np.float32),
                          "y": pos[:, 1].astype(np.float32)})
    if missing.any() or len(coords) != len(frame):
        info = dict(info, placed=int(info.get("placed") or 0) + int(missing.sum()), n_points=len(frame))
        store.save_coordinates(frame, info)
    return frame, f"placed {int(missing.sum())} new track(s) on the existing map"


def _refit_reason(store, coords, info: dict, refit: bool, n_neighbors, min_dist, seed) -> str | None:
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


# ---------------------------------------------------------------------------------------------
# command


