"""How alike two artists are: the energy distance between their tracks' embeddings.

Measure: with X the unit embeddings of artist A's tracks and Y those of artist B's, and
``|.|`` the Euclidean distance between unit vectors (``sqrt(2 * cosine distance)``),

    D(A, B) = sqrt(max(0, 2 E|X - Y| - E|X - X'| - E|Y - Y'|))

(Szekely & Rizzo's energy distance). Why this and not the distance between centroids: two
artists with the same average can still sound different (one always in the middle, one split
between two styles), and the centroid of an artist who spans two styles lies where none of
their tracks is. The energy distance compares the whole distributions: it is zero only when they
are the same, grows with a shift of the centre and with a difference in spread or shape, needs
no density estimate or tuning parameter, and is defined for an artist with a single track. The
mean of cross-artist nearest distances was the alternative; it ignores how the rest of each
catalogue is spread and is not symmetric without a further choice.

Cost: one ``(m, n)`` block of dot products for an artist of ``m`` tracks against ``n`` tracks,
plus each artist's own pairwise distances, so one query over 100,000 tracks takes well under
a second. No audio is decoded; only the store's embeddings are read.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from melodex.analysis.collection import Collection
from melodex.errors import QueryError

MEASURE = "energy distance between the artists' track embeddings"


def _mean_pairwise(a: np.ndarray, b: np.ndarray) -> float:
    """Mean Euclidean distance between rows of unit matrices ``a`` and ``b``."""
    sims = np.clip(a @ b.T, -1.0, 1.0)
    return float(np.sqrt(np.maximum(2.0 - 2.0 * sims, 0.0)).mean())


def energy_distance(a: np.ndarray, b: np.ndarray) -> float:
    """Energy distance between two sets of unit vectors [shape=(m, d)] and [shape=(n, d)]."""
    value = 2.0 * _mean_pairwise(a, b) - _mean_pairwise(a, a) - _mean_pairwise(b, b)
    return float(np.sqrt(max(value, 0.0)))


def artist_rows(collection: Collection, *, namesakes: bool = False) -> dict[str, np.ndarray]:
    """Each named artist's rows (tracks with no artist are left out), in order of first track.

    Grouped by name; with ``namesakes``, by the collection's ``artist_labels``: artists who share
    a name but not an artist_id (FMA holds several) are apart, each as ``"name [artist_id]"``;
    every other artist keeps its name.
    """
    labels = collection.artist_labels if namesakes else collection.artists
    groups: dict[str, list[int]] = {}
    for row, label in enumerate(labels):
        if label:
            groups.setdefault(label, []).append(row)
    return {artist: np.asarray(rows) for artist, rows in groups.items()}


def find_artist(groups: dict[str, np.ndarray], name: str, root: str = "",
                collection: Collection | None = None) -> str:
    """The stored artist called ``name`` (exactly, else ignoring case), or (given ``collection``)
    whose artist_id is ``name``; :class:`QueryError` if none, or if the name stands for several
    artists of :func:`artist_rows` with ``namesakes`` (the error lists them)."""
    wanted = name.casefold()
    # the namesakes of that name, split apart by artist_rows
    same = [] if collection is None else sorted(
        {label for label, artist in zip(collection.artist_labels, collection.artists)
         if artist and label != artist and artist.casefold() == wanted and label in groups})
    if same:
        listed = ", ".join(f"{a} ({len(groups[a])} tracks)" for a in same)
        raise QueryError(f"{name!r} names {len(same)} artists in the store at {root}: {listed}; give one "
                         "as it is written there, or its artist_id")
    if name in groups:
        return name
    folded = {a.casefold(): a for a in groups}
    if name.casefold() in folded:
        return folded[name.casefold()]
    if collection is not None:
        by_id = {a for a, rows in groups.items() if any(collection.artist_ids[r] == name for r in rows)}
        if len(by_id) == 1:
            return by_id.pop()
    raise QueryError(f"{name}: no artist of that name in the store at {root}")


def similar_artists(collection: Collection, name: str, k: int = 10) -> pd.DataFrame:
    """The ``k`` artists nearest to artist ``name`` by :func:`energy_distance`, nearest first.

    Columns: rank, artist, distance (the energy distance), centroid_distance (cosine distance
    between the mean embeddings, for comparison) and tracks (how many the store holds).
    """
    groups = artist_rows(collection, namesakes=True)
    artist = find_artist(groups, name, collection.root, collection)
    own = collection.unit[groups[artist]]
    own_spread = _mean_pairwise(own, own)
    centre = _unit(own.mean(axis=0))
    rows = []
    for other, members in groups.items():
        if other == artist:
            continue
        theirs = collection.unit[members]
        value = 2.0 * _mean_pairwise(own, theirs) - own_spread - _mean_pairwise(theirs, theirs)
        rows.append((other, float(np.sqrt(max(value, 0.0))),
                     float(1.0 - centre @ _unit(theirs.mean(axis=0))), len(members)))
    rows.sort(key=lambda r: (r[1], r[0]))
    rows = rows[:k]
    return pd.DataFrame({"rank": np.arange(1, len(rows) + 1), "artist": [r[0] for r in rows],
                         "distance": [r[1] for r in rows], "centroid_distance": [r[2] for r in rows],
                         "tracks": [r[3] for r in rows]})


def artist_distance_matrix(collection: Collection, *, max_artists: int = 300) -> tuple[list[str], np.ndarray]:
    """Artists (the ``max_artists`` with most tracks, namesakes apart as :func:`artist_rows` gives
    them) and their energy distances [shape=(a, a)] float, symmetric with a zero diagonal, for
    the map page's artist view.

    One block of dot products per artist, against its own tracks and every later artist's at once
    (the upper triangle), summed per artist in float64: 4-5x faster than a call per pair of artists
    (9,000 tracks of 300 artists: 4 s against 19 s).
    """
    groups = artist_rows(collection, namesakes=True)
    names = sorted(groups, key=lambda a: (-len(groups[a]), a))[:max_artists]
    names.sort()
    if not names:
        return names, np.zeros((0, 0))
    sizes = np.array([len(groups[a]) for a in names])
    units = collection.unit[np.concatenate([groups[a] for a in names])]
    starts = np.concatenate([[0], np.cumsum(sizes)[:-1]])
    mean = np.zeros((len(names), len(names)))  # mean[i, j], j >= i: E|X_i - X_j|
    for i, (lo, size) in enumerate(zip(starts, sizes)):
        block = units[lo:lo + size] @ units[lo:].T  # this artist against itself and every later one
        np.clip(block, -1.0, 1.0, out=block)
        np.sqrt(np.maximum(2.0 - 2.0 * block, 0.0, out=block), out=block)  # unit-vector distances
        mean[i, i:] = np.add.reduceat(block.sum(axis=0, dtype=np.float64), starts[i:] - lo) / (size * sizes[i:])
    mean = np.triu(mean) + np.triu(mean, 1).T
    spread = np.diag(mean)
    matrix = np.sqrt(np.maximum(2.0 * mean - (spread[:, None] + spread[None, :]), 0.0))  # exactly symmetric
    np.fill_diagonal(matrix, 0.0)
    return names, matrix


def _unit(v: np.ndarray) -> np.ndarray:
    return v / max(float(np.linalg.norm(v)), 1e-12)
