"""Placing new points among fixed ones on a 2-D map, as umap-learn's ``transform`` does.

:func:`place_among` needs only the fitted embeddings and their map positions, never a pickled
UMAP model: each new point is tied to its k nearest fitted points with UMAP's membership
strengths, starts at the weighted mean of their positions, and is refined by UMAP's own layout
optimisation with the fitted points held still. :class:`~melodex.analysis.mapping.MusicMap`
calls it from ``transform``.
"""

from __future__ import annotations

import numpy as np
from sklearn.neighbors import NearestNeighbors

from melodex.analysis.umap_kernels import cache_kernels, umap

EXACT_DISTANCE = 1e-6  # a new embedding this close to a stored one is that track: it lands on it
PLACE_EPOCHS = 100  # umap-learn's transform uses 100 epochs for up to 10,000 new points
TRANSFORM_SEED = 42  # umap-learn's default transform_seed


def place_among(ref_emb: np.ndarray, ref_coords: np.ndarray, new_emb: np.ndarray, *, k: int, metric: str,
                min_dist: float, epochs: int = PLACE_EPOCHS, seed: int = TRANSFORM_SEED) -> np.ndarray:
    """Positions [shape=(m, 2)] float32 for ``new_emb`` [shape=(m, d)], m >= 1, among fixed points.

    ``ref_emb`` [shape=(n, d)], n >= k >= 1, are the fitted embeddings and ``ref_coords``
    [shape=(n, 2)] their positions. The k nearest fitted points (``metric``) of a new point get
    membership weights ``exp(-(d - rho) / sigma)`` with sigma from
    :func:`umap.umap_.smooth_knn_dist`; the point starts at the weighted mean of their positions
    and is refined for ``epochs`` epochs (none with ``epochs <= 0`` or n < 4). A point identical
    to a fitted one lands on it.
    """

    cache_kernels()  # compiled once per machine, not per process
    ref_coords = np.asarray(ref_coords, dtype=np.float32)
    graph = _membership(np.asarray(ref_emb, dtype=np.float32), np.asarray(new_emb, dtype=np.float32), k, metric)
    placed = _weighted_start(graph, ref_coords)
    if epochs <= 0 or ref_coords.shape[0] < 4:
        return placed
    refined = _refine(placed, ref_coords, graph, epochs, min_dist, seed)
    refined[graph.has_exact] = placed[graph.has_exact]  # a track identical to a fitted one stays on it
    return refined


class _Membership:
    """The bipartite graph from m new points to their k nearest fitted points.

    ``indices`` [shape=(m, k)] int32 fitted rows; ``rows``, ``cols``, ``vals`` the graph's edges
    (new point, fitted point, UMAP membership strength); ``weights`` [shape=(m, k)] the
    normalised weights of each point's neighbours; ``has_exact`` [shape=(m,)] points identical
    to a fitted one, whose whole weight is on it.
    """

    def __init__(self, indices: np.ndarray, rows: np.ndarray, cols: np.ndarray, vals: np.ndarray,
                 weights: np.ndarray, has_exact: np.ndarray):
        self.indices, self.rows, self.cols, self.vals = indices, rows, cols, vals
        self.weights, self.has_exact = weights, has_exact


def _membership(ref_emb: np.ndarray, new_emb: np.ndarray, k: int, metric: str) -> _Membership:
    """The :class:`_Membership` graph of ``new_emb`` [(m, d)] over ``ref_emb`` [(n, d)]."""

    m = new_emb.shape[0]
    nn = NearestNeighbors(n_neighbors=k, metric=metric, algorithm="brute").fit(ref_emb)
    dists, indices = nn.kneighbors(new_emb)
    dists = np.ascontiguousarray(np.maximum(dists, 0.0), dtype=np.float32)
    indices = np.ascontiguousarray(indices, dtype=np.int32)
    # umap's transform uses local_connectivity - 1 (= 0): rho = 0, so only exact matches weigh 1
    sigmas, rhos = umap.umap_.smooth_knn_dist(dists, float(k), local_connectivity=0.0)
    rows, cols, vals, _ = umap.umap_.compute_membership_strengths(indices, dists, sigmas, rhos,
                                                                  bipartite=True)
    weights = vals.reshape(m, k).astype(np.float64)
    exact = dists <= EXACT_DISTANCE
    has_exact = exact.any(axis=1)
    weights[has_exact] = exact[has_exact] * 1.0
    weights /= np.maximum(weights.sum(axis=1, keepdims=True), 1e-12)
    return _Membership(indices, rows, cols, vals, weights, has_exact)


def _weighted_start(graph: _Membership, ref_coords: np.ndarray) -> np.ndarray:
    """Each new point at the weighted mean [shape=(m, 2)] of its neighbours' positions."""

    return np.einsum("mk,mkd->md", graph.weights, ref_coords[graph.indices]).astype(np.float32)


def _refine(start: np.ndarray, ref_coords: np.ndarray, graph: _Membership, epochs: int, min_dist: float,
            seed: int) -> np.ndarray:
    """``start`` [shape=(m, 2)] after ``epochs`` of UMAP's layout optimisation, fitted points fixed."""

    keep = graph.vals >= graph.vals.max() / float(epochs)
    a, b = umap.umap_.find_ab_params(1.0, min_dist)
    rng_state = np.random.RandomState(seed).randint(np.iinfo(np.int32).min, np.iinfo(np.int32).max, 3)
    refined = umap.layouts.optimize_layout_euclidean(
        start.copy(), ref_coords.copy(), graph.rows[keep], graph.cols[keep], epochs, ref_coords.shape[0],
        umap.umap_.make_epochs_per_sample(graph.vals[keep], epochs), a, b, rng_state.astype(np.int64),
        gamma=1.0, initial_alpha=0.25, negative_sample_rate=5, parallel=False, move_other=False)
    return np.asarray(refined, dtype=np.float32)
