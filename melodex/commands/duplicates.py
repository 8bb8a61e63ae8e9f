"""Groups of tracks in a store that are the same recording; a CSV report, nothing deleted.

  melodex duplicates --store my_library
  melodex duplicates --store my_library --fingerprint      # a store indexed before fingerprints
  melodex duplicates --store my_library --report dupes.csv --min-agreement 0.9

Two tracks are one recording (the same audio in another format or bit rate, or a copy with
seconds cut off) when their embeddings lie close (cosine distance at most --max-distance: the
candidates), their audio fingerprints agree (Chromaprint, stored by 'melodex index': their bits agree
beyond chance, Cohen's kappa at least --min-agreement, at a shift that their durations explain,
give or take --duration-tolerance seconds). Another take of a piece, or another clip of one
artist in one style, can lie as close in the embedding as a re-encode; the fingerprint tells them
apart. A store indexed before fingerprints were stored (or from JSONL) has none: the command
says so and stops; --fingerprint decodes the first 30 s of each such track from its stored path
and stores its fingerprint first. Files are only listed in the report, never touched.
"""

from __future__ import annotations

import argparse

from melodex.commands.options import add_store, positive_seconds
from melodex.constants import DUPLICATE_CANDIDATE_DISTANCE, DURATION_TOLERANCE
from melodex.constants import DUPLICATE_MATCH_AGREEMENT as MATCH_AGREEMENT


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
                        default=DUPLICATE_CANDIDATE_DISTANCE, metavar="D",
                        help="largest embedding (cosine) distance between candidate copies, which the "
                             f"fingerprints then judge (default {DUPLICATE_CANDIDATE_DISTANCE})")
    parser.add_argument("--min-agreement", "--min_agreement", dest="min_agreement", type=_fraction,
                        default=MATCH_AGREEMENT, metavar="SHARE",
                        help=f"least agreement (Cohen's kappa over the fingerprint bits) between copies (default {MATCH_AGREEMENT})")
    parser.add_argument("--fingerprint", action="store_true",
                        help="first fingerprint the stored tracks that have none (decodes their first 30 s)")
    parser.add_argument("--duration-tolerance", "--duration_tolerance", dest="tolerance", type=positive_seconds,
                        default=DURATION_TOLERANCE, metavar="SECONDS",
                        help="how far the copies' durations may differ beyond what the fingerprints' shift explains "
                             f"(default {DURATION_TOLERANCE} s)")


def run(args: argparse.Namespace) -> int:
    from pathlib import Path

    from melodex.analysis.collection import Collection
    from melodex.analysis.duplicates import find_duplicates, missing_fingerprints, write_report
    from melodex.commands.options import open_store
    from melodex.errors import StoreError

    store = open_store(args.store)
    if args.fingerprint:
        _fingerprint(store, quiet=bool(getattr(args, "quiet", False)))
    fingerprints = store.chromaprints()
    missing = missing_fingerprints(fingerprints)
    if missing and args.fingerprint:  # files that could not be read (listed above) cannot be compared
        print(f"{missing} track(s) without a fingerprint are left out")
    elif missing:
        raise StoreError(f"{store.root}: {missing} of {len(fingerprints)} tracks have no audio fingerprint "
                         "(indexed before fingerprints were stored, or from JSONL), and the embedding alone "
                         f"cannot tell a copy from another take; add them with: melodex duplicates --store "
                         f"{store.root} --fingerprint")
    table = find_duplicates(Collection.from_store(store), fingerprints, max_distance=args.max_distance,
                            min_agreement=args.min_agreement, tolerance=args.tolerance)
    report = write_report(table, Path(args.report) if args.report else store.root / "duplicates.csv")
    groups = table["group"].nunique() if len(table) else 0
    for number, members in table.groupby("group", sort=True):
        print(f"group {number}:")
        for row in members.itertuples(index=False):
            print(f"  {row.track_id}  {row.path}  ({row.duration} s, distance {row.distance:.5f}, "
                  f"fingerprint agreement {row.agreement:.3f}, {row.offset:+.1f} s)")
    print(f"{groups} group(s), {len(table)} tracks; report written to {report} (nothing deleted)")
    return 0


def _fingerprint(store, *, quiet: bool) -> None:
    """Add the missing fingerprints to ``store``, with a progress bar; failed files are listed."""
    from tqdm import tqdm

    from melodex.analysis.duplicates import missing_fingerprints
    from melodex.library.fingerprints import add_fingerprints

    todo = missing_fingerprints(store.chromaprints())
    with tqdm(total=todo, desc="fingerprint", unit="file", disable=quiet or None) as bar:
        summary = add_fingerprints(store, progress=bar)
    for path, reason in summary.failed:
        print(f"not fingerprinted: {path}: {reason}")
    print(f"fingerprinted {summary.added} track(s); {len(summary.failed)} could not be read")
