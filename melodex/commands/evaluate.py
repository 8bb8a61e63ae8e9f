"""How well a store's embeddings find tracks that belong together: top-10 neighbour agreement.

  melodex evaluate --store my_library
  melodex evaluate --store my_library --baseline-store my_mfcc_library --by artist release_id
  melodex evaluate --store demo_outputs/library --no-baseline --out report.json

For each label column (default: artist, release_id (the album), genre) it prints the share of
each track's 10 nearest neighbours (cosine) that carry the same label, beside chance (the
expected share for random neighbours, given how many tracks each label has) and beside the
no-training baseline, MFCC statistics (``melodex index --features mfcc-stats``) of the same
tracks. The baseline comes from --baseline-store (tracks matched by track_id), or is computed
from the stored files' audio when none is given (this decodes every file; --no-baseline skips
it; a store of MFCC statistics is its own baseline). Only tracks present in both take part, and
only those whose label is known count, as queries and as neighbours. Artists who share a name
but not an artist_id (FMA holds several) are different artists, as in ``similar``.
The report goes to --out (JSON) and the same name with .csv, both written atomically.
"""

from __future__ import annotations

import argparse
import logging
from pathlib import Path

from melodex.commands.options import add_batch_size, add_num_workers, add_store, positive_int
from melodex.constants import DECODE_WORKERS, DEFAULT_RETRIEVAL_REPORT, SEGMENT_BATCH
from melodex.errors import MelodexError

log = logging.getLogger(__name__)

DEFAULT_COLUMNS = ("artist", "release_id", "genre")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_store(parser)
    parser.add_argument("--baseline-store", "--baseline_store", dest="baseline_store", metavar="DIR",
                        help="a store of mfcc-stats vectors of the same tracks (default: computed from the audio)")
    parser.add_argument("--no-baseline", dest="baseline", action="store_false",
                        help="score the store's embeddings against chance only (nothing is decoded)")
    parser.add_argument("--by", nargs="+", default=list(DEFAULT_COLUMNS), metavar="COLUMN",
                        help=f"label columns to score (default: {' '.join(DEFAULT_COLUMNS)}; those the store lacks "
                             "are skipped)")
    parser.add_argument("-k", "--k", type=positive_int, default=10, help="neighbours per track (default 10)")
    parser.add_argument("--out", default=DEFAULT_RETRIEVAL_REPORT, metavar="FILE.json",
                        help=f"the JSON report; the CSV goes beside it (default {DEFAULT_RETRIEVAL_REPORT})")
    add_batch_size(parser, default=SEGMENT_BATCH, what="segments per batch when computing the baseline")
    add_num_workers(parser, default=DECODE_WORKERS,
                    what=f"decoding worker processes for the baseline (default: {DECODE_WORKERS})")


def run(args: argparse.Namespace) -> int:
    from melodex.analysis.retrieval import format_table, label_columns, retrieval_table, write_report
    from melodex.commands.options import open_store
    from melodex.library.mfcc_stats import is_stats_stamp

    if args.baseline_store and not args.baseline:
        raise MelodexError("give --baseline-store or --no-baseline, not both")
    store = open_store(args.store)
    tracks, vectors = store.tracks(), store.embeddings()
    if len(tracks) < 2:
        raise MelodexError(f"{store.root}: holds {len(tracks)} track(s); scoring neighbours needs at least 2")
    columns = label_columns(tracks, args.by)
    if not columns:
        raise MelodexError(f"{store.root}: none of the columns {', '.join(args.by)} has two known values; "
                           "index with metadata (tags, --fma-metadata or --manifest)")
    models = list(store.models().values())
    name = "mfcc-stats" if models and is_stats_stamp(models[0]) else "store"
    embeddings = {name: vectors}
    if args.baseline and name != "mfcc-stats":
        tracks, embeddings = _with_baseline(args, store, tracks, vectors, name)
    rows = retrieval_table(embeddings, tracks, columns, k=args.k)
    print(format_table(rows))
    csv_path = Path(args.out).with_suffix(".csv")
    write_report(rows, args.out, csv_path, store=str(store.root), model=[m.describe() for m in models],
                 baseline=_baseline_source(args, name), tracks=len(tracks))
    log.info("wrote %s and %s", args.out, csv_path)
    return 0


def _baseline_source(args: argparse.Namespace, name: str) -> str | None:
    if name == "mfcc-stats" or not args.baseline:
        return None
    return str(args.baseline_store) if args.baseline_store else "mfcc-stats computed from the stored files"


def _with_baseline(args: argparse.Namespace, store, tracks, vectors, name: str):
    """(tracks, {name: vectors, "mfcc-stats": baseline}) restricted to the tracks both have."""
    import numpy as np

    from melodex.commands.options import open_store
    from melodex.library.mfcc_stats import is_stats_stamp, stats_vectors

    if args.baseline_store:
        other = open_store(args.baseline_store)
        ids = other.tracks()["track_id"].astype(str).tolist()
        where = {track_id: row for row, track_id in enumerate(ids)}
        mine = [row for row, track_id in enumerate(tracks["track_id"].astype(str)) if track_id in where]
        base = other.embeddings()[[where[str(tracks["track_id"].iloc[row])] for row in mine]]
        rows = np.asarray(mine, dtype=np.int64)
        stamps = list(other.models().values())
        label = "mfcc-stats" if stamps and is_stats_stamp(stamps[0]) else f"baseline ({other.root})"
        if len(rows) < len(tracks):
            log.warning("%d of the %d track(s) are not in %s; they are left out", len(tracks) - len(rows),
                        len(tracks), other.root)
    else:
        label = "mfcc-stats"

        log.info("computing the mfcc-stats baseline of %d stored file(s) (--baseline-store or --no-baseline "
                 "skip this)", len(tracks))
        base, rows, failed = stats_vectors(tracks["path"].astype(str).tolist(), batch_size=args.batch_size,
                                           num_workers=args.num_workers)
        for path, reason in failed:
            log.warning("baseline: left out %s: %s", path, reason)
    if len(rows) < 2:
        raise MelodexError(f"{store.root}: fewer than 2 tracks have a baseline vector; nothing to compare")
    kept = tracks.iloc[rows].reset_index(drop=True)
    return kept, {name: vectors[rows], label: base}
