"""How an artist's music, or the whole collection, moves through the embedding space over time.

  melodex evolution --artist "Nina Blue"        # one artist: report.html, drift.png, tracks.csv
  melodex evolution --all --min-tracks 5        # every artist with >= 5 dated tracks, ranked

An artist's dated tracks are grouped into releases and compared with the first one: the drift
score (Spearman correlation of release date and distance from the first work, its one-sided
p-value, the displacement against the collection's scale) and the rule that flags an artist as
drifting are written in the report, with the numbers behind them. Collection-wide (--all):
per-year centroids and their distances, the genre mix per year, the centroids placed on the map
when one is saved, and a page with figures for every artist with at least two dated releases.
The report's glossary explains every measure.
"""

from __future__ import annotations

import argparse
import functools
import logging
from pathlib import Path

from melodex.commands.options import add_num_workers, add_store, non_negative_int, positive_int
from melodex.constants import DEFAULT_ARTIST_PAGES, DEFAULT_EVOLUTION_DIR
from melodex.errors import MelodexError

log = logging.getLogger(__name__)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    who = parser.add_mutually_exclusive_group(required=True)
    who.add_argument("--artist", metavar="NAME", help="one artist, by name (any letter case) or artist_id")
    who.add_argument("--all", action="store_true", help="every artist with enough dated tracks, plus the collection by year")
    add_store(parser)
    parser.add_argument("--out", default=DEFAULT_EVOLUTION_DIR, metavar="DIR",
                        help=f"output folder (default {DEFAULT_EVOLUTION_DIR})")
    parser.add_argument("--min-tracks", "--min_tracks", dest="min_tracks", type=positive_int, default=3,
                        help="with --all: dated tracks an artist needs (default 3)")
    parser.add_argument("--artist-pages", "--artist_pages", dest="artist_pages", type=non_negative_int,
                        default=DEFAULT_ARTIST_PAGES, metavar="N",
                        help="with --all: write a page with figures for the N most drifting artists with at least "
                             "two dated releases, drifting ones always included (a page takes about half a second "
                             f"of one core; 0: every artist; default {DEFAULT_ARTIST_PAGES})")
    add_num_workers(parser, default=None, what="with --all: processes drawing the artist pages (default: one per "
                                               "usable CPU core; 0 or 1: this process alone)")


def run(args: argparse.Namespace) -> int:
    import numpy as np
    import pandas as pd
    from tqdm import tqdm

    from melodex.analysis import evolution_report as report
    from melodex.analysis.evolution import (
        all_artists,
        artist_groups,
        artist_key,
        artist_rows,
        artist_timeline,
        collection_scale,
        drift_score,
        namesakes,
        undated_releases,
        year_centroids,
    )
    from melodex.analysis.mapping import place_on_map
    from melodex.commands.options import open_store

    store = open_store(args.store)
    tracks = store.tracks()
    if len(tracks) == 0:
        raise MelodexError(f"the store at {store.root} is empty; run 'melodex index' first")
    if args.artist and len(same := namesakes(tracks, args.artist)) > 1:
        listed = ", ".join(f"{artist_id} ({count} tracks)" for artist_id, count in same.items())
        raise MelodexError(f"{args.artist!r} names {len(same)} artists in the store at {store.root} (artist_id "
                           f"{listed}): give one with --artist ARTIST_ID")
    rows = artist_rows(tracks, args.artist) if args.artist else None
    if rows is not None and rows.size == 0:
        raise MelodexError(f"no artist {args.artist!r} in the store at {store.root}"
                           f"{_closest_artists(args.artist, tracks['artist'])}")
    embeddings, coords = store.embeddings(), store.coordinates()
    if coords is None:
        log.info("no map saved in %s: trajectories on the map are left out (run 'melodex map')", store.root)
    out = Path(args.out)
    if rows is not None:
        name, artist_id = str(tracks["artist"].iloc[rows[0]]), tracks["artist_id"].iloc[rows[0]]
        timeline, undated = artist_timeline(tracks, embeddings, rows, coords), undated_releases(tracks, rows)
        if len(timeline) == 0:
            raise MelodexError(f"{name}: none of the artist's {rows.size} track(s) has a release date")
        score = drift_score(timeline, name, None if pd.isna(artist_id) else str(artist_id),
                            scale=collection_scale(embeddings), n_undated=len(undated))
        files = report.write_artist_report(out, score, timeline, tracks, coords, undated)
        log.info("%s: %d dated track(s), spearman %.2f, drifting=%s; wrote %s", name, score.n_tracks,
                 score.spearman, score.drifting, ", ".join(str(f) for f in files))
        return 0
    scores = all_artists(tracks, embeddings, min_tracks=args.min_tracks)
    years = year_centroids(tracks, embeddings, coords,
                           place=None if coords is None else functools.partial(place_on_map, store))
    paged = scores[scores["n_releases"] >= report.FIGURE_MIN_RELEASES]  # most drifting first
    if args.artist_pages and len(paged) > args.artist_pages:
        keep = paged["drifting"].to_numpy() | (np.arange(len(paged)) < args.artist_pages)
        log.info("pages for %d of %d artists with 2+ dated releases (--artist-pages 0 writes all)",
                 int(keep.sum()), len(paged))
        paged = paged[keep]
    groups = artist_groups(tracks)  # the tracks each score was computed from
    timelines = {}
    for row in paged.itertuples():
        key = artist_key(row.artist, row.artist_id)
        timelines[key] = artist_timeline(tracks, embeddings, groups[key], coords)
    with tqdm(total=len(timelines), desc="artist pages", unit="artist", disable=True if getattr(args, "quiet", False) else None) as bar:
        files = report.write_collection_report(out, scores, years, timelines, tracks, coords, progress=bar,
                                               workers=1 if args.num_workers == 0 else args.num_workers)
    log.info("%d artist(s) scored, %d drifting; %d year(s); wrote %d files to %s (open %s)", len(scores),
             int(scores["drifting"].sum()), len(years), len(files), out, files[0])
    return 0


def _closest_artists(name: str, artists) -> str:
    """"; did you mean 'A', 'B'?" with the stored artist names closest to ``name`` (difflib, and
    names that contain it), or "" when none is close."""
    import difflib

    names = sorted({str(a) for a in artists.dropna().unique()})
    lowered = {n.lower(): n for n in names}
    close = difflib.get_close_matches(name.lower(), list(lowered), n=3, cutoff=0.6)
    close += [n for n in lowered if name.lower() in n and n not in close]
    picked = [lowered[n] for n in close][:5]
    return f"; did you mean {', '.join(repr(n) for n in picked)}?" if picked else ""
