"""Groups of tracks in a store that are the same recording; a CSV report, nothing deleted.

  melodex duplicates --store my_library
  melodex duplicates --store my_library --report dupes.csv --max-distance 0.001

Two tracks are one recording (the same audio in another format or bit rate, or a trimmed copy)
when their embeddings are almost identical (cosine distance at most --max-distance) and the
store's durations agree to within --duration-tolerance seconds. The genre embedding is not an
audio fingerprint: another take of a piece can sound as close to it as a re-encode, so it is the
duration that keeps it apart, and tracks that all last the same (short demo clips) can be grouped
wrongly. Tracks whose duration the store does not know are never grouped. Files are only listed
in the report, never touched.
"""

from __future__ import annotations

import argparse

from melodex.commands.options import add_store, positive_seconds
from melodex.constants import DUPLICATE_DISTANCE, DURATION_TOLERANCE


def _fraction(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"must be a number, not {text!r}") from None
    if not 0 <= value < 1:
        raise argparse.ArgumentTypeError(f"must be from 0 to below 1, not {text}")
    return value


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_store(parser)
    parser.add_argument("--report", metavar="CSV", default=None,
                        help="where to write the CSV report (default: STORE/duplicates.csv)")
    parser.add_argument("--max-distance", "--max_distance", dest="max_distance", type=_fraction,
                        default=DUPLICATE_DISTANCE, metavar="D",
                        help=f"largest cosine distance between copies (default {DUPLICATE_DISTANCE})")
    parser.add_argument("--duration-tolerance", "--duration_tolerance", dest="tolerance", type=positive_seconds,
                        default=DURATION_TOLERANCE, metavar="SECONDS",
                        help=f"how much the copies' durations may differ (default {DURATION_TOLERANCE} s)")


def run(args: argparse.Namespace) -> int:
    from pathlib import Path

    from melodex.analysis.collection import Collection
    from melodex.analysis.duplicates import find_duplicates, write_report
    from melodex.commands.options import open_store

    store = open_store(args.store)
    table = find_duplicates(Collection.from_store(store), max_distance=args.max_distance, tolerance=args.tolerance)
    report = write_report(table, Path(args.report) if args.report else store.root / "duplicates.csv")
    groups = table["group"].nunique() if len(table) else 0
    for number, members in table.groupby("group", sort=True):
        print(f"group {number}:")
        for row in members.itertuples(index=False):
            print(f"  {row.track_id}  {row.path}  ({row.duration} s, distance {row.distance:.5f})")
    print(f"{groups} group(s), {len(table)} tracks; report written to {report} (nothing deleted)")
    return 0
