"""How an artist's music, or the whole collection, moves through the embedding space over time.

  melodex evolution --artist "Nina Blue"        # one artist: report.html, drift.png, tracks.csv
  melodex evolution --all --min-tracks 5        # every artist with >= 5 dated tracks, ranked

For one artist, the tracks are grouped into **releases** by the store's ``release_id`` (FMA's
album id, a manifest's ``album_id``, else album title + album artist + year; see
:func:`melodex.library.metadata.release_identity`), so two albums that share a title are two
releases; tracks without an album form one release per date. A release's date is the mean of
its tracks' release dates. A date that only says when a file was uploaded
(:data:`~melodex.analysis.releases.UPLOAD_DATE_SOURCES`, FMA's ``track.date_created``) is not a release date: a release
without a release date is **listed apart** (:func:`undated_releases`, ``n_undated_releases``)
and never put in the order, which would be a guess. The **first work** is the earliest release; its centroid (mean of unit-normalised embeddings) is
the reference. For every track, ``dist_first`` is its cosine distance to that centroid (for a
track of the first work itself, to the centroid of the *other* first-work tracks, so it is not
measured against itself). Per release, ``release_dist_prev`` is the cosine distance between
consecutive release centroids and ``release_dist_first`` the distance from the first work's.

The **drift score** works on releases, not tracks, because tracks of one album share a sound
(counting them separately would make an album that happens to differ look like a trend):

* ``spearman``: Spearman's rank correlation, over the releases after the first work, of the
  release date vs the release's mean ``dist_first``; ``p_value``: its one-sided p-value (exact
  permutation test up to 8 releases, the t approximation above): does later music sit further
  from the first work? ``track_spearman`` is the same at track level, for information. Both
  are nan with fewer than 3 releases after the first work (or 3 later tracks).
* ``slope_per_year``: least-squares slope of ``dist_first`` (later tracks) against the date,
  in cosine distance per year; ``slope_ci_low``/``slope_ci_high``: its 95% bootstrap interval,
  releases and then their tracks resampled with replacement (:func:`bootstrap_slope`), so an
  interval that excludes 0 says the trend is not an accident of which releases were made;
* ``displacement``: cosine distance between the first and the last release centroids;
  ``step``: the median distance between consecutive releases; ``displacement_ratio`` =
  displacement / step. An artist whose releases differ at random has a ratio near 1 (the last
  release is no further from the first than from its predecessor); a steady drift over m
  releases moves it towards m.

``relative_displacement`` is the displacement divided by the collection's **scale**, the
median cosine distance between two random tracks of the store (:func:`collection_scale`): the
ratio above is blind to size, and an artist whose releases are all but identical can show a
"trend" of a thousandth of the distance between two songs.

``drifting`` is True when the artist has at least 5 dated releases, ``spearman >= 0.6``,
``p_value < 0.05``, ``displacement_ratio >= 1.5`` and, when the scale is known,
``relative_displacement >= 0.2``: the clauses of :data:`DRIFT_RULE` (thresholds in
:data:`DRIFT_THRESHOLDS`), which :func:`rule_checks` applies and reports print. With fewer
releases, drift cannot be told apart from albums that merely differ, so it is never flagged;
the score is still reported. Of 400 stable synthetic artists with album-to-album variation
(7 albums of 3 tracks each) the rule flagged none (``tests/test_evolution.py``); a perfectly
monotone but random ordering of 5 later releases happens by chance 1 time in 120.

Collection-wide: per-year centroids, their distance from the first year's and from the
previous year's centroid, the mean genre probabilities per year, and (with a saved map) the
centroid's position on the map: the year's mean *embedding* placed with the map's own transform
(:func:`melodex.analysis.mapping.place_points`), never the mean of 2-D positions, which for a
year spread over two clusters lands in the empty space between them.
"""

from __future__ import annotations

import itertools
import logging
import math
from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
import pandas as pd
from scipy.stats import rankdata
from scipy.stats import t as student_t

from melodex.analysis.mapping import map_positions, place_points
from melodex.analysis.releases import (  # noqa: F401  (release_keys and friends are part of this API)
    UPLOAD_DATE_SOURCES,
    dated_releases,
    fractional_year,
    release_dates,
    release_keys,
    undated_releases,
)
from melodex.analysis.similarity import normalize_rows

log = logging.getLogger(__name__)

DRIFT_THRESHOLDS = {"min_releases": 5, "spearman": 0.6, "p_value": 0.05, "displacement_ratio": 1.5,
                    "relative_displacement": 0.2}
# (ArtistDrift field, comparison, threshold key): every clause must hold; relative_displacement
# only when the collection's scale is known (it is nan otherwise)
DRIFT_RULE = (("n_releases", ">=", "min_releases"), ("spearman", ">=", "spearman"), ("p_value", "<", "p_value"),
              ("displacement_ratio", ">=", "displacement_ratio"),
              ("relative_displacement", ">=", "relative_displacement"))
OPTIONAL_CLAUSES = ("relative_displacement",)
BOOTSTRAP_RESAMPLES = 400  # resamples behind slope_ci_low/high
BOOTSTRAP_SEED = 0
DEFAULT_OUT = "melodex_outputs/evolution"


@dataclass(frozen=True)
class ArtistDrift:
    """The drift score of one artist (see the module docstring for each field)."""

    artist: str
    artist_id: str | None
    n_tracks: int
    n_releases: int
    first_date: str
    last_date: str
    spearman: float
    p_value: float
    track_spearman: float
    slope_per_year: float
    displacement: float
    step: float
    displacement_ratio: float
    relative_displacement: float
    drifting: bool
    n_undated_releases: int = 0  # releases without a release date: listed apart, not scored
    slope_ci_low: float = float("nan")  # 95% bootstrap interval of slope_per_year (see bootstrap_slope)
    slope_ci_high: float = float("nan")


def rule_checks(values: Mapping[str, float]) -> list[tuple[str, float, str, float, bool | None]]:
    """Each clause of :data:`DRIFT_RULE` for ``values`` (an ArtistDrift's fields):
    (field, value, comparison, threshold, met); ``met`` is None for an optional clause whose
    value is nan (not applied). An artist is drifting when no clause has ``met`` False."""

    out = []
    for name, op, key in DRIFT_RULE:
        value, threshold = float(values[name]), DRIFT_THRESHOLDS[key]
        met: bool | None = bool(value >= threshold if op == ">=" else value < threshold)
        if np.isnan(value) and name in OPTIONAL_CLAUSES:
            met = None
        out.append((name, value, op, threshold, met))
    return out


def rule_text() -> str:
    """The drifting rule in words, from :data:`DRIFT_RULE` and :data:`DRIFT_THRESHOLDS`."""
    clauses = [f"{name} {op} {DRIFT_THRESHOLDS[key]:g}" for name, op, key in DRIFT_RULE]
    optional = ", ".join(OPTIONAL_CLAUSES)
    return (f"drifting = {' and '.join(clauses)} ({optional} only when the collection's scale is known; "
            "n_releases counts releases with a release date)")


def unit(x: np.ndarray) -> np.ndarray:
    return normalize_rows(x)


def cosine_distance(a: np.ndarray, b: np.ndarray) -> np.ndarray | float:
    """1 - cosine similarity between vectors or rows of ``a`` and vector ``b`` (zero vectors: 1)."""

    a, b = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
    na = np.linalg.norm(a, axis=-1)
    nb = np.linalg.norm(b)
    denom = np.where(na * nb > 0, na * nb, 1.0)
    return 1.0 - (a @ b) / denom


def artist_rows(tracks: pd.DataFrame, artist: str) -> np.ndarray:
    """Row numbers of ``artist``: matched by name (any letter case), by artist_id, or as one of the
    several artists a track credits (the ``artists`` list column: ``Jonsi`` finds a track tagged
    ``Sigur Ros; Jonsi``)."""

    wanted = artist.casefold()
    name = tracks["artist"].astype("string").str.casefold()
    hits = (name == wanted).fillna(False) | (tracks["artist_id"].astype("string") == artist).fillna(False)
    if "artists" in tracks.columns:
        credited = [isinstance(values, (list, tuple, np.ndarray)) and any(str(v).casefold() == wanted for v in values)
                    for values in tracks["artists"].tolist()]
        hits = hits | pd.Series(credited, index=tracks.index)
    return np.flatnonzero(hits.to_numpy(dtype=bool))


def namesakes(tracks: pd.DataFrame, artist: str) -> dict[str, int]:
    """artist_id -> tracks, for the artists whose name is ``artist`` (any letter case) and who have an
    artist_id; two or more entries mean the name alone stands for several artists."""
    name = tracks["artist"].astype("string").str.casefold()
    same = (name == artist.casefold()).fillna(False).to_numpy(dtype=bool)
    counts = tracks["artist_id"][same].dropna().astype(str).value_counts()
    return {str(k): int(v) for k, v in sorted(counts.items())}


def artist_timeline(tracks: pd.DataFrame, embeddings: np.ndarray, rows: np.ndarray,
                    coords: pd.DataFrame | None = None) -> pd.DataFrame:
    """The tracks of one artist's dated releases in date order, with their drift measures.

    ``rows`` index ``tracks``/``embeddings`` [shape=(N, 512)]. Columns: track_id, title, album,
    release_id, date, t (fractional year: the track's release date, else its release's),
    release (0 = first work, releases in order of their date), dist_first, release_dist_prev,
    release_dist_first, predicted_label, the ``prob:<label>`` columns, and x, y when ``coords``
    (a saved map) is given. Tracks of releases without a release date are left out
    (:func:`undated_releases` lists them).
    """

    part = tracks.iloc[rows].copy()
    keys, t, dated = dated_releases(part)
    keep = np.array([key in dated for key in keys], dtype=bool)
    part["release_id"] = keys
    part["t"] = [value if np.isfinite(value) else dated.get(key, np.nan) for key, value in zip(keys, t)]
    part, vecs = part[keep], unit(embeddings[rows[keep]]).astype(np.float64)
    order = np.lexsort((part["track_id"].astype(str).to_numpy(), part["t"].to_numpy(dtype=float)))
    part, vecs = part.iloc[order].reset_index(drop=True), vecs[order]
    ordered = sorted(set(part["release_id"]), key=lambda key: (dated[key], key))  # releases by their date
    release_of = {key: i for i, key in enumerate(ordered)}
    release = np.asarray([release_of[key] for key in part["release_id"]], dtype=int)
    part["release"] = release
    centroids = np.stack([vecs[release == r].mean(axis=0) for r in range(len(release_of))]) if len(part) else \
        np.zeros((0, vecs.shape[1] if vecs.ndim == 2 else 512))
    dist_first = np.full(len(part), np.nan)
    if len(part):
        first = release == 0
        dist_first[~first] = cosine_distance(vecs[~first], centroids[0])
        members = np.flatnonzero(first)
        if members.size > 1:
            total = vecs[members].sum(axis=0)
            for i in members:  # leave-one-out: a first-work track against the rest of the first work
                dist_first[i] = cosine_distance(vecs[i], (total - vecs[i]) / (members.size - 1))
    part["dist_first"] = dist_first
    rel_first = np.array([cosine_distance(c, centroids[0]) for c in centroids]) if len(centroids) else np.zeros(0)
    rel_prev = np.array([np.nan] + [cosine_distance(centroids[i], centroids[i - 1]) for i in range(1, len(centroids))])
    part["release_dist_prev"] = rel_prev[release] if len(part) else []
    part["release_dist_first"] = rel_first[release] if len(part) else []
    if coords is not None:
        part = part.merge(coords[["track_id", "x", "y"]], on="track_id", how="left")
    columns = ["track_id", "title", "album", "release_id", "date", "t", "release", "dist_first", "release_dist_prev",
               "release_dist_first", "predicted_label"] + [c for c in part.columns if c.startswith("prob:")]
    columns += [c for c in ("x", "y") if c in part.columns]
    return part[columns]


def spearman_one_sided(x: np.ndarray, y: np.ndarray, *, exact_max: int = 8) -> tuple[float, float]:
    """Spearman's rho of ``x`` vs ``y`` and the one-sided p-value of rho >= observed.

    Exact over all permutations for up to ``exact_max`` points (ties get average ranks),
    otherwise the usual t approximation. (nan, nan) for fewer than 3 points or constant input.
    """

    x, y = np.asarray(x, dtype=float), np.asarray(y, dtype=float)
    n = len(x)
    if n < 3 or np.ptp(x) == 0 or np.ptp(y) == 0:
        return float("nan"), float("nan")
    rx, ry = rankdata(x), rankdata(y)
    rx, ry = rx - rx.mean(), ry - ry.mean()
    scale = np.sqrt((rx ** 2).sum() * (ry ** 2).sum())
    rho = float(rx @ ry / scale)
    if n <= exact_max:
        perms = np.array(list(itertools.permutations(range(n))))
        null = ry[perms] @ rx / scale
        return rho, float(np.mean(null >= rho - 1e-12))
    if rho >= 1:
        return rho, 0.0
    stat = rho * np.sqrt((n - 2) / (1 - rho ** 2))
    return rho, float(student_t.sf(stat, n - 2))


def collection_scale(embeddings: np.ndarray, *, pairs: int = 4000, seed: int = 0) -> float:
    """Median cosine distance between random pairs of distinct rows: how far apart two songs are."""

    n = len(embeddings)
    if n < 2:
        return float("nan")
    rng = np.random.default_rng(seed)
    a = rng.integers(0, n, pairs)
    b = (a + rng.integers(1, n, pairs)) % n  # never the same row
    u = unit(np.asarray(embeddings, dtype=np.float64))
    return float(np.median(1.0 - np.einsum("ij,ij->i", u[a], u[b])))


def _slope(t: np.ndarray, d: np.ndarray) -> float:
    return float(np.polyfit(t, d, 1)[0]) if len(t) >= 2 and np.ptp(t) > 0 else float("nan")


def _slopes(t: np.ndarray, d: np.ndarray, samples: list[np.ndarray]) -> np.ndarray:
    """The least-squares slope of ``d`` against ``t`` over the rows of each sample, all at once
    (a Python-level ``polyfit`` per sample was 50 ms an artist); NaN where ``t`` does not vary."""
    rows = np.concatenate(samples)
    lengths = np.array([len(s) for s in samples])
    starts = np.concatenate([[0], np.cumsum(lengths)[:-1]])
    n = lengths.astype(float)
    tt, dd = t[rows], d[rows]
    spread = tt - np.repeat(np.add.reduceat(tt, starts) / n, lengths)
    var = np.add.reduceat(spread * spread, starts)
    cov = np.add.reduceat(spread * (dd - np.repeat(np.add.reduceat(dd, starts) / n, lengths)), starts)
    flat = np.maximum.reduceat(tt, starts) == np.minimum.reduceat(tt, starts)
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(flat | (n < 2), np.nan, cov / var)


def bootstrap_slope(timeline: pd.DataFrame, *, resamples: int = BOOTSTRAP_RESAMPLES,
                    seed: int = BOOTSTRAP_SEED) -> tuple[float, float]:
    """The 95% percentile interval of ``slope_per_year`` over hierarchical bootstrap resamples.

    Each resample draws the later releases with replacement (as many as there are), then within
    each drawn release its tracks with replacement, and refits the slope of ``dist_first``
    against the date: the interval reflects both which releases and which tracks happen to
    exist. (nan, nan) when the slope itself is undefined; resamples whose dates do not vary
    are skipped.
    """

    t = timeline["t"].to_numpy(dtype=float)
    d = timeline["dist_first"].to_numpy(dtype=float)
    release = timeline["release"].to_numpy(dtype=int)
    later = np.flatnonzero(release > 0)
    if not np.isfinite(_slope(t[later], d[later])):
        return float("nan"), float("nan")
    groups = [later[release[later] == r] for r in np.unique(release[later])]
    members = np.concatenate(groups)  # the releases' rows one after another
    sizes = np.array([g.size for g in groups])
    firsts = np.concatenate([[0], np.cumsum(sizes)[:-1]])
    rng = np.random.default_rng(seed)
    drawn_rows = []
    for _ in range(resamples):
        drawn = rng.integers(0, len(groups), len(groups))
        # each drawn release's tracks: the numbers that rng.choice(group, size, replace=True) draws
        # release by release, in one call (tests/test_evolution.py checks the two agree)
        within = rng.integers(0, np.repeat(sizes[drawn], sizes[drawn]))
        drawn_rows.append(members[np.repeat(firsts[drawn], sizes[drawn]) + within])
    slopes = _slopes(t - t[later].mean(), d, drawn_rows)  # centred: the slope is the same, the sums exact
    if np.isfinite(slopes).sum() < resamples // 2:
        return float("nan"), float("nan")
    low, high = np.nanpercentile(slopes, [2.5, 97.5])
    return float(low), float(high)


def drift_score(timeline: pd.DataFrame, artist: str, artist_id: str | None = None, *,
                scale: float | None = None, n_undated: int = 0) -> ArtistDrift:
    """The :class:`ArtistDrift` of a timeline from :func:`artist_timeline`.

    ``scale`` is the collection's :func:`collection_scale`; without it the size criterion is
    not applied (``relative_displacement`` is nan). ``n_undated`` is the number of the
    artist's releases without a release date (reported, not scored).
    """

    t = timeline["t"].to_numpy(dtype=float)
    d = timeline["dist_first"].to_numpy(dtype=float)
    release = timeline["release"].to_numpy(dtype=int)
    later = release > 0
    n_releases = int(release.max() + 1) if len(release) else 0
    rel_t = np.array([t[release == r].mean() for r in range(1, n_releases)])
    rel_d = np.array([d[release == r].mean() for r in range(1, n_releases)])
    rho, p = spearman_one_sided(rel_t, rel_d)
    track_rho, _ = spearman_one_sided(t[later], d[later], exact_max=0)
    slope = _slope(t[later], d[later])
    ci_low, ci_high = bootstrap_slope(timeline)
    per_release = timeline.groupby("release")[["release_dist_first", "release_dist_prev"]].first()
    displacement = float(per_release["release_dist_first"].iloc[-1]) if n_releases >= 2 else float("nan")
    steps = per_release["release_dist_prev"].dropna()
    step = float(steps.median()) if len(steps) else float("nan")
    ratio = displacement / step if step > 0 else float("nan")
    relative = displacement / scale if scale and scale > 0 else float("nan")
    values = {"n_releases": n_releases, "spearman": rho, "p_value": p, "displacement_ratio": ratio,
              "relative_displacement": relative}
    drifting = all(met is not False for *_, met in rule_checks(values))
    dates = timeline["date"].astype(str)
    return ArtistDrift(artist=artist, artist_id=artist_id, n_tracks=len(timeline), n_releases=n_releases,
                       first_date=dates.iloc[0] if len(dates) else "", last_date=dates.iloc[-1] if len(dates) else "",
                       spearman=rho, p_value=p, track_spearman=track_rho, slope_per_year=slope,
                       displacement=displacement, step=step, displacement_ratio=float(ratio),
                       relative_displacement=float(relative), drifting=drifting, n_undated_releases=int(n_undated),
                       slope_ci_low=ci_low, slope_ci_high=ci_high)


ArtistKey = tuple[str, str | None]  # (name, artist_id): artists of one name are told apart by their id


def artist_key(name: str, artist_id: Any) -> ArtistKey:
    """The key of :func:`artist_groups` for an artist's name and id (None, NaN or "" for none)."""
    missing = artist_id is None or (isinstance(artist_id, float) and math.isnan(artist_id)) or artist_id == ""
    return str(name), None if missing else str(artist_id)


def artist_groups(tracks: pd.DataFrame) -> dict[ArtistKey, np.ndarray]:
    """(artist name, artist_id) -> rows, for tracks with an artist: one group per artist_id, and
    for tracks without one, per exact name. Two artists of one name are two groups."""

    named = tracks["artist"].notna().to_numpy(dtype=bool)
    ids = tracks["artist_id"].astype(object).where(tracks["artist_id"].notna(), None)
    key = pd.Series([f"id:{i}" if i is not None else f"name:{a}" for i, a in zip(ids, tracks["artist"].astype(object))])
    groups: dict[ArtistKey, np.ndarray] = {}
    for _, rows in key[named].groupby(key[named]).groups.items():
        rows = np.asarray(rows, dtype=int)
        groups[artist_key(tracks["artist"].iloc[rows[0]], ids.iloc[rows[0]])] = rows
    return groups


def all_artists(tracks: pd.DataFrame, embeddings: np.ndarray, *, min_tracks: int = 3) -> pd.DataFrame:
    """The drift score of every artist with at least ``min_tracks`` tracks of dated releases,
    most drifting first."""

    scale = collection_scale(embeddings)
    scores = []
    for (name, artist_id), rows in artist_groups(tracks).items():
        if rows.size < min_tracks:
            continue
        timeline = artist_timeline(tracks, embeddings, rows)
        if len(timeline) < min_tracks:
            continue
        n_undated = len(undated_releases(tracks, rows))
        scores.append(asdict(drift_score(timeline, name, artist_id, scale=scale, n_undated=n_undated)))
    columns = list(ArtistDrift.__dataclass_fields__)
    frame = pd.DataFrame(scores, columns=columns)
    if len(frame):
        frame = frame.sort_values(["drifting", "spearman"], ascending=[False, False], na_position="last")
    return frame.reset_index(drop=True)


def year_centroids(tracks: pd.DataFrame, embeddings: np.ndarray, coords: pd.DataFrame | None = None, *,
                   place: Callable[[np.ndarray], np.ndarray] | None = None) -> pd.DataFrame:
    """Per year: n_tracks, cosine distance of the year's centroid from the first year's
    (``dist_first``) and from the previous year's (``dist_prev``), mean genre probabilities,
    and, when a map is given, the centroid's map position (x, y).

    The position is the year's mean embedding placed on the map by ``place`` (for a store,
    :func:`melodex.analysis.mapping.place_on_map`), by default :func:`place_points` over the
    tracks that ``coords`` positions; never the mean of the tracks' 2-D positions.
    """

    years = tracks["year"].to_numpy(dtype=float, na_value=np.nan)
    valid = sorted({int(y) for y in years[np.isfinite(years)]})
    vecs = unit(embeddings).astype(np.float64)
    probs = [c for c in tracks.columns if c.startswith("prob:")]
    rows, centroids = [], []
    for year in valid:
        mask = years == year
        centroid = vecs[mask].mean(axis=0)
        row = {"year": year, "n_tracks": int(mask.sum()),
               "dist_first": float(cosine_distance(centroid, centroids[0])) if centroids else 0.0,
               "dist_prev": float(cosine_distance(centroid, centroids[-1])) if centroids else float("nan")}
        centroids.append(centroid)
        row.update({c: float(tracks.loc[mask, c].mean()) for c in probs})
        rows.append(row)
    frame = pd.DataFrame(rows, columns=["year", "n_tracks", "dist_first", "dist_prev", *probs])
    if coords is not None and len(frame):
        if place is None:
            place = _placer(tracks, embeddings, coords)
        xy = np.asarray(place(np.asarray(centroids, dtype=np.float32)), dtype=np.float64)
        frame["x"], frame["y"] = xy[:, 0], xy[:, 1]
    elif coords is not None:
        frame["x"], frame["y"] = [], []
    return frame


def _placer(tracks: pd.DataFrame, embeddings: np.ndarray, coords: pd.DataFrame) -> Callable[[np.ndarray], np.ndarray]:
    """Places embeddings on the map that ``coords`` gives for ``tracks`` (the map's default settings)."""

    positions = map_positions(tracks["track_id"], coords)
    on_map = ~np.isnan(positions[:, 0])
    ref, pos = np.asarray(embeddings, dtype=np.float32)[on_map], positions[on_map]
    return lambda new: place_points(ref, pos, new, n_neighbors=min(15, max(len(ref), 1)))
