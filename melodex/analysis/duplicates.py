"""Tracks that are the same recording: another format, another bit rate, or a trimmed copy.

Two tracks are taken for one recording when both hold:

* their embeddings are almost identical: cosine distance at most ``max_distance``
  (:data:`DUPLICATE_DISTANCE`). Re-encoding (FLAC, MP3, Ogg Vorbis, AAC at 22.05 kHz) moves an
  embedding far less than another performance of the same piece does, which changes timing,
  timbre and noise throughout;
* the store's durations confirm it: they differ by at most ``tolerance`` seconds
  (:data:`~melodex.constants.DURATION_TOLERANCE`, 1 s), so a codec's padding (AAC adds about
  0.1 s) or a trimmed silence passes, while another take, an edit or a different song of similar
  sound almost never lasts the same to the second. A track whose duration the store does not
  know is never confirmed.

What the embedding can and cannot do here (measured with the demo model on one demo clip, see
``tests/test_listening.py`` and ``benchmarks/bench_listening.py``): re-encodes to FLAC, MP3, Ogg
Vorbis and AAC and a copy trimmed by 0.8 s lie within 0.0002-0.0020 of each other; other takes
of a clip lay 0.002-0.021 away (three takes measured), and many pairs of different demo clips by
one artist in one style are as close (the median nearest-neighbour distance in the demo library
is 0.003). The genre
embedding is not a fingerprint: duration is what tells a copy from another take, and a library
whose tracks all last the same (the demo's 10-second clips) gets false groups.

Pairs come from each track's nearest neighbours (:func:`melodex.analysis.neighbours.all_nearest`)
and join into groups through shared members. Nothing is ever deleted: the result is a report.
Durations come from the store's ``duration`` column; no audio is decoded here.
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pandas as pd

from melodex.analysis.collection import Collection
from melodex.analysis.neighbours import all_nearest
from melodex.constants import DUPLICATE_DISTANCE, DURATION_TOLERANCE
from melodex.util.atomic import atomic_write, output_errors

NEIGHBOURS = 10  # candidates per track
REPORT_COLUMNS = ("group", "track_id", "path", "artist", "title", "duration", "distance")


def durations_agree(a: float, b: float, *, tolerance: float = DURATION_TOLERANCE) -> bool:
    """Whether durations ``a`` and ``b`` differ by at most ``tolerance`` seconds; False when
    either is unknown."""
    if not (math.isfinite(a) and math.isfinite(b)) or a <= 0 or b <= 0:
        return False
    return abs(a - b) <= tolerance


def same_recording(distance: float, a: float, b: float, *, max_distance: float = DUPLICATE_DISTANCE,
                   tolerance: float = DURATION_TOLERANCE) -> bool:
    """Cosine ``distance`` at most ``max_distance`` and durations ``a``, ``b`` (seconds) that agree."""
    return distance <= max_distance and durations_agree(a, b, tolerance=tolerance)


def duplicate_pairs(collection: Collection, *, max_distance: float = DUPLICATE_DISTANCE,
                    tolerance: float = DURATION_TOLERANCE) -> list[tuple[int, int, float]]:
    """Confirmed pairs ``(row i, row j, cosine distance)`` with i < j, closest first."""
    indices, distances = all_nearest(collection.unit, NEIGHBOURS)
    found: dict[tuple[int, int], float] = {}
    for i, (rows, dists) in enumerate(zip(indices, distances)):
        for j, d in zip(rows.tolist(), dists.tolist()):
            if d > max_distance:
                break  # nearest first: the rest are farther
            d = max(d, 0.0)
            if same_recording(d, collection.durations[i], collection.durations[j],
                              max_distance=max_distance, tolerance=tolerance):
                found[(min(i, j), max(i, j))] = d
    return sorted(((i, j, d) for (i, j), d in found.items()), key=lambda p: (p[2], p[0], p[1]))


def group_pairs(pairs: list[tuple[int, int, float]]) -> list[list[int]]:
    """Connected groups of rows (each sorted, at least two rows), ordered by their first row."""
    parent: dict[int, int] = {}

    def root(x: int) -> int:
        parent.setdefault(x, x)
        while parent[x] != x:
            parent[x] = parent[parent[x]]
            x = parent[x]
        return x

    for i, j, _ in pairs:
        parent[root(i)] = root(j)
    groups: dict[int, list[int]] = {}
    for x in parent:
        groups.setdefault(root(x), []).append(x)
    return sorted((sorted(g) for g in groups.values() if len(g) > 1), key=lambda g: g[0])


def find_duplicates(collection: Collection, *, max_distance: float = DUPLICATE_DISTANCE,
                    tolerance: float = DURATION_TOLERANCE) -> pd.DataFrame:
    """One row per track that has a duplicate, with columns :data:`REPORT_COLUMNS`.

    ``group`` numbers the groups from 1; within a group the longest copy comes first and
    ``distance`` is each member's cosine distance to it (0 for itself).
    """
    rows = []
    pairs = duplicate_pairs(collection, max_distance=max_distance, tolerance=tolerance)
    for number, members in enumerate(group_pairs(pairs), start=1):
        durations = np.nan_to_num(collection.durations[members], nan=-1.0)
        members = [members[k] for k in np.argsort(-durations, kind="stable")]
        first = members[0]
        for row in members:
            described = collection.describe(row)
            rows.append({"group": number, "track_id": described["track_id"], "path": collection.paths[row],
                         "artist": described["artist"], "title": described["title"],
                         "duration": described["duration"], "distance": round(collection.distance(first, row), 6)})
    return pd.DataFrame(rows, columns=list(REPORT_COLUMNS))


def write_report(table: pd.DataFrame, path: str | Path) -> Path:
    """Write the duplicates ``table`` as CSV to ``path`` atomically; returns the path."""
    path = Path(path)
    with output_errors(path), atomic_write(path, "w", encoding="utf-8", newline="") as handle:
        table.to_csv(handle, index=False)
    return path
