"""Artist-level analysis against its baselines: the map page's artist distances, the drift
bootstrap behind every artist's score, and ``evolution --all``'s artist pages.

    python benchmarks/bench_artists.py                        # 3,000 and 9,000 tracks of 300 artists
    python benchmarks/bench_artists.py --tracks 3000 --pages 32

Both are measured in this process, with the baseline run on the same data:

* **artist matrix**: :func:`melodex.analysis.artists.artist_distance_matrix` (one block of dot
  products per artist against every later artist, summed per artist) against the same matrix
  built from :func:`~melodex.analysis.artists.energy_distance`, one call per pair of artists (what
  the page did before). Synthetic 512-d embeddings, ReLU'd like the CNN's, artists of 1 to
  ``2 * tracks / artists`` tracks; the largest difference between the two is printed too (float32
  dot products: a track sits ~3e-4 from itself, so values near 0 differ most);
* **drift bootstrap**: :func:`melodex.analysis.evolution.bootstrap_slope` (the 400 resamples' slopes
  fitted at once) against the plain loop it replaced (``rng.choice`` per drawn release and
  ``np.polyfit`` per resample), on ``--artists`` synthetic timelines of 3-10 releases of 1-4
  tracks; the largest difference between the intervals is printed;
* **artist pages**: :func:`melodex.analysis.evolution_report.write_collection_report` with one
  process against every usable core (the default): ``--pages`` artists, each with 6 dated
  releases, on a saved map. The files are compared byte for byte.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from melodex.analysis.artists import artist_distance_matrix, artist_rows, energy_distance
from melodex.analysis.collection import Collection
from melodex.util.processes import usable_cores


def collection(n_tracks: int, n_artists: int, seed: int = 0) -> Collection:
    rng = np.random.default_rng(seed)
    sizes = rng.integers(1, max(2, 2 * n_tracks // n_artists), n_artists)
    sizes = np.maximum(1, np.round(sizes * n_tracks / sizes.sum())).astype(int)
    centres = rng.standard_normal((n_artists, 512))
    emb = np.concatenate([np.maximum(c + 0.7 * rng.standard_normal((s, 512)), 0) for c, s in zip(centres, sizes)])
    artists = np.repeat([f"Artist {a:03d}" for a in range(n_artists)], sizes)
    order = rng.permutation(len(artists))
    frame = pd.DataFrame({"track_id": [f"t{i}" for i in range(len(order))], "artist": artists[order],
                          "path": [f"/m/{i}.mp3" for i in range(len(order))]})
    return Collection.from_frame(frame, emb[order].astype(np.float32))


def per_pair_matrix(col: Collection, names: list[str]) -> np.ndarray:
    """The baseline: energy_distance called for every pair of artists."""
    groups = artist_rows(col)
    units = [col.unit[groups[a]] for a in names]
    matrix = np.zeros((len(names), len(names)))
    for i in range(len(names)):
        for j in range(i + 1, len(names)):
            matrix[i, j] = matrix[j, i] = energy_distance(units[i], units[j])
    return matrix


def bench_matrix(n_tracks: int, n_artists: int) -> dict:
    col = collection(n_tracks, n_artists)
    start = time.perf_counter()
    names, fast = artist_distance_matrix(col, max_artists=n_artists)
    blocks = time.perf_counter() - start
    start = time.perf_counter()
    slow = per_pair_matrix(col, names)
    pairs = time.perf_counter() - start
    return {"tracks": len(col), "artists": len(names), "blocks": blocks, "pairs": pairs,
            "max_diff": float(np.abs(fast - slow).max())}


def plain_bootstrap(timeline: pd.DataFrame, resamples: int, seed: int = 0) -> tuple[float, float]:
    """The baseline: one rng.choice per drawn release and one np.polyfit per resample."""
    t, d = timeline["t"].to_numpy(float), timeline["dist_first"].to_numpy(float)
    release = timeline["release"].to_numpy(int)
    later = np.flatnonzero(release > 0)
    groups = [later[release[later] == r] for r in np.unique(release[later])]
    rng = np.random.default_rng(seed)
    slopes = []
    for _ in range(resamples):
        drawn = rng.integers(0, len(groups), len(groups))
        rows = np.concatenate([rng.choice(groups[g], size=groups[g].size, replace=True) for g in drawn])
        slopes.append(np.polyfit(t[rows], d[rows], 1)[0] if np.ptp(t[rows]) > 0 else np.nan)
    if np.isfinite(slopes).sum() < resamples // 2:
        return float("nan"), float("nan")
    low, high = np.nanpercentile(slopes, [2.5, 97.5])
    return float(low), float(high)


def bench_bootstrap(n_artists: int) -> dict:
    from melodex.analysis.evolution import BOOTSTRAP_RESAMPLES, bootstrap_slope

    rng = np.random.default_rng(2)
    timelines = []
    for a in range(n_artists):
        sizes = rng.integers(1, 5, 3 + a % 8)
        rows = np.repeat(np.arange(sizes.size), sizes)
        timelines.append(pd.DataFrame({"t": 2000.5 + 1.3 * rows, "release": rows,
                                       "dist_first": 0.01 * rows + 0.05 * rng.random(rows.size)}))
    start = time.perf_counter()
    fast = [bootstrap_slope(t) for t in timelines]
    at_once = time.perf_counter() - start
    start = time.perf_counter()
    slow = [plain_bootstrap(t, BOOTSTRAP_RESAMPLES) for t in timelines]
    loop = time.perf_counter() - start
    diff = np.nanmax(np.abs(np.array(fast) - np.array(slow)))
    return {"artists": n_artists, "at_once": at_once, "loop": loop, "max_diff": float(diff)}


def bench_pages(pages: int) -> dict:
    from melodex.analysis.evolution import all_artists, artist_timeline, year_centroids
    from melodex.analysis.evolution import artist_rows as rows_of
    from melodex.analysis.evolution_report import write_collection_report
    from melodex.library.store import LibraryStore, TrackRecord

    rng = np.random.default_rng(1)
    records = []
    for a in range(pages):
        centre = np.abs(rng.standard_normal(512))
        for r in range(6):
            for k in range(2):
                records.append(TrackRecord(f"{a}-{r}-{k}", f"/m/{a}/{r}/{k}.mp3",
                                           np.maximum(centre + 0.5 * rng.standard_normal(512), 0),
                                           {"Folk": 0.5, "Pop": 0.5}, title=f"Song {r}.{k}", artist=f"Artist {a}",
                                           artist_id=str(100 + a), album=f"Album {r}", date=f"{2000 + 2 * r}-03-15",
                                           date_source="tags", source="manifest"))
    with tempfile.TemporaryDirectory() as tmp:
        store = LibraryStore(Path(tmp) / "lib")
        store.add(records)
        tracks, emb = store.tracks(), store.embeddings()
        coords = pd.DataFrame({"track_id": tracks["track_id"], "x": rng.random(len(tracks)),
                               "y": rng.random(len(tracks))})
        scores = all_artists(tracks, emb, min_tracks=3)
        years = year_centroids(tracks, emb, coords)
        timelines = {row.artist: artist_timeline(tracks, emb, rows_of(tracks, row.artist_id), coords)
                     for row in scores.itertuples()}
        seconds, files = {}, {}
        for workers in (1, usable_cores()):
            out = Path(tmp) / f"evo-{workers}"
            start = time.perf_counter()
            write_collection_report(out, scores, years, timelines, tracks, coords, workers=workers)
            seconds[workers] = time.perf_counter() - start
            files[workers] = {p.name: p.read_bytes() for p in out.iterdir()}
    cores = usable_cores()
    return {"pages": pages, "cores": cores, "one": seconds[1], "all": seconds[cores],
            "same": files[1] == files[cores]}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--tracks", type=int, nargs="+", default=[3000, 9000])
    parser.add_argument("--artists", type=int, default=300)
    parser.add_argument("--pages", type=int, default=24, help="artists with a page in the evolution run")
    args = parser.parse_args()
    print("artist distance matrix (the map page's artist view)\n")
    print(f"{'tracks':>7} {'artists':>7} {'per pair (s)':>13} {'blocks (s)':>11} {'speed-up':>9} {'max diff':>9}")
    for n in args.tracks:
        r = bench_matrix(n, args.artists)
        print(f"{r['tracks']:>7} {r['artists']:>7} {r['pairs']:>13.2f} {r['blocks']:>11.2f} "
              f"{r['pairs'] / r['blocks']:>8.1f}x {r['max_diff']:>9.1e}")
    r = bench_bootstrap(args.artists)
    print(f"\ndrift bootstrap ({r['artists']} artists): plain loop {r['loop']:.2f} s, at once {r['at_once']:.2f} s "
          f"({r['loop'] / r['at_once']:.1f}x); max difference {r['max_diff']:.1e}")
    if args.pages:
        r = bench_pages(args.pages)
        print(f"\nevolution --all artist pages: {r['pages']} pages, 1 process {r['one']:.1f} s, {r['cores']} processes "
              f"{r['all']:.1f} s ({r['one'] / r['all']:.2f}x); same bytes: {r['same']}")


if __name__ == "__main__":
    main()
