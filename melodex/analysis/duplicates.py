"""Tracks that are the same recording: another format, another bit rate, or a trimmed copy.

Two tracks are taken for one recording when all of these hold:

* their embeddings lie close: cosine distance at most ``max_distance``
  (:data:`~melodex.constants.DUPLICATE_CANDIDATE_DISTANCE`, 0.05, loose: a copy with 3 s cut off a
  10-s clip lies 0.014 away). This only finds candidates cheaply (each track's
  :data:`NEIGHBOURS` nearest); the genre embedding is
  no fingerprint: two demo clips of one artist and style lie as close as re-encodes (the demo
  library's median nearest-neighbour distance is 0.003), which grouped 81 of its 128 tracks in
  13 false groups when the embedding and the duration decided alone;
* their audio fingerprints agree (:mod:`melodex.analysis.fingerprint_match`: Cohen's kappa of
  the Chromaprint bits is at least ``min_agreement``, :data:`MATCH_AGREEMENT`, also where a cut
  falls between two fingerprint items), at a
  shift that the durations explain: a copy cut by ``s`` seconds may be shifted by 0 to ``s``
  seconds (cut at the end or at the start), give or take ``tolerance``;
* the store's durations differ by at most ``tolerance`` plus the largest cut that is searched
  (:data:`~melodex.analysis.fingerprint_match.MAX_SHIFT_SECONDS`). A track whose duration the
  store does not know is never confirmed.

Fingerprints are stored at index time (the ``chromaprint`` column); a track without one cannot
be confirmed, so :func:`missing_fingerprints` lets the command refuse, and say how to add them,
rather than fall back to the embedding alone. Pairs join into groups through shared members.
Nothing is ever deleted: the result is a report; no audio is decoded here. Judging a candidate
pair costs 0.3-0.5 ms (``benchmarks/bench_fingerprint.py``: 2,000 tracks whose embeddings all
lie within the candidate distance, 20 candidates each, take 6.6-10.5 s on a shared 2-core
machine); a pair of 30-s fingerprints 1.4-1.5x (shifts of +-1 s) and 2.7-4.2x (+-16 s) faster
than the item-by-item comparison before, in the same run (three runs).
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pandas as pd

from melodex.analysis.collection import Collection
from melodex.analysis.fingerprint_match import MATCH_AGREEMENT, MAX_SHIFT_SECONDS, agreement, from_bytes
from melodex.analysis.neighbours import all_nearest
from melodex.constants import DUPLICATE_CANDIDATE_DISTANCE as CANDIDATE_DISTANCE
from melodex.constants import DURATION_TOLERANCE
from melodex.util.atomic import atomic_write, output_errors

NEIGHBOURS = 20  # candidates per track
REPORT_COLUMNS = ("group", "track_id", "path", "artist", "title", "duration", "distance", "agreement", "offset")


def durations_agree(a: float, b: float, *, tolerance: float = DURATION_TOLERANCE) -> bool:
    """Whether durations ``a`` and ``b`` differ by at most ``tolerance`` seconds; False when
    either is unknown."""
    if not (math.isfinite(a) and math.isfinite(b)) or a <= 0 or b <= 0:
        return False
    return abs(a - b) <= tolerance


def missing_fingerprints(fingerprints: list[bytes | None]) -> int:
    """How many tracks have no stored fingerprint."""
    return sum(1 for f in fingerprints if f is None)


def same_recording(a: np.ndarray | None, b: np.ndarray | None, duration_a: float, duration_b: float, *,
                   min_agreement: float = MATCH_AGREEMENT,
                   tolerance: float = DURATION_TOLERANCE) -> tuple[float, float] | None:
    """(agreement, offset seconds) when fingerprints ``a``, ``b`` and durations (seconds) say one
    recording, else None. The offset is how much later ``b`` starts into the recording than ``a``."""
    longest_cut = tolerance + MAX_SHIFT_SECONDS
    if a is None or b is None or not durations_agree(duration_a, duration_b, tolerance=longest_cut):
        return None
    cut = duration_a - duration_b
    score, offset = agreement(a, b, shifts=(min(0.0, cut) - tolerance, max(0.0, cut) + tolerance))
    return (score, offset) if score >= min_agreement else None


def duplicate_pairs(collection: Collection, fingerprints: list[bytes | None], *,
                    max_distance: float = CANDIDATE_DISTANCE, min_agreement: float = MATCH_AGREEMENT,
                    tolerance: float = DURATION_TOLERANCE) -> list[tuple[int, int, float]]:
    """Confirmed pairs ``(row i, row j, cosine distance)`` with i < j, closest first.

    ``fingerprints`` holds each row's stored fingerprint (None where missing: never confirmed)."""
    items = [from_bytes(f) for f in fingerprints]
    indices, distances = all_nearest(collection.unit, NEIGHBOURS)
    found: dict[tuple[int, int], float] = {}
    judged: set[tuple[int, int]] = set()
    for i, (rows, dists) in enumerate(zip(indices, distances)):
        for j, d in zip(rows.tolist(), dists.tolist()):
            if d > max_distance:
                break  # nearest first: the rest are farther
            key = (min(i, j), max(i, j))
            if key in judged or i == j:
                continue
            judged.add(key)
            if same_recording(items[i], items[j], collection.durations[i], collection.durations[j],
                              min_agreement=min_agreement, tolerance=tolerance):
                found[key] = max(d, 0.0)
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


def find_duplicates(collection: Collection, fingerprints: list[bytes | None], *,
                    max_distance: float = CANDIDATE_DISTANCE, min_agreement: float = MATCH_AGREEMENT,
                    tolerance: float = DURATION_TOLERANCE) -> pd.DataFrame:
    """One row per track that has a duplicate, with columns :data:`REPORT_COLUMNS`.

    ``group`` numbers the groups from 1; within a group the longest copy comes first, and each
    member's ``distance`` (cosine) and ``offset`` (seconds cut off its start) are measured against
    it; ``agreement`` is the member's best fingerprint agreement with another member of the group
    (copies join a group through their closest copy: two low-rate encodes may agree less with each
    other than each does with the lossless file).
    """
    rows = []
    pairs = duplicate_pairs(collection, fingerprints, max_distance=max_distance, min_agreement=min_agreement,
                            tolerance=tolerance)
    items = [from_bytes(f) for f in fingerprints]
    for number, members in enumerate(group_pairs(pairs), start=1):
        durations = np.nan_to_num(collection.durations[members], nan=-1.0)
        members = [members[k] for k in np.argsort(-durations, kind="stable")]
        first = members[0]
        for row in members:
            described = collection.describe(row)
            offset = 0.0 if row == first else agreement(items[first], items[row])[1]
            score = max(agreement(items[row], items[other])[0] for other in members if other != row)
            rows.append({"group": number, "track_id": described["track_id"], "path": collection.paths[row],
                         "artist": described["artist"], "title": described["title"],
                         "duration": described["duration"], "distance": round(collection.distance(first, row), 6),
                         "agreement": round(score, 4), "offset": round(offset, 2)})
    return pd.DataFrame(rows, columns=list(REPORT_COLUMNS))


def write_report(table: pd.DataFrame, path: str | Path) -> Path:
    """Write the duplicates ``table`` as CSV to ``path`` atomically; returns the path."""
    path = Path(path)
    with output_errors(path), atomic_write(path, "w", encoding="utf-8", newline="") as handle:
        table.to_csv(handle, index=False)
    return path
