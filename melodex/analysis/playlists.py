"""Playlists from embeddings: an instant mix around seeds, a path between two songs, clusters.

All three work on a :class:`~melodex.analysis.collection.Collection` (unit embeddings, so the
cosine distance of two tracks is ``1 - dot``) and return :class:`Playlist` values, which
:mod:`melodex.analysis.playlist_files` writes as M3U8, XSPF or JSON.

* :func:`instant_mix`: the tracks nearest to the seeds form a pool; the mix starts at the first
  seed and each next track is picked from the pool by a blend of "close to the previous track"
  and "close to the seeds" (:data:`FLOW_WEIGHT`), so the order flows instead of jumping back to
  the seed after each song. An artist appears at most ``max_per_artist`` times and never twice
  in a row; a near-duplicate of a picked track (same recording, see
  :mod:`melodex.analysis.duplicates`) is skipped.
* :func:`path_between`: ``length`` tracks from A to B. Waypoints lie evenly on the straight line
  between A's and B's unit embeddings; each step picks the unused track minimising its distance
  to the waypoint plus half its distance to the previous pick, so steps stay small and no track
  appears twice.
* :func:`cluster_playlists`: KMeans on the unit embeddings (``k`` given) or HDBSCAN (``k=None``,
  tracks it calls noise join the nearest cluster), each cluster ordered by a nearest-neighbour
  walk from its most central track and named by its dominant genre and artists.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from itertools import pairwise

import numpy as np
from sklearn.cluster import HDBSCAN, KMeans

from melodex.analysis.collection import Collection
from melodex.analysis.duplicates import durations_agree
from melodex.constants import DUPLICATE_DISTANCE
from melodex.errors import QueryError

FLOW_WEIGHT = 0.5  # the weight of "close to the previous track" against "close to the seeds"
POOL_FACTOR = 4  # an instant mix of N picks from the 4N (at least 40) tracks nearest the seeds
MIN_POOL = 40
NEAR_DUPLICATE = DUPLICATE_DISTANCE  # cosine distance under which a mix treats two tracks as one song
# Up to this many tracks HDBSCAN's neighbours come from the full distance matrix (n x n float64:
# 200 MB at 5,000): ~10x quicker than its tree search, which 512-d embeddings defeat (7 s against
# 0.2-0.7 s for 2,000 tracks; 3.4 s for 5,000 on 2 cores), and exact too, so the clusters are the
# same. Above it, the tree search, whose memory stays linear.
HDBSCAN_BRUTE_MAX = 5_000


@dataclass(frozen=True)
class Playlist:
    """An ordered playlist of collection rows.

    ``steps[i]``: cosine distance from track i-1 to track i (0 for the first).
    ``anchors[i]``: cosine distance of track i to what the playlist is built around (the
    nearest seed, the path's waypoint, the cluster centre).
    """

    name: str
    kind: str
    rows: tuple[int, ...]
    steps: tuple[float, ...]
    anchors: tuple[float, ...]

    def __len__(self) -> int:
        return len(self.rows)


def _steps(collection: Collection, rows: list[int]) -> tuple[float, ...]:
    return tuple([0.0] + [round(collection.distance(a, b), 6) for a, b in pairwise(rows)])


def instant_mix(collection: Collection, seeds: list[str], length: int, *, max_per_artist: int = 2,
                flow: float = FLOW_WEIGHT, near_duplicate: float = NEAR_DUPLICATE) -> Playlist:
    """A mix of up to ``length`` tracks around the track ids ``seeds`` (the first seed first).

    Raises :class:`QueryError` for an unknown seed or a length below 1. The mix is shorter than
    ``length`` only when the artist caps leave too few tracks.
    """
    if length < 1 or max_per_artist < 1:
        raise QueryError("a playlist needs a length and a --max-per-artist of at least 1")
    if not seeds:
        raise QueryError("an instant mix needs at least one --seed")
    seed_rows = [collection.row(s) for s in seeds]
    to_seeds = np.min(np.stack([collection.distances_to(r) for r in seed_rows]), axis=0)
    pool_size = min(len(collection), max(POOL_FACTOR * length, MIN_POOL))
    pool = np.argsort(to_seeds, kind="stable")[:pool_size]
    picked = [seed_rows[0]]
    per_artist = Counter([collection.artist_keys[seed_rows[0]]])
    while len(picked) < length:
        chosen = _next_track(collection, picked, pool, to_seeds, per_artist, max_per_artist, flow, near_duplicate)
        if chosen is None and len(pool) < len(collection):  # the caps emptied the pool: widen it
            pool = np.argsort(to_seeds, kind="stable")
            continue
        if chosen is None:
            break
        picked.append(chosen)
        per_artist[collection.artist_keys[chosen]] += 1
    name = "Instant mix: " + ", ".join(_label(collection, r) for r in seed_rows)
    return Playlist(name, "mix", tuple(picked), _steps(collection, picked),
                    tuple(round(float(to_seeds[r]), 6) for r in picked))


def _next_track(collection: Collection, picked: list[int], pool: np.ndarray, to_seeds: np.ndarray,
                per_artist: Counter, max_per_artist: int, flow: float, near_duplicate: float) -> int | None:
    """The best next row of ``pool`` after ``picked`` that the caps allow, or None."""
    prev = picked[-1]
    cost = flow * collection.distances_to(prev)[pool] + (1.0 - flow) * to_seeds[pool]
    for k in np.argsort(cost, kind="stable"):
        row = int(pool[k])
        artist = collection.artist_keys[row]
        if (row in picked or per_artist[artist] >= max_per_artist or artist == collection.artist_keys[prev]
                or _near_duplicate(collection, row, picked, near_duplicate)):
            continue
        return row
    return None


def _near_duplicate(collection: Collection, row: int, picked: list[int], limit: float) -> bool:
    """Whether ``row`` is the same recording as a picked track (durations unknown: embedding only)."""
    dists = 1.0 - collection.unit[picked] @ collection.unit[row]
    for other, d in zip(picked, dists.tolist()):
        if d <= limit:
            a, b = collection.durations[row], collection.durations[other]
            if np.isnan(a) or np.isnan(b) or durations_agree(a, b):
                return True
    return False


def _label(collection: Collection, row: int) -> str:
    artist, title = collection.artists[row], collection.titles[row]
    return " - ".join(x for x in (artist, title) if x) or str(collection.track_ids[row])


def path_between(collection: Collection, start: str, end: str, length: int) -> Playlist:
    """``length`` tracks from track id ``start`` to ``end`` (both included), none twice.

    Raises :class:`QueryError` for unknown ids, ``start == end``, a length below 2 or above the
    number of tracks.
    """
    a, b = collection.row(start), collection.row(end)
    if a == b:
        raise QueryError(f"{start}: a path needs two different tracks")
    if not 2 <= length <= len(collection):
        raise QueryError(f"a path needs a length from 2 to {len(collection)} (the store's tracks), not {length}")
    unit = collection.unit
    used = np.zeros(len(collection), dtype=bool)
    used[[a, b]] = True
    picked, anchors = [a], [0.0]
    for i in range(1, length - 1):
        t = i / (length - 1)
        waypoint = (1.0 - t) * unit[a] + t * unit[b]
        waypoint /= max(float(np.linalg.norm(waypoint)), 1e-12)
        to_waypoint = np.clip(1.0 - unit @ waypoint, 0.0, 2.0)
        cost = to_waypoint + 0.5 * collection.distances_to(picked[-1])
        cost[used] = np.inf
        row = int(np.argmin(cost))
        used[row] = True
        picked.append(row)
        anchors.append(round(float(to_waypoint[row]), 6))
    picked.append(b)
    anchors.append(0.0)
    name = f"Path: {_label(collection, a)} to {_label(collection, b)}"
    return Playlist(name, "path", tuple(picked), _steps(collection, picked), tuple(anchors))


def cluster_labels(collection: Collection, k: int | None, *, seed: int = 0) -> np.ndarray:
    """A cluster number per track [shape=(n,)]: KMeans with ``k`` clusters, or HDBSCAN when
    ``k`` is None (its noise points join the cluster with the nearest centre)."""
    n = len(collection)
    if k is not None:
        if not 1 <= k <= n:
            raise QueryError(f"--clusters must be from 1 to {n} (the store's tracks), not {k}")
        return KMeans(n_clusters=k, n_init=10, random_state=seed).fit_predict(collection.unit)
    algorithm = "brute" if n <= HDBSCAN_BRUTE_MAX else "auto"
    labels = HDBSCAN(min_cluster_size=max(5, n // 50), algorithm=algorithm, copy=True).fit_predict(collection.unit)
    found = sorted(set(labels.tolist()) - {-1})
    if not found:
        return np.zeros(n, dtype=np.int64)
    centres = np.stack([collection.unit[labels == c].mean(axis=0) for c in found])
    noise = labels == -1
    if noise.any():
        labels[noise] = np.asarray(found)[np.argmax(collection.unit[noise] @ centres.T, axis=1)]
    return np.searchsorted(found, labels)


def cluster_playlists(collection: Collection, k: int | None = None, *, seed: int = 0) -> list[Playlist]:
    """The collection split into playlists (largest first), one per cluster of :func:`cluster_labels`."""
    labels = cluster_labels(collection, k, seed=seed)
    playlists = []
    for c in np.unique(labels):
        members = np.flatnonzero(labels == c)
        centre = collection.unit[members].mean(axis=0)
        centre /= max(float(np.linalg.norm(centre)), 1e-12)
        to_centre = np.clip(1.0 - collection.unit[members] @ centre, 0.0, 2.0)
        order = _walk(collection, members, int(np.argmin(to_centre)))
        rows = [int(members[i]) for i in order]
        playlists.append(Playlist(cluster_name(collection, rows), "cluster", tuple(rows), _steps(collection, rows),
                                  tuple(round(float(to_centre[i]), 6) for i in order)))
    playlists.sort(key=lambda p: (-len(p), p.name))
    return playlists


def _walk(collection: Collection, members: np.ndarray, start: int) -> list[int]:
    """Indices into ``members`` visited by a greedy nearest-neighbour walk from ``start``."""
    sims = collection.unit[members] @ collection.unit[members].T
    left = np.ones(len(members), dtype=bool)
    order = [start]
    left[start] = False
    while left.any():
        row = sims[order[-1]].copy()
        row[~left] = -np.inf
        order.append(int(np.argmax(row)))
        left[order[-1]] = False
    return order


def cluster_name(collection: Collection, rows: list[int]) -> str:
    """``"Genre: Artist, Artist"``: the cluster's most common genre and its two most common artists."""
    genres = Counter(g for g in collection.genres[rows] if g)
    artists = Counter(a for a in collection.artists[rows] if a)
    genre = genres.most_common(1)[0][0] if genres else "Mixed"
    top = ", ".join(a for a, _ in artists.most_common(2))
    return f"{genre}: {top}" if top else genre
